"""The domain: model, ports, use cases and errors of kitty-auth. Standard library only."""
