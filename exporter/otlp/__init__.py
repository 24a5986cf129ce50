"""OTLP metrics ingest: OpenTelemetry SDKs push to the daemon as StatsD clients do.

`names` and `conventions` are pure; `wire` decodes protobuf bodies by hand into the shape of
`points` (which also reads the protobuf library's messages: JSON bodies, and the reference);
`translate` turns a decoded request into store updates; `http` and `grpc` are the two
receivers, and `service` is what the daemon runs. Nothing here imports protobuf or grpcio at
package import: JSON bodies load protobuf, OTLP/gRPC grpcio, on first use.
"""
