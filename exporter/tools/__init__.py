"""Tools around the daemon for people tuning a service: `loadtest`, `report`.

Each tool module has `main(argv) -> int`; exporter/cli.py dispatches to them.
"""
