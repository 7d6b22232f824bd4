-- Migration 002: hook_events and try_cast_uuid()
--
-- hook_events is the agents' existing hook log that migration 005 reads LLM calls from
-- (debug_llm_call_summary); its shape is the one the user's documents assume (defect 2):
-- id, source, resource_id, payload jsonb, metadata jsonb, created_at.
--
-- Defect 13: the documents' view exposed metadata->>'correlation_id' as text, with no index
-- behind it. Here the correlation id is a real uuid column, generated from the metadata so
-- the two can never disagree, and indexable (migration 004 adds the index the view uses).
-- A correlation_id in the metadata that is not a UUID gives NULL instead of failing the
-- insert: a hook event is never rejected because of a malformed optional field.
--
-- Writers must not list `correlation_id` in INSERT/COPY column lists (it is generated).
--
-- The helper is deliberately not named debug_*: everything named debug_* belongs to
-- migration 005 and is gone after rolling back to 4.

CREATE OR REPLACE FUNCTION try_cast_uuid(p_value TEXT)
RETURNS UUID
LANGUAGE sql
IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
  -- Only forms that the uuid input function accepts pass the regex (8-4-4-4-12 hex digits,
  -- hyphens optional, optionally in braces), so the cast cannot raise.
  SELECT CASE
    WHEN p_value ~ '^([0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}|\{[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\})$'
    THEN p_value::uuid
  END
$$;

COMMENT ON FUNCTION try_cast_uuid(TEXT) IS
  'The text as a uuid, or NULL when it is not a UUID (never raises). Used by generated columns.';

CREATE TABLE IF NOT EXISTS hook_events (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  source VARCHAR(255) NOT NULL,          -- hook name, e.g. PreToolUse, PostToolUse
  resource_id VARCHAR(255),              -- e.g. the tool name
  payload JSONB NOT NULL DEFAULT '{}',
  metadata JSONB NOT NULL DEFAULT '{}',  -- session_id, correlation_id, ...
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
  correlation_id UUID GENERATED ALWAYS AS (try_cast_uuid(metadata->>'correlation_id')) STORED
);

CREATE INDEX IF NOT EXISTS idx_hook_events_source_time
  ON hook_events(source, created_at DESC);

COMMENT ON TABLE hook_events IS
  'Agent hook events (PreToolUse, PostToolUse, ...); debug_llm_call_summary reads LLM calls from it.';
COMMENT ON COLUMN hook_events.correlation_id IS
  'metadata->>''correlation_id'' as a uuid (NULL when absent or not a UUID); generated, never written.';

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (
  2,
  'hook_events with a generated uuid correlation_id; try_cast_uuid()',
  (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer
)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description,
      execution_time_ms = EXCLUDED.execution_time_ms;
