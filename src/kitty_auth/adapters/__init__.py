"""Adapters: the outside world (HTTP, TOML files, locks, the clock, WebSockets) behind the domain's ports."""
