-- Migration 012: retention of hook_events and agent_transformation_events
--
-- The retention purge deletes by age in batches (WHERE created_at >= $from AND created_at <
-- cutoff ORDER BY created_at LIMIT n: a keyset on the time column). Migration 006 gave every
-- debug_* table a b-tree on its time column; these two tables had none usable for that
-- (hook_events: (source, created_at DESC) and a partial index for LLM calls;
-- agent_transformation_events: (correlation_id, created_at)), so a purge would have scanned
-- them whole, and hook_events -- the LLM/tool-call log -- is the fastest-growing table.
-- `debug-sink workflows` finds recent workflows through the same indexes.
--
-- Plain CREATE INDEX: migrations run in one transaction (no CONCURRENTLY). On a large
-- existing hook_events, build it beforehand with
--   CREATE INDEX CONCURRENTLY idx_hook_events_created_at ON hook_events (created_at);
-- and this migration finds it (IF NOT EXISTS).

CREATE INDEX IF NOT EXISTS idx_hook_events_created_at ON hook_events (created_at);

CREATE INDEX IF NOT EXISTS idx_agent_transformation_events_created_at
  ON agent_transformation_events (created_at);

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (12, 'time indexes on hook_events and agent_transformation_events for retention',
        (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description, execution_time_ms = EXCLUDED.execution_time_ms;
