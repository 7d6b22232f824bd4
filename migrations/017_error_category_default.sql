-- Migration 017: debug_error_events.error_category defaults to 'agent'.
--
-- The design document's own "Capture State at Error" example inserts an error without
-- error_category, which is NOT NULL (shared/spec, defect 7): as written it failed. The
-- intent is that the example works. 'agent' is what the SDK sends when the caller names no
-- category (an error raised in the agent's own code); the wire format still requires the
-- field, so events from Kafka are unchanged. The CHECK of the four categories stays.

ALTER TABLE debug_error_events ALTER COLUMN error_category SET DEFAULT 'agent';

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (17, 'debug_error_events.error_category defaults to agent (the design document''s example)',
        (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description, execution_time_ms = EXCLUDED.execution_time_ms;
