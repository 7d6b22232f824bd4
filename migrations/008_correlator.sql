-- Migration 008: the correlator's watermark and the known-fixes aggregate.
--
-- 1. An ingest position on debug_error_events and debug_success_events: `ingest_xid`, the
--    64-bit id of the transaction that inserted the row (pg_current_xact_id(), the top-level
--    id even inside the sink's bisecting savepoints). The correlator stores the snapshot of
--    its last run (correlator_state.seen); a row is new for the next run exactly when its
--    ingest_xid is not visible in that snapshot. Why not a sequence / identity column: a
--    sequence value is drawn at INSERT, not at COMMIT, so with several sink replicas a row
--    with a lower number can commit after the watermark has passed it and would never be
--    correlated. Why not the agents' timestamps: they can be late or skewed. Why not the
--    system column xmin: it is 32-bit, wraps and is frozen by VACUUM; xid8 does neither.
--    The column is added without a rewrite or a long lock (no default for existing rows, a
--    default for new ones): rows that existed before this migration keep NULL and are read by
--    the correlator's first run, which reads everything.
--    Staging tables created by the sink with LIKE ... INCLUDING DEFAULTS get the same
--    default, which is harmless (the merge lists its columns; the real table fills its own).
--    Write cost: one b-tree entry per row, appended at the right edge (ids increase).
--
-- 2. correlator_state: one row, the snapshot of the last committed correlator run (`seen`)
--    and the snapshot whose errors known_fix_occurrences counts (`counted`). The run reads
--    its events, writes its links and moves this row in ONE transaction.
--
-- 3. known_fix_occurrences / known_fix_stats: the aggregate behind known_fixes(), maintained
--    by the correlator in the same transaction as the links it makes (occurrences: every error
--    once, when a run first sees it; stats: every link it makes) and by the retention purge
--    when it deletes those errors and links, so that both stay equal to what a recomputation
--    over the retained rows gives. known_fixes() reads a handful of aggregate rows whatever
--    the size of the event tables.
--
-- 4. known_fixes(error_type, agent, operation, limit): ranked recovery strategies.
--
-- Names do not start with debug_ on purpose: the quickstart's checks list every relation
-- matching 'debug_%' and expect exactly the user's 5 tables and 3 views.

-- 1. Ingest position ---------------------------------------------------------------------------

ALTER TABLE debug_error_events ADD COLUMN IF NOT EXISTS ingest_xid xid8;
ALTER TABLE debug_error_events ALTER COLUMN ingest_xid SET DEFAULT pg_current_xact_id();
ALTER TABLE debug_success_events ADD COLUMN IF NOT EXISTS ingest_xid xid8;
ALTER TABLE debug_success_events ALTER COLUMN ingest_xid SET DEFAULT pg_current_xact_id();

CREATE INDEX IF NOT EXISTS idx_debug_error_events_ingest_xid
  ON debug_error_events(ingest_xid);
CREATE INDEX IF NOT EXISTS idx_debug_success_events_ingest_xid
  ON debug_success_events(ingest_xid);

COMMENT ON COLUMN debug_error_events.ingest_xid IS
  'Transaction that inserted the row (pg_current_xact_id()); the correlator''s watermark. NULL for rows older than migration 008.';
COMMENT ON COLUMN debug_success_events.ingest_xid IS
  'Transaction that inserted the row (pg_current_xact_id()); the correlator''s watermark. NULL for rows older than migration 008.';

-- 2. Correlator state --------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS correlator_state (
  id BOOLEAN PRIMARY KEY DEFAULT TRUE CONSTRAINT correlator_state_single_row CHECK (id),
  seen pg_snapshot,                 -- snapshot of the last committed run; NULL: never ran
  counted pg_snapshot,              -- known_fix_occurrences counts the errors visible in it
  runs BIGINT NOT NULL DEFAULT 0,
  links_total BIGINT NOT NULL DEFAULT 0,
  last_run_at TIMESTAMP WITH TIME ZONE,
  last_run_ms INTEGER
);

INSERT INTO correlator_state (id) VALUES (TRUE) ON CONFLICT (id) DO NOTHING;

COMMENT ON TABLE correlator_state IS
  'The correlator''s watermark: the snapshot of its last committed run (rows whose ingest_xid it shows as visible have been correlated).';
COMMENT ON COLUMN correlator_state.counted IS
  'Errors visible in this snapshot are counted in known_fix_occurrences: = seen after a run; later than seen after a rebuild of the aggregate that preceded the first run.';

-- 3. Known-fixes aggregate ---------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS known_fix_occurrences (
  error_type VARCHAR(255) NOT NULL,
  agent_name VARCHAR(255) NOT NULL,
  operation_name VARCHAR(255) NOT NULL,  -- '' for an error without operation_name
  occurred BIGINT NOT NULL DEFAULT 0,
  last_occurred_at TIMESTAMP WITH TIME ZONE,
  PRIMARY KEY (error_type, agent_name, operation_name)
);

COMMENT ON TABLE known_fix_occurrences IS
  'Errors per (error_type, agent_name, operation_name) seen by the correlator and not purged; the denominator of known_fixes().success_rate.';

CREATE TABLE IF NOT EXISTS known_fix_stats (
  error_type VARCHAR(255) NOT NULL,
  agent_name VARCHAR(255) NOT NULL,
  operation_name VARCHAR(255) NOT NULL,  -- '' for an error without operation_name
  recovery_strategy VARCHAR(100) NOT NULL,
  recovered BIGINT NOT NULL DEFAULT 0,             -- links (one per recovered error)
  confident BIGINT NOT NULL DEFAULT 0,             -- of which confidence_score >= 0.7
  duration_ms_sum NUMERIC NOT NULL DEFAULT 0,
  duration_count BIGINT NOT NULL DEFAULT 0,        -- links with a recovery_duration_ms
  confidence_sum NUMERIC NOT NULL DEFAULT 0,
  example_correlation_ids UUID[] NOT NULL DEFAULT '{}',  -- up to 5, most recent first
  last_recovered_at TIMESTAMP WITH TIME ZONE,
  PRIMARY KEY (error_type, agent_name, operation_name, recovery_strategy)
);

COMMENT ON TABLE known_fix_stats IS
  'Recoveries per (error_type, agent_name, operation_name, recovery_strategy): the correlator''s links, minus those purged by retention.';

-- 4. known_fixes() -----------------------------------------------------------------------------

-- Ranked recovery strategies for an error type, optionally narrowed to one agent and/or one
-- operation (NULL = any; '' = errors without operation_name).
--   success_count     errors of that kind the strategy recovered (correlator links)
--   success_rate      success_count / errors of that kind that occurred (0..1)
--   avg_recovery_ms   mean time from the error to the recovering success
--   avg_confidence    mean confidence_score of those links
--   example_correlation_ids  up to 5 workflows to look at, most recent first
-- Ranked by success_count (= by success_rate: one denominator per call), then confidence,
-- then speed. Cost: a primary-key range scan of the two aggregate tables.
CREATE OR REPLACE FUNCTION known_fixes(
  p_error_type TEXT,
  p_agent_name TEXT DEFAULT NULL,
  p_operation_name TEXT DEFAULT NULL,
  p_limit INTEGER DEFAULT 10
) RETURNS TABLE (
  recovery_strategy TEXT,
  success_count BIGINT,
  success_rate NUMERIC,
  avg_recovery_ms NUMERIC,
  avg_confidence NUMERIC,
  example_correlation_ids UUID[]
)
LANGUAGE sql
STABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
  WITH occ AS (
    SELECT sum(o.occurred) AS occurred
      FROM known_fix_occurrences AS o
     WHERE o.error_type = p_error_type
       AND (p_agent_name IS NULL OR o.agent_name = p_agent_name)
       AND (p_operation_name IS NULL OR o.operation_name = p_operation_name)
  ),
  st AS (
    SELECT k.recovery_strategy::TEXT AS strategy,
           sum(k.recovered)::BIGINT AS recovered,
           sum(k.duration_ms_sum) AS duration_ms_sum,
           sum(k.duration_count) AS duration_count,
           sum(k.confidence_sum) AS confidence_sum,
           max(k.last_recovered_at) AS last_recovered_at,
           ARRAY(SELECT x.id
                   FROM known_fix_stats AS k2,
                        unnest(k2.example_correlation_ids) WITH ORDINALITY AS x(id, n)
                  WHERE k2.error_type = p_error_type
                    AND k2.recovery_strategy = k.recovery_strategy
                    AND (p_agent_name IS NULL OR k2.agent_name = p_agent_name)
                    AND (p_operation_name IS NULL OR k2.operation_name = p_operation_name)
                  GROUP BY x.id
                  ORDER BY max(k2.last_recovered_at) DESC NULLS LAST, min(x.n), x.id
                  LIMIT 5) AS examples
      FROM known_fix_stats AS k
     WHERE k.error_type = p_error_type
       AND (p_agent_name IS NULL OR k.agent_name = p_agent_name)
       AND (p_operation_name IS NULL OR k.operation_name = p_operation_name)
     GROUP BY k.recovery_strategy
    HAVING sum(k.recovered) > 0
  )
  SELECT st.strategy,
         st.recovered,
         round(least(1, st.recovered / nullif(occ.occurred, 0)), 4),
         round(st.duration_ms_sum / nullif(st.duration_count, 0), 1),
         round(st.confidence_sum / st.recovered, 4),
         st.examples
    FROM st CROSS JOIN occ
   ORDER BY st.recovered DESC,
            st.confidence_sum / st.recovered DESC,
            st.duration_ms_sum / nullif(st.duration_count, 0) ASC NULLS LAST,
            st.strategy
   LIMIT greatest(p_limit, 0)
$$;

COMMENT ON FUNCTION known_fixes(TEXT, TEXT, TEXT, INTEGER) IS
  'Ranked recovery strategies for an error type (optionally one agent / operation): success count, success rate (recovered / occurred), average time to recover, average confidence, example correlation ids. Reads the known_fix_* aggregate.';

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (8, 'correlator: ingest watermark, correlator state, known-fixes aggregate and function',
        (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description, execution_time_ms = EXCLUDED.execution_time_ms;
