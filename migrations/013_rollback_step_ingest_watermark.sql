-- Rollback of migration 013: the steps' ingest position (late steps no longer bring their
-- workflow back to the correlator).

DROP INDEX IF EXISTS idx_debug_workflow_steps_ingest_xid;
ALTER TABLE debug_workflow_steps DROP COLUMN IF EXISTS ingest_xid;
DELETE FROM schema_migrations WHERE version = 13;
