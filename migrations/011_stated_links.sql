-- Migration 011: stated recovery links, and how far inference agrees with them.
--
-- Why: the correlator inferred every link from circumstantial evidence, and a wrong link
-- teaches a wrong known fix. Agents often know what recovered an error (their retry loop
-- succeeded after failed attempts, their fallback ran because of that error): they can now
-- say so, the correlator stores what they said as such, and it measures its own inference
-- against those statements (issue 13).
--
-- 1. debug_success_events.recovers_error_ids UUID[]: the errors a success says it recovers
--    (wire field `recovers`, at most 32 ids, bounded by the model). Stored on the success row
--    rather than turned into references the sink resolves: an error named here may arrive
--    after its success, or never (dropped by its producer), and neither may hold the success
--    back or lose the statement; the correlator makes the link once both rows are stored.
--    NULL when the success states nothing (every row older than this migration). Added
--    without a default: no rewrite, no scan.
--
-- 2. debug_error_success_correlation.link_source: 'stated' (the agent named the error) or
--    'inferred' (the correlator's evidence), default 'inferred' -- every link made before this
--    migration was inferred, and a writer that does not say is not stating anything. The
--    constant default adds the column without a rewrite; the CHECK reads the table once.
--
-- 3. recovery_pattern_stats.stated_count: the stated links among a group's confident links,
--    kept by the triggers of migration 010 like the other counts. The delta type gets a
--    `stated` attribute and the functions that build deltas are replaced (same code as 010
--    plus that attribute; the UPDATE trigger also treats a changed link_source as a change).
--    debug_error_recovery_patterns keeps its columns and adds stated_count and
--    inferred_count at the end. Existing links are all inferred: 0 is exact, no backfill.
--
-- 4. known_fix_stats.stated, and known_fixes() returns stated_count and inferred_count after
--    its former columns (a changed return type: DROP and CREATE; the rollback restores 008's
--    function).
--
-- 5. correlator_agreement: one row per error where inference and statements can be compared:
--    the error is stated recovered (by the success it names), or inference run blind (as if
--    no agent stated anything) links it to a success that states its recoveries and does not
--    name it. The correlator rewrites the rows of the workflows it examines and keeps running
--    totals in correlator_state (agreement_*), so that the exported metric reads one row;
--    retention subtracts what it purges. `debug-sink correlate --report` reads the rows of a
--    time window (by the error's occurred_at).
--
-- Names do not start with debug_ on purpose: the quickstart's checks list every relation
-- matching 'debug_%' and expect exactly the user's 5 tables and 3 views.

-- 1. What a success says it recovers ---------------------------------------------------------

ALTER TABLE debug_success_events ADD COLUMN IF NOT EXISTS recovers_error_ids UUID[];

COMMENT ON COLUMN debug_success_events.recovers_error_ids IS
  'Errors this success says it recovered (wire field recovers); the correlator links them as stated. NULL: it says nothing.';

-- 2. Where a link comes from -----------------------------------------------------------------

ALTER TABLE debug_error_success_correlation
  ADD COLUMN IF NOT EXISTS link_source VARCHAR(10) NOT NULL DEFAULT 'inferred'
    CONSTRAINT debug_error_success_correlation_link_source_check
    CHECK (link_source IN ('stated', 'inferred'));

COMMENT ON COLUMN debug_error_success_correlation.link_source IS
  'stated: the success named the error (recovers_error_ids); inferred: the correlator''s evidence. A stated link is never replaced by an inferred one.';

-- 3. Stated links in debug_error_recovery_patterns -------------------------------------------

ALTER TABLE recovery_pattern_stats
  ADD COLUMN IF NOT EXISTS stated_count BIGINT NOT NULL DEFAULT 0;  -- of success_count

ALTER TYPE recovery_pattern_delta ADD ATTRIBUTE stated BOOLEAN;

CREATE OR REPLACE FUNCTION recovery_patterns_apply(p_deltas recovery_pattern_delta[])
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  v_missing UUID;
  v_workflows recovery_pattern_delta[];  -- workflow rows to delete or whose max to recompute
  v_groups recovery_pattern_delta[];     -- group rows likewise
BEGIN
  IF coalesce(cardinality(p_deltas), 0) = 0 THEN
    RETURN;
  END IF;

  IF EXISTS (SELECT 1 FROM unnest(p_deltas) AS x WHERE x.error_type IS NULL) THEN
    SELECT x.error_event_id INTO v_missing
      FROM unnest(p_deltas) AS x WHERE x.error_type IS NULL AND x.n > 0 LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION 'debug_error_success_correlation: the link''s error % does not exist',
                      v_missing
        USING ERRCODE = 'foreign_key_violation',
              HINT = 'Write the error before its links: the aggregate behind '
                     'debug_error_recovery_patterns (migration 010) needs its error_type.';
    END IF;
    IF to_regclass('pg_temp.recovery_pattern_deleted_errors') IS NOT NULL THEN
      SELECT array_agg(ROW(x.error_event_id, coalesce(x.error_type, g.error_type),
                           x.recovery_strategy, x.correlation_id, x.n, x.recovery_duration_ms,
                           x.confidence_score, x.correlated_at, x.stated)::recovery_pattern_delta)
        INTO p_deltas
        FROM unnest(p_deltas) AS x
        LEFT JOIN (SELECT DISTINCT ON (d.id) d.id, d.error_type
                     FROM pg_temp.recovery_pattern_deleted_errors AS d) AS g
          ON x.error_type IS NULL AND g.id = x.error_event_id;
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_deltas) AS x WHERE x.error_type IS NULL) THEN
      -- Only reachable when foreign keys were bypassed (triggers disabled, replica role).
      RAISE WARNING 'recovery_pattern_stats: links without their error were deleted; '
                    'run SELECT recovery_patterns_rebuild() to recompute the aggregate';
      SELECT array_agg(x) INTO p_deltas FROM unnest(p_deltas) AS x WHERE x.error_type IS NOT NULL;
      IF p_deltas IS NULL THEN
        RETURN;
      END IF;
    END IF;
  END IF;

  WITH d AS (
    SELECT x.error_type, x.recovery_strategy IS NULL AS no_strategy,
           coalesce(x.recovery_strategy, '') AS recovery_strategy, x.correlation_id,
           sum(x.n) AS n,
           coalesce(sum(x.n::bigint * x.recovery_duration_ms), 0) AS duration_ms_sum,
           coalesce(sum(x.n) FILTER (WHERE x.recovery_duration_ms IS NOT NULL), 0)
             AS duration_count,
           coalesce(sum(x.n * x.confidence_score), 0) AS confidence_sum,
           coalesce(sum(x.n) FILTER (WHERE x.stated), 0) AS stated_count,
           max(x.correlated_at) FILTER (WHERE x.n > 0) AS added_at,
           max(x.correlated_at) FILTER (WHERE x.n < 0) AS removed_at
      FROM unnest(p_deltas) AS x
     GROUP BY 1, 2, 3, 4
  ),
  w AS (
    INSERT INTO recovery_pattern_workflows AS w
           (error_type, no_strategy, recovery_strategy, correlation_id, links,
            last_correlated_at)
    SELECT d.error_type, d.no_strategy, d.recovery_strategy, d.correlation_id, d.n,
           coalesce(d.added_at, d.removed_at)
      FROM d
     ORDER BY 1, 2, 3, 4
    ON CONFLICT (error_type, no_strategy, recovery_strategy, correlation_id) DO UPDATE
       SET links = w.links + EXCLUDED.links,
           last_correlated_at = greatest(w.last_correlated_at, EXCLUDED.last_correlated_at)
    RETURNING w.error_type, w.no_strategy, w.recovery_strategy, w.correlation_id, w.links,
              w.last_correlated_at
  ),
  dw AS (
    SELECT d.*, w.links, w.last_correlated_at,
           (w.links > 0)::integer - (w.links - d.n > 0)::integer AS workflows
      FROM d
      JOIN w USING (error_type, no_strategy, recovery_strategy, correlation_id)
  ),
  g AS (
    INSERT INTO recovery_pattern_stats AS s
           (error_type, no_strategy, recovery_strategy, success_count, duration_ms_sum,
            duration_count, confidence_sum, workflow_count, last_correlated_at, stated_count)
    SELECT dw.error_type, dw.no_strategy, dw.recovery_strategy, sum(dw.n),
           sum(dw.duration_ms_sum), sum(dw.duration_count), sum(dw.confidence_sum),
           sum(dw.workflows), max(dw.added_at), sum(dw.stated_count)
      FROM dw
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
    ON CONFLICT (error_type, no_strategy, recovery_strategy) DO UPDATE
       SET success_count = s.success_count + EXCLUDED.success_count,
           duration_ms_sum = s.duration_ms_sum + EXCLUDED.duration_ms_sum,
           duration_count = s.duration_count + EXCLUDED.duration_count,
           confidence_sum = s.confidence_sum + EXCLUDED.confidence_sum,
           workflow_count = s.workflow_count + EXCLUDED.workflow_count,
           last_correlated_at = greatest(s.last_correlated_at, EXCLUDED.last_correlated_at),
           stated_count = s.stated_count + EXCLUDED.stated_count
    RETURNING s.error_type, s.no_strategy, s.recovery_strategy, s.success_count,
              s.last_correlated_at
  ),
  removed AS (
    SELECT dw.error_type, dw.no_strategy, dw.recovery_strategy, max(dw.removed_at) AS at
      FROM dw
     GROUP BY 1, 2, 3
  )
  SELECT (SELECT array_agg(ROW(NULL, dw.error_type,
                               CASE WHEN dw.no_strategy THEN NULL ELSE dw.recovery_strategy END,
                               dw.correlation_id, NULL, NULL, NULL, NULL, NULL)::recovery_pattern_delta)
            FROM dw
           WHERE dw.links <= 0 OR dw.removed_at >= dw.last_correlated_at),
         (SELECT array_agg(ROW(NULL, g.error_type,
                               CASE WHEN g.no_strategy THEN NULL ELSE g.recovery_strategy END,
                               NULL, NULL, NULL, NULL, NULL, NULL)::recovery_pattern_delta)
            FROM g
            JOIN removed AS r USING (error_type, no_strategy, recovery_strategy)
           WHERE g.success_count <= 0 OR r.at >= g.last_correlated_at)
    INTO v_workflows, v_groups;

  -- A workflow without links leaves its group; a workflow whose newest link went gets its
  -- max from its remaining links.
  IF v_workflows IS NOT NULL THEN
    DELETE FROM recovery_pattern_workflows AS w
     USING unnest(v_workflows) AS r
     WHERE w.error_type = r.error_type
       AND w.no_strategy = (r.recovery_strategy IS NULL)
       AND w.recovery_strategy = coalesce(r.recovery_strategy, '')
       AND w.correlation_id = r.correlation_id
       AND w.links <= 0;
    UPDATE recovery_pattern_workflows AS w
       SET last_correlated_at = coalesce(
             (SELECT max(c.correlated_at)
                FROM debug_error_success_correlation AS c
                JOIN debug_error_events AS e ON e.id = c.error_event_id
               WHERE c.correlation_id = w.correlation_id
                 AND c.confidence_score >= 0.7
                 AND e.error_type = w.error_type
                 AND CASE WHEN w.no_strategy THEN c.recovery_strategy IS NULL
                          ELSE c.recovery_strategy = w.recovery_strategy END),
             w.last_correlated_at)
      FROM unnest(v_workflows) AS r
     WHERE w.error_type = r.error_type
       AND w.no_strategy = (r.recovery_strategy IS NULL)
       AND w.recovery_strategy = coalesce(r.recovery_strategy, '')
       AND w.correlation_id = r.correlation_id;
  END IF;

  -- A group without links goes; a group whose newest link went gets the max of its workflows.
  IF v_groups IS NOT NULL THEN
    DELETE FROM recovery_pattern_stats AS s
     USING unnest(v_groups) AS r
     WHERE s.error_type = r.error_type
       AND s.no_strategy = (r.recovery_strategy IS NULL)
       AND s.recovery_strategy = coalesce(r.recovery_strategy, '')
       AND s.success_count <= 0;
    UPDATE recovery_pattern_stats AS s
       SET last_correlated_at = (SELECT max(w.last_correlated_at)
                                   FROM recovery_pattern_workflows AS w
                                  WHERE w.error_type = s.error_type
                                    AND w.no_strategy = s.no_strategy
                                    AND w.recovery_strategy = s.recovery_strategy)
      FROM unnest(v_groups) AS r
     WHERE s.error_type = r.error_type
       AND s.no_strategy = (r.recovery_strategy IS NULL)
       AND s.recovery_strategy = coalesce(r.recovery_strategy, '');
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION recovery_patterns_rebuild()
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  LOCK TABLE recovery_pattern_workflows, recovery_pattern_stats IN EXCLUSIVE MODE;
  DELETE FROM recovery_pattern_workflows;
  DELETE FROM recovery_pattern_stats;
  WITH per_workflow AS MATERIALIZED (
    SELECT e.error_type, c.recovery_strategy IS NULL AS no_strategy,
           coalesce(c.recovery_strategy, '') AS recovery_strategy, c.correlation_id,
           count(*) AS links, coalesce(sum(c.recovery_duration_ms), 0) AS duration_ms_sum,
           count(c.recovery_duration_ms) AS duration_count,
           sum(c.confidence_score) AS confidence_sum, max(c.correlated_at) AS last_correlated_at,
           count(*) FILTER (WHERE c.link_source = 'stated') AS stated_count
      FROM debug_error_success_correlation AS c
      JOIN debug_error_events AS e ON e.id = c.error_event_id
     WHERE c.confidence_score >= 0.7
     GROUP BY 1, 2, 3, 4
  ),
  workflows AS (
    INSERT INTO recovery_pattern_workflows
           (error_type, no_strategy, recovery_strategy, correlation_id, links,
            last_correlated_at)
    SELECT p.error_type, p.no_strategy, p.recovery_strategy, p.correlation_id, p.links,
           p.last_correlated_at
      FROM per_workflow AS p
  )
  INSERT INTO recovery_pattern_stats
         (error_type, no_strategy, recovery_strategy, success_count, duration_ms_sum,
          duration_count, confidence_sum, workflow_count, last_correlated_at, stated_count)
  SELECT p.error_type, p.no_strategy, p.recovery_strategy, sum(p.links),
         sum(p.duration_ms_sum), sum(p.duration_count), sum(p.confidence_sum), count(*),
         max(p.last_correlated_at), sum(p.stated_count)
    FROM per_workflow AS p
   GROUP BY 1, 2, 3;
END
$$;

CREATE OR REPLACE FUNCTION recovery_patterns_links_inserted()
RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM recovery_patterns_apply(ARRAY(
    SELECT ROW(n.error_event_id, e.error_type, n.recovery_strategy, n.correlation_id, 1,
               n.recovery_duration_ms, n.confidence_score, n.correlated_at,
               n.link_source = 'stated')::recovery_pattern_delta
      FROM new_links AS n
      LEFT JOIN debug_error_events AS e ON e.id = n.error_event_id
     WHERE n.confidence_score >= 0.7));
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION recovery_patterns_links_deleted()
RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM recovery_patterns_apply(ARRAY(
    SELECT ROW(o.error_event_id, e.error_type, o.recovery_strategy, o.correlation_id, -1,
               o.recovery_duration_ms, o.confidence_score, o.correlated_at,
               o.link_source = 'stated')::recovery_pattern_delta
      FROM old_links AS o
      LEFT JOIN debug_error_events AS e ON e.id = o.error_event_id
     WHERE o.confidence_score >= 0.7));
  RETURN NULL;
END
$$;


CREATE OR REPLACE FUNCTION recovery_patterns_links_updated()
RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM recovery_patterns_apply(ARRAY(
    SELECT ROW(o.error_event_id, e.error_type, o.recovery_strategy, o.correlation_id, -1,
               o.recovery_duration_ms, o.confidence_score, o.correlated_at,
               o.link_source = 'stated')::recovery_pattern_delta
      FROM old_links AS o
      LEFT JOIN debug_error_events AS e ON e.id = o.error_event_id
     WHERE o.confidence_score >= 0.7
       AND NOT EXISTS (
             SELECT 1 FROM new_links AS n
              WHERE n.id = o.id
                AND (n.error_event_id, n.recovery_strategy, n.correlation_id,
                     n.recovery_duration_ms, n.confidence_score, n.correlated_at, n.link_source)
                    IS NOT DISTINCT FROM
                    (o.error_event_id, o.recovery_strategy, o.correlation_id,
                     o.recovery_duration_ms, o.confidence_score, o.correlated_at, o.link_source))
    UNION ALL
    SELECT ROW(n.error_event_id, e.error_type, n.recovery_strategy, n.correlation_id, 1,
               n.recovery_duration_ms, n.confidence_score, n.correlated_at,
               n.link_source = 'stated')::recovery_pattern_delta
      FROM new_links AS n
      LEFT JOIN debug_error_events AS e ON e.id = n.error_event_id
     WHERE n.confidence_score >= 0.7
       AND NOT EXISTS (
             SELECT 1 FROM old_links AS o
              WHERE o.id = n.id
                AND (n.error_event_id, n.recovery_strategy, n.correlation_id,
                     n.recovery_duration_ms, n.confidence_score, n.correlated_at, n.link_source)
                    IS NOT DISTINCT FROM
                    (o.error_event_id, o.recovery_strategy, o.correlation_id,
                     o.recovery_duration_ms, o.confidence_score, o.correlated_at, o.link_source))));
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION recovery_patterns_error_type_changed()
RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM recovery_patterns_apply(ARRAY(
    SELECT ROW(c.error_event_id, t.error_type, c.recovery_strategy, c.correlation_id, t.n,
               c.recovery_duration_ms, c.confidence_score, c.correlated_at,
               c.link_source = 'stated')::recovery_pattern_delta
      FROM debug_error_success_correlation AS c
     CROSS JOIN (VALUES (OLD.error_type, -1), (NEW.error_type, 1)) AS t(error_type, n)
     WHERE c.error_event_id = NEW.id
       AND c.confidence_score >= 0.7));
  RETURN NULL;
END
$$;

-- The columns of 010 (same values), then how many of the links were stated / inferred.
CREATE OR REPLACE VIEW debug_error_recovery_patterns AS
SELECT
  s.error_type,
  (CASE WHEN s.no_strategy THEN NULL ELSE s.recovery_strategy END)::VARCHAR(100)
    AS recovery_strategy,
  s.success_count,
  s.duration_ms_sum::NUMERIC / NULLIF(s.duration_count, 0) AS avg_recovery_duration_ms,
  s.confidence_sum / s.success_count AS avg_confidence,
  s.workflow_count,
  s.last_correlated_at,
  s.stated_count,
  s.success_count - s.stated_count AS inferred_count
FROM recovery_pattern_stats AS s
WHERE s.success_count > 0;

COMMENT ON VIEW debug_error_recovery_patterns IS
  'Successful recovery strategies per error type: correlations with confidence_score >= 0.7, counted per (error_type, recovery_strategy), of which stated by the agents / inferred by the correlator. Reads recovery_pattern_stats (migrations 010, 011).';

-- 4. Stated links in known_fixes() -----------------------------------------------------------

ALTER TABLE known_fix_stats ADD COLUMN IF NOT EXISTS stated BIGINT NOT NULL DEFAULT 0;  -- of recovered

DROP FUNCTION IF EXISTS known_fixes(TEXT, TEXT, TEXT, INTEGER);

-- Ranked recovery strategies for an error type, optionally narrowed to one agent and/or one
-- operation (NULL = any; '' = errors without operation_name).
--   success_count     errors of that kind the strategy recovered (correlator links)
--   success_rate      success_count / errors of that kind that occurred (0..1)
--   avg_recovery_ms   mean time from the error to the recovering success
--   avg_confidence    mean confidence_score of those links
--   example_correlation_ids  up to 5 workflows to look at, most recent first
--   stated_count      of success_count, links the agents stated (recovers_error_ids)
--   inferred_count    of success_count, links the correlator inferred
-- Ranked by success_count (= by success_rate: one denominator per call), then confidence,
-- then speed. Cost: a primary-key range scan of the two aggregate tables.
CREATE FUNCTION known_fixes(
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
  example_correlation_ids UUID[],
  stated_count BIGINT,
  inferred_count BIGINT
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
           sum(k.stated)::BIGINT AS stated,
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
         st.examples,
         st.stated,
         st.recovered - st.stated
    FROM st CROSS JOIN occ
   ORDER BY st.recovered DESC,
            st.confidence_sum / st.recovered DESC,
            st.duration_ms_sum / nullif(st.duration_count, 0) ASC NULLS LAST,
            st.strategy
   LIMIT greatest(p_limit, 0)
$$;

COMMENT ON FUNCTION known_fixes(TEXT, TEXT, TEXT, INTEGER) IS
  'Ranked recovery strategies for an error type (optionally one agent / operation): success count, success rate (recovered / occurred), average time to recover, average confidence, example correlation ids, and how many of the links were stated / inferred. Reads the known-fixes aggregate.';

-- 5. Inference measured against the statements -----------------------------------------------

CREATE TABLE IF NOT EXISTS correlator_agreement (
  error_event_id UUID PRIMARY KEY
    CONSTRAINT correlator_agreement_error_event_id_fkey
    REFERENCES debug_error_events(id) ON DELETE CASCADE,
  correlation_id UUID NOT NULL,
  occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,  -- the error's: the report's window
  stated_success_id UUID,                         -- the success that names the error
  inferred_success_id UUID,                       -- the blind inference's link
  evaluated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
  CONSTRAINT correlator_agreement_something_check
    CHECK (stated_success_id IS NOT NULL OR inferred_success_id IS NOT NULL)
);

CREATE INDEX IF NOT EXISTS idx_correlator_agreement_occurred_at
  ON correlator_agreement(occurred_at);

COMMENT ON TABLE correlator_agreement IS
  'Per error with a stated link, or blindly inferred to a success that states other errors: the stated and the blindly inferred recovering success. Agreed when equal.';

ALTER TABLE correlator_state
  ADD COLUMN IF NOT EXISTS agreement_agreed BIGINT NOT NULL DEFAULT 0,   -- inferred = stated
  ADD COLUMN IF NOT EXISTS agreement_wrong BIGINT NOT NULL DEFAULT 0,    -- inferred, not stated
  ADD COLUMN IF NOT EXISTS agreement_missed BIGINT NOT NULL DEFAULT 0;   -- stated, not inferred

COMMENT ON COLUMN correlator_state.agreement_agreed IS
  'Rows of correlator_agreement whose inferred link is the stated one (agreement_wrong: inferred another; agreement_missed: the stated link was not inferred).';

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (11, 'stated recovery links: recovers_error_ids, link_source, stated counts, inference agreement',
        (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description, execution_time_ms = EXCLUDED.execution_time_ms;
