-- Rollback of migration 004.

DROP INDEX IF EXISTS idx_hook_events_llm_correlation;

DELETE FROM schema_migrations WHERE version = 4;
