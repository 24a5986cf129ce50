"""OTLP metrics ingest: OpenTelemetry SDKs push to the daemon as StatsD clients do.

`names` and `conventions` are pure; `translate` turns a decoded request into store
updates; `http` and `grpc` are the two receivers, and `service` is what the daemon runs.
Nothing here imports protobuf or grpcio at package import: the receivers import them
when they are enabled, so the default daemon's memory does not grow.
"""
