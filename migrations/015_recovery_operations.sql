-- Migration 015: what agents report about each operation's successes, so that the correlator
-- can tell a recovering operation from new work when one success does not say which it is.
--
-- Many agents type some of their recovering successes `recovery_success` and others plain
-- `task_completion` (different agents, versions, code paths). A fallback operation such as
-- `search_cached` or another agent's `complete` after the primary failed is then a recovery in
-- every workflow, but only the typed ones say so. This table counts, per (agent, operation),
-- the successes the correlator has seen and how many of them were typed `recovery_success`:
-- the correlator treats a success of an operation whose agents report at least a fifth of its
-- successes (of at least five) as recoveries like a typed one (debug_sink.jobs.correlator).
--
-- Counted like known_fix_occurrences (migration 008): each success once, in the correlator run
-- that first sees it (correlator_state.counted); the retention purge subtracts what it deletes;
-- `debug-sink correlate --rebuild-known-fixes` recomputes it from the rows. Statements
-- (recovers_error_ids) are not counted: the correlator's blind inference, compared with the
-- statements (migration 011), must not learn from them.
--
-- The name does not start with debug_ on purpose (see migration 010).

CREATE TABLE IF NOT EXISTS correlator_operations (
  agent_name VARCHAR(255) NOT NULL,
  operation_name VARCHAR(255) NOT NULL,
  successes BIGINT NOT NULL DEFAULT 0,           -- successes counted
  typed_recoveries BIGINT NOT NULL DEFAULT 0,    -- of them success_type = 'recovery_success'
  PRIMARY KEY (agent_name, operation_name),
  CONSTRAINT correlator_operations_counts_check
    CHECK (successes >= 0 AND typed_recoveries >= 0 AND typed_recoveries <= successes)
);

COMMENT ON TABLE correlator_operations IS
  'Successes per (agent, operation) and how many were typed recovery_success, counted once by the correlator; evidence that an untyped success of the operation is a recovery.';

-- The successes the correlator has already counted (visible in its counted snapshot; rows
-- older than migration 008 have no ingest_xid and are visible in any). Later runs count the
-- rest. Reads debug_success_events once.
INSERT INTO correlator_operations (agent_name, operation_name, successes, typed_recoveries)
SELECT s.agent_name, s.operation_name, count(*),
       count(*) FILTER (WHERE s.success_type = 'recovery_success')
  FROM debug_success_events AS s, correlator_state AS st
 WHERE st.id AND st.counted IS NOT NULL
   AND (s.ingest_xid IS NULL OR pg_visible_in_snapshot(s.ingest_xid, st.counted))
 GROUP BY 1, 2
ON CONFLICT (agent_name, operation_name) DO NOTHING;

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (15, 'correlator_operations: how often each operation''s successes are typed recovery_success',
        (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description, execution_time_ms = EXCLUDED.execution_time_ms;
