-- Migration 013: an ingest position on debug_workflow_steps, so a late step brings its workflow
-- back to the correlator.
--
-- The correlator (migration 008) re-examines a workflow when one of its errors or successes is
-- new since its previous run (ingest_xid not visible in that run's snapshot). Step rows are
-- evidence too: they give an event its step number and attempt when the event carries none, and
-- tell a retry (same step, higher attempt) from new work. A step row that landed after its
-- workflow's last error and success was used only if something else brought the workflow back,
-- so links depended on arrival order. With this column the correlator also re-examines the
-- workflows (that have errors) whose step rows are new or changed.
--
-- Like 008: xid8, the inserting (or, for a step folded by a later lifecycle event, the updating)
-- transaction; the sink's upsert sets it on update. ADD COLUMN without a default does not
-- rewrite the table; the default then applies to new rows only (older rows keep NULL and are
-- treated as seen).

ALTER TABLE debug_workflow_steps ADD COLUMN IF NOT EXISTS ingest_xid xid8;
ALTER TABLE debug_workflow_steps ALTER COLUMN ingest_xid SET DEFAULT pg_current_xact_id();

CREATE INDEX IF NOT EXISTS idx_debug_workflow_steps_ingest_xid
  ON debug_workflow_steps (ingest_xid);

COMMENT ON COLUMN debug_workflow_steps.ingest_xid IS
  'The transaction that inserted or last folded this row; the correlator re-examines workflows whose steps are newer than its watermark.';

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (13, 'ingest position on debug_workflow_steps: late steps bring their workflow back to the correlator',
        (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description, execution_time_ms = EXCLUDED.execution_time_ms;
