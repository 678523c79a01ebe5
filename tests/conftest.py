"""Shared fixtures: the reference server (one per session) for the end-to-end tests."""

from refserver.fixtures import fresh_refserver_state, refserver  # noqa: F401
