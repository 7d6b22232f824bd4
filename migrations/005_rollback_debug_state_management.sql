-- Rollback of migration 005_debug_state_management: removes everything 005 created.
--
-- Defect 12: no CASCADE anywhere. If a user's own object depends on one of these (a view on
-- debug_error_events, on a view below, or on a column added to agent_transformation_events),
-- the DROP fails with a dependency error and, the file being one transaction, nothing is
-- rolled back at all. Drop or adapt the dependent object first.
--
-- Migration 006 (and later) must be rolled back before this one.

-- Drop views first
DROP VIEW IF EXISTS debug_error_recovery_patterns;
DROP VIEW IF EXISTS debug_workflow_context;
DROP VIEW IF EXISTS debug_llm_call_summary;

-- Drop functions
DROP FUNCTION IF EXISTS get_workflow_debug_summary(UUID);
DROP FUNCTION IF EXISTS capture_state_snapshot(VARCHAR, UUID, VARCHAR, JSONB, TEXT, UUID, INTEGER);
DROP FUNCTION IF EXISTS debug_canonical_json(JSONB);

-- Remove the extension of agent_transformation_events (its indexes and foreign keys go with
-- the columns; the indexes are named here so that nothing is left to chance)
DROP INDEX IF EXISTS idx_agent_transformation_events_state_snapshot;
DROP INDEX IF EXISTS idx_agent_transformation_events_error;
DROP INDEX IF EXISTS idx_agent_transformation_events_success;
ALTER TABLE agent_transformation_events
  DROP COLUMN IF EXISTS state_snapshot_id,
  DROP COLUMN IF EXISTS error_event_id,
  DROP COLUMN IF EXISTS success_event_id;

-- Drop tables in reverse dependency order (their own indexes and constraints go with them)
DROP TABLE IF EXISTS debug_workflow_steps;
DROP TABLE IF EXISTS debug_error_success_correlation;
DROP TABLE IF EXISTS debug_success_events;
DROP TABLE IF EXISTS debug_error_events;
DROP TABLE IF EXISTS debug_state_snapshots;

-- Remove migration record
DELETE FROM schema_migrations WHERE version = 5;
