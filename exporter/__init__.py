"""apm-exporter: application performance telemetry for Prometheus."""

__version__ = "0.1.0"
