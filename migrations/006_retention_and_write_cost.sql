-- Migration 006: retention and write cost
--
-- What deleting old rows and the sink's write path need from the schema of migration 005.
--
-- 1. ON DELETE behaviour (defect 11). The document's foreign keys had none, so deleting an old
--    snapshot or error that anything still referenced failed. The constraints are dropped and
--    re-added under the same names, still DEFERRABLE INITIALLY IMMEDIATE (the sink defers
--    them inside its batch transaction):
--      optional references (every nullable *_id)                -> ON DELETE SET NULL
--      debug_error_success_correlation.error_event_id /
--      debug_error_success_correlation.success_event_id          -> ON DELETE CASCADE
--    (a correlation without its error or its success means nothing).
--
-- 2. An index on every foreign-key column (defect 11: ~30 ms of FK checking per deleted row
--    without). 005 lacked one on debug_state_snapshots.transformation_event_id and on
--    debug_workflow_steps.pre_state_snapshot_id / post_state_snapshot_id / success_event_id.
--    Like the document's own FK indexes they are partial (WHERE col IS NOT NULL): the
--    referential actions look rows up with `col = $1`, which implies the predicate, and most
--    rows carry no reference, so the indexes stay small.
--
-- 3. Indexes for the retention purge, which deletes by age in batches
--    (WHERE <time> < cutoff ... LIMIT n): a plain b-tree on the time column of each debug
--    event table. The rows of debug_error_success_correlation go with their error (CASCADE),
--    and agent_transformation_events / hook_events are not purged by the sink.
--    Measured cost: ~5% on snapshot COPY (12,760 vs 13,450 rows/s with 005's index set and
--    the jsonb_path_ops index, setup as in 4.).
--
-- 4. The GIN index on agent_state (defect 14). No documented query uses it, and it is the
--    most expensive index of the write path. Measured on this machine (2 cores, PostgreSQL 18,
--    fsync off): asyncpg copy_records_to_table of 20,000 snapshot rows with ~1 KB states
--    (1,032 bytes on average) in 5,000-row batches, into an empty debug_state_snapshots with
--    every other index of this migration, one variant of the GIN index at a time; median of
--    3 runs:
--      (a) no GIN index                           ~42,200 rows/s
--      (b) GIN (agent_state), default jsonb_ops    ~9,000 rows/s   (index 35.1 MB)
--      (c) GIN (agent_state jsonb_path_ops)       ~14,300 rows/s   (index 23.6 MB)
--    (With 005's index set instead: 32,600 / 8,370 / 13,450 rows/s; (c) WITH (fastupdate =
--    off) only 4,720 rows/s.) capture_state_snapshot(), 15,000 sequential calls with 1 KB
--    states under (c): p50 0.44 ms, p95 0.64 ms; the GIN pending-list flush still makes rare
--    calls slow (max 168 ms with the default 4 MB gin_pending_list_limit, 60 ms with 1 MB at
--    ~6% COPY cost - an operator who prefers that trade can
--    ALTER INDEX idx_debug_state_snapshots_state_path_ops SET (gin_pending_list_limit = 1024)).
--    Decision: (c). It keeps containment queries (agent_state @> '{...}') indexed at 1.6x the
--    write rate of (b). It does not serve key-existence operators (?, ?|, ?&), which no query
--    of the documents uses.
--
-- 5. Redundant indexes dropped (every index is paid on each write; the random-order
--    state_hash b-tree is the main reason (a) is faster than with 005's index set):
--    - idx_debug_state_snapshots_hash (state_hash): deduplication is per workflow and uses
--      the unique index on (correlation_id, state_hash) of 005; no query looks a hash up
--      across workflows.
--    - idx_debug_error_success_correlation_error (error_event_id): the unique constraint
--      debug_error_success_correlation_unique (error_event_id, success_event_id) already has
--      error_event_id as its leading column.
--
-- The rollback (006_rollback_retention_and_write_cost.sql) restores 005's exact definitions.

-- 1. ON DELETE behaviour -------------------------------------------------------------------

ALTER TABLE debug_state_snapshots
  DROP CONSTRAINT debug_state_snapshots_transformation_event_id_fkey,
  ADD CONSTRAINT debug_state_snapshots_transformation_event_id_fkey
    FOREIGN KEY (transformation_event_id) REFERENCES agent_transformation_events(id)
    ON DELETE SET NULL DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT debug_state_snapshots_parent_snapshot_id_fkey,
  ADD CONSTRAINT debug_state_snapshots_parent_snapshot_id_fkey
    FOREIGN KEY (parent_snapshot_id) REFERENCES debug_state_snapshots(id)
    ON DELETE SET NULL DEFERRABLE INITIALLY IMMEDIATE;

ALTER TABLE debug_error_events
  DROP CONSTRAINT debug_error_events_state_snapshot_id_fkey,
  ADD CONSTRAINT debug_error_events_state_snapshot_id_fkey
    FOREIGN KEY (state_snapshot_id) REFERENCES debug_state_snapshots(id)
    ON DELETE SET NULL DEFERRABLE INITIALLY IMMEDIATE;

ALTER TABLE debug_success_events
  DROP CONSTRAINT debug_success_events_state_snapshot_id_fkey,
  ADD CONSTRAINT debug_success_events_state_snapshot_id_fkey
    FOREIGN KEY (state_snapshot_id) REFERENCES debug_state_snapshots(id)
    ON DELETE SET NULL DEFERRABLE INITIALLY IMMEDIATE;

ALTER TABLE debug_error_success_correlation
  DROP CONSTRAINT debug_error_success_correlation_error_event_id_fkey,
  ADD CONSTRAINT debug_error_success_correlation_error_event_id_fkey
    FOREIGN KEY (error_event_id) REFERENCES debug_error_events(id)
    ON DELETE CASCADE DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT debug_error_success_correlation_success_event_id_fkey,
  ADD CONSTRAINT debug_error_success_correlation_success_event_id_fkey
    FOREIGN KEY (success_event_id) REFERENCES debug_success_events(id)
    ON DELETE CASCADE DEFERRABLE INITIALLY IMMEDIATE;

ALTER TABLE debug_workflow_steps
  DROP CONSTRAINT debug_workflow_steps_pre_state_snapshot_id_fkey,
  ADD CONSTRAINT debug_workflow_steps_pre_state_snapshot_id_fkey
    FOREIGN KEY (pre_state_snapshot_id) REFERENCES debug_state_snapshots(id)
    ON DELETE SET NULL DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT debug_workflow_steps_post_state_snapshot_id_fkey,
  ADD CONSTRAINT debug_workflow_steps_post_state_snapshot_id_fkey
    FOREIGN KEY (post_state_snapshot_id) REFERENCES debug_state_snapshots(id)
    ON DELETE SET NULL DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT debug_workflow_steps_error_event_id_fkey,
  ADD CONSTRAINT debug_workflow_steps_error_event_id_fkey
    FOREIGN KEY (error_event_id) REFERENCES debug_error_events(id)
    ON DELETE SET NULL DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT debug_workflow_steps_success_event_id_fkey,
  ADD CONSTRAINT debug_workflow_steps_success_event_id_fkey
    FOREIGN KEY (success_event_id) REFERENCES debug_success_events(id)
    ON DELETE SET NULL DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT debug_workflow_steps_parent_step_id_fkey,
  ADD CONSTRAINT debug_workflow_steps_parent_step_id_fkey
    FOREIGN KEY (parent_step_id) REFERENCES debug_workflow_steps(id)
    ON DELETE SET NULL DEFERRABLE INITIALLY IMMEDIATE;

ALTER TABLE agent_transformation_events
  DROP CONSTRAINT agent_transformation_events_state_snapshot_id_fkey,
  ADD CONSTRAINT agent_transformation_events_state_snapshot_id_fkey
    FOREIGN KEY (state_snapshot_id) REFERENCES debug_state_snapshots(id)
    ON DELETE SET NULL DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT agent_transformation_events_error_event_id_fkey,
  ADD CONSTRAINT agent_transformation_events_error_event_id_fkey
    FOREIGN KEY (error_event_id) REFERENCES debug_error_events(id)
    ON DELETE SET NULL DEFERRABLE INITIALLY IMMEDIATE,
  DROP CONSTRAINT agent_transformation_events_success_event_id_fkey,
  ADD CONSTRAINT agent_transformation_events_success_event_id_fkey
    FOREIGN KEY (success_event_id) REFERENCES debug_success_events(id)
    ON DELETE SET NULL DEFERRABLE INITIALLY IMMEDIATE;

-- 2. Indexes on the foreign-key columns that had none ---------------------------------------

CREATE INDEX IF NOT EXISTS idx_debug_state_snapshots_transformation
  ON debug_state_snapshots(transformation_event_id)
  WHERE transformation_event_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_debug_workflow_steps_pre_state
  ON debug_workflow_steps(pre_state_snapshot_id)
  WHERE pre_state_snapshot_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_debug_workflow_steps_post_state
  ON debug_workflow_steps(post_state_snapshot_id)
  WHERE post_state_snapshot_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_debug_workflow_steps_success
  ON debug_workflow_steps(success_event_id)
  WHERE success_event_id IS NOT NULL;

-- 3. Indexes for the retention purge ----------------------------------------------------------

CREATE INDEX IF NOT EXISTS idx_debug_state_snapshots_captured_at
  ON debug_state_snapshots(captured_at);

CREATE INDEX IF NOT EXISTS idx_debug_error_events_occurred_at
  ON debug_error_events(occurred_at);

CREATE INDEX IF NOT EXISTS idx_debug_success_events_occurred_at
  ON debug_success_events(occurred_at);

CREATE INDEX IF NOT EXISTS idx_debug_workflow_steps_started_at
  ON debug_workflow_steps(started_at);

-- 4. GIN: jsonb_path_ops instead of the default operator class --------------------------------

DROP INDEX IF EXISTS idx_debug_state_snapshots_state;

CREATE INDEX IF NOT EXISTS idx_debug_state_snapshots_state_path_ops
  ON debug_state_snapshots USING GIN (agent_state jsonb_path_ops);

-- 5. Redundant indexes ------------------------------------------------------------------------

DROP INDEX IF EXISTS idx_debug_state_snapshots_hash;
DROP INDEX IF EXISTS idx_debug_error_success_correlation_error;

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (
  6,
  'Retention and write cost: ON DELETE actions, FK and time indexes, GIN jsonb_path_ops',
  (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer
)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description,
      execution_time_ms = EXCLUDED.execution_time_ms;
