-- Migration 014: one Kafka record can carry several events (an OTLP traces message: every span
-- becomes a step, maybe an error, an LLM call, a snapshot), so the sink's per-record state is
-- keyed by (topic, partition, offset, part).
--
-- Why. sink_parked_events and sink_dead_letters were unique per origin (topic, partition,
-- offset): "a batch re-written after a crash parks an event once / stores a letter once". With
-- several events per record, two events of one record can be parked (a tool span and the
-- error it references wait for the agent span, exported later) or dead-lettered; the second
-- would hit the unique key and be dropped (ON CONFLICT DO NOTHING) -- an event lost.
--
-- What.
-- part  the index of the event within its record (0 for the JSON topics: one event per
--       record, so their rows and their idempotence are exactly as before). The unique
--       constraints keep their names and gain the column: a re-written batch still parks each
--       event once and stores each letter once.
--
-- Cost. ADD COLUMN with a constant default does not rewrite the tables; re-creating each unique
-- index reads its table once under an ACCESS EXCLUSIVE lock (parked rows and dead letters are
-- few; a sink waits meanwhile, nothing is lost).
--
-- Rolling upgrade. A sink older than this migration names the old key in its ON CONFLICT
-- clauses (42P10 once this has run): stop old sinks before `migrate up` (new sinks refuse to
-- start before it: require_schema).
--
-- Names start with sink_ (not debug_) on purpose: the quickstart's checks list every
-- relation matching 'debug_%' and expect exactly the user's 5 tables and 3 views.

ALTER TABLE sink_parked_events
  ADD COLUMN IF NOT EXISTS part INTEGER NOT NULL DEFAULT 0
  CONSTRAINT sink_parked_events_part_check CHECK (part >= 0);
ALTER TABLE sink_parked_events DROP CONSTRAINT IF EXISTS sink_parked_events_origin_unique;
ALTER TABLE sink_parked_events
  ADD CONSTRAINT sink_parked_events_origin_unique UNIQUE (topic, partition, "offset", part);

ALTER TABLE sink_dead_letters
  ADD COLUMN IF NOT EXISTS part INTEGER NOT NULL DEFAULT 0
  CONSTRAINT sink_dead_letters_part_check CHECK (part >= 0);
ALTER TABLE sink_dead_letters DROP CONSTRAINT IF EXISTS sink_dead_letters_origin_unique;
ALTER TABLE sink_dead_letters
  ADD CONSTRAINT sink_dead_letters_origin_unique UNIQUE (topic, partition, "offset", part);

COMMENT ON COLUMN sink_parked_events.part IS
  'Index of the event within its Kafka record (0 unless a record carries several events, e.g. OTLP spans).';
COMMENT ON COLUMN sink_dead_letters.part IS
  'Index of the rejected event within its Kafka record (0 unless a record carries several events, e.g. OTLP spans).';

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (14, 'record parts: parked events and dead letters unique per (topic, partition, offset, part)',
        (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description, execution_time_ms = EXCLUDED.execution_time_ms;
