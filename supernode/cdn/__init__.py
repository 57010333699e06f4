"""The supernode's CDN: the only code that touches origins and the cache directory."""
