-- Rollback of migration 012: the time indexes of hook_events and agent_transformation_events.

DROP INDEX IF EXISTS idx_agent_transformation_events_created_at;
DROP INDEX IF EXISTS idx_hook_events_created_at;
DELETE FROM schema_migrations WHERE version = 12;
