-- Migration 004: the index behind debug_llm_call_summary
--
-- Migration 005's view debug_llm_call_summary reads PostToolUse hook events by correlation
-- id (`SELECT ... FROM debug_llm_call_summary WHERE correlation_id = $1`). Without an index
-- that is a sequential scan of hook_events per lookup (defect 13). This partial index holds
-- only the rows the view can return, so it costs nothing for other hook events; its predicate
-- is implied by the view's WHERE clause plus the lookup's equality.

CREATE INDEX IF NOT EXISTS idx_hook_events_llm_correlation
  ON hook_events(correlation_id, created_at)
  WHERE source = 'PostToolUse' AND correlation_id IS NOT NULL;

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (
  4,
  'index on hook_events for LLM calls by correlation id',
  (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer
)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description,
      execution_time_ms = EXCLUDED.execution_time_ms;
