"""Integration tests of the probes against real servers (tests/support/servers.py)."""
