-- Rollback of migration 006: restores migration 005's exact definitions (foreign keys without
-- ON DELETE action, the document's indexes) and removes what 006 added. No CASCADE.

-- 5. Redundant indexes, as 005 defined them
CREATE INDEX IF NOT EXISTS idx_debug_state_snapshots_hash
  ON debug_state_snapshots(state_hash);
CREATE INDEX IF NOT EXISTS idx_debug_error_success_correlation_error
  ON debug_error_success_correlation(error_event_id);

-- 4. GIN with the default operator class
DROP INDEX IF EXISTS idx_debug_state_snapshots_state_path_ops;
CREATE INDEX IF NOT EXISTS idx_debug_state_snapshots_state
  ON debug_state_snapshots USING GIN(agent_state);

-- 3. Retention indexes
DROP INDEX IF EXISTS idx_debug_state_snapshots_captured_at;
DROP INDEX IF EXISTS idx_debug_error_events_occurred_at;
DROP INDEX IF EXISTS idx_debug_success_events_occurred_at;
DROP INDEX IF EXISTS idx_debug_workflow_steps_started_at;

-- 2. Foreign-key indexes added by 006
DROP INDEX IF EXISTS idx_debug_state_snapshots_transformation;
DROP INDEX IF EXISTS idx_debug_workflow_steps_pre_state;
DROP INDEX IF EXISTS idx_debug_workflow_steps_post_state;
DROP INDEX IF EXISTS idx_debug_workflow_steps_success;

-- 1. Foreign keys as 005 defined them (NO ACTION)
ALTER TABLE debug_state_snapshots
  DROP CONSTRAINT debug_state_snapshots_transformation_event_id_fkey,
  ADD CONSTRAINT debug_state_snapshots_transformation_event_id_fkey
    FOREIGN KEY (transformation_event_id) REFERENCES agent_transformation_events(id)
    DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT debug_state_snapshots_parent_snapshot_id_fkey,
  ADD CONSTRAINT debug_state_snapshots_parent_snapshot_id_fkey
    FOREIGN KEY (parent_snapshot_id) REFERENCES debug_state_snapshots(id)
    DEFERRABLE INITIALLY IMMEDIATE;

ALTER TABLE debug_error_events
  DROP CONSTRAINT debug_error_events_state_snapshot_id_fkey,
  ADD CONSTRAINT debug_error_events_state_snapshot_id_fkey
    FOREIGN KEY (state_snapshot_id) REFERENCES debug_state_snapshots(id)
    DEFERRABLE INITIALLY IMMEDIATE;

ALTER TABLE debug_success_events
  DROP CONSTRAINT debug_success_events_state_snapshot_id_fkey,
  ADD CONSTRAINT debug_success_events_state_snapshot_id_fkey
    FOREIGN KEY (state_snapshot_id) REFERENCES debug_state_snapshots(id)
    DEFERRABLE INITIALLY IMMEDIATE;

ALTER TABLE debug_error_success_correlation
  DROP CONSTRAINT debug_error_success_correlation_error_event_id_fkey,
  ADD CONSTRAINT debug_error_success_correlation_error_event_id_fkey
    FOREIGN KEY (error_event_id) REFERENCES debug_error_events(id)
    DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT debug_error_success_correlation_success_event_id_fkey,
  ADD CONSTRAINT debug_error_success_correlation_success_event_id_fkey
    FOREIGN KEY (success_event_id) REFERENCES debug_success_events(id)
    DEFERRABLE INITIALLY IMMEDIATE;

ALTER TABLE debug_workflow_steps
  DROP CONSTRAINT debug_workflow_steps_pre_state_snapshot_id_fkey,
  ADD CONSTRAINT debug_workflow_steps_pre_state_snapshot_id_fkey
    FOREIGN KEY (pre_state_snapshot_id) REFERENCES debug_state_snapshots(id)
    DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT debug_workflow_steps_post_state_snapshot_id_fkey,
  ADD CONSTRAINT debug_workflow_steps_post_state_snapshot_id_fkey
    FOREIGN KEY (post_state_snapshot_id) REFERENCES debug_state_snapshots(id)
    DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT debug_workflow_steps_error_event_id_fkey,
  ADD CONSTRAINT debug_workflow_steps_error_event_id_fkey
    FOREIGN KEY (error_event_id) REFERENCES debug_error_events(id)
    DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT debug_workflow_steps_success_event_id_fkey,
  ADD CONSTRAINT debug_workflow_steps_success_event_id_fkey
    FOREIGN KEY (success_event_id) REFERENCES debug_success_events(id)
    DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT debug_workflow_steps_parent_step_id_fkey,
  ADD CONSTRAINT debug_workflow_steps_parent_step_id_fkey
    FOREIGN KEY (parent_step_id) REFERENCES debug_workflow_steps(id)
    DEFERRABLE INITIALLY IMMEDIATE;

ALTER TABLE agent_transformation_events
  DROP CONSTRAINT agent_transformation_events_state_snapshot_id_fkey,
  ADD CONSTRAINT agent_transformation_events_state_snapshot_id_fkey
    FOREIGN KEY (state_snapshot_id) REFERENCES debug_state_snapshots(id)
    DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT agent_transformation_events_error_event_id_fkey,
  ADD CONSTRAINT agent_transformation_events_error_event_id_fkey
    FOREIGN KEY (error_event_id) REFERENCES debug_error_events(id)
    DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT agent_transformation_events_success_event_id_fkey,
  ADD CONSTRAINT agent_transformation_events_success_event_id_fkey
    FOREIGN KEY (success_event_id) REFERENCES debug_success_events(id)
    DEFERRABLE INITIALLY IMMEDIATE;

DELETE FROM schema_migrations WHERE version = 6;
