"""Agents in through OpenTelemetry: OTLP traces messages become debug events.

The OpenTelemetry Collector's Kafka exporter writes one ``ExportTraceServiceRequest`` per
message (``otlp_proto`` or ``otlp_json``). The sink reads such topics through the same
exactly-once path as its JSON topics; this package is what differs, one module per step:

- :mod:`.decode` -- bytes -> bounded, flattened spans (or why the message is unreadable),
  with :mod:`.protowire`, the repair of a protobuf request the parser refuses whole;
- :mod:`.mapping` -- spans -> the wire-format objects of steps, errors, recoveries, LLM
  calls and snapshots (the README's mapping table), with :mod:`.ids`, the deterministic ids
  that make a replayed or re-exported trace a no-op;
- :mod:`.records` -- one message -> validated events plus one rejection for the rest;
- :mod:`.redact` -- a protobuf message redacted for its dead letter.

Pure and synchronous throughout; the sink's fetcher calls :func:`.records.expand`, its
dead letters :func:`.redact.redact_request`.
"""
