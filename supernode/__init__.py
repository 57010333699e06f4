"""The supernode: tracker, scheduler and CDN cache of a Dragonfly-compatible P2P network."""
