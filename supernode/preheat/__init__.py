"""Preheat: warm the CDN with a file or a whole image before the hosts pull it."""
