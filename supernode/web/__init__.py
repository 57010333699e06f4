"""The supernode's HTTP surface: app factory, routes table, thin handlers, middleware."""
