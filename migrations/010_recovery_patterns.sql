-- Migration 010: debug_error_recovery_patterns served from an aggregate kept by triggers.
--
-- Why: migration 005's view grouped every link of debug_error_success_correlation with
-- confidence_score >= 0.7, joined to its error, on every call: p95 1,401 ms at 10M events
-- (600,000 links), linear in the links. It now reads one row per (error_type, strategy).
-- The view keeps its name, its columns and their types, and returns exactly what 005's
-- definition returns (same values, same numeric scales: avg() is sum / count with the same
-- numeric division).
--
-- 1. recovery_pattern_stats, one row per (error_type, recovery_strategy) of the confident
--    links: their count, the sum and count of their recovery_duration_ms (avg() ignores
--    NULLs), the sum of their confidence_score, the number of their distinct workflows and
--    the latest correlated_at. A link without recovery_strategy is a group of its own, as in
--    GROUP BY: the key is (no_strategy, recovery_strategy) with recovery_strategy = '' when
--    the links have none, so that '' and NULL stay apart and every lookup is an equality on
--    the primary key (NULLS NOT DISTINCT would keep them apart too, but IS NOT DISTINCT FROM
--    cannot use an index).
--
-- 2. recovery_pattern_workflows, one row per (error_type, strategy, correlation_id): how many
--    confident links the workflow has in the group, and their latest correlated_at. A row
--    appearing or disappearing moves the group's workflow_count, which keeps
--    count(DISTINCT correlation_id) exact under deletes. Its latest correlated_at makes the
--    group's max recomputable under deletes without reading the links: when a delete removes
--    a workflow's newest link, that workflow's max is recomputed from its own links (index on
--    (correlation_id, correlated_at)), and when it removes the group's newest, the group's max
--    is the max over the group's workflow rows (a primary-key range scan: ~10,000 rows for
--    the largest group at 10M events). Only a delete that takes a group's newest link pays
--    that: retention deletes old links (the newest go last), and the correlator moving a link
--    inserts the newer one in the same statement, whose trigger PostgreSQL 18 fires first
--    (an order that only the cost depends on, not the result).
--
-- 3. Statement-level AFTER triggers with transition tables on debug_error_success_correlation
--    (INSERT, UPDATE, DELETE; TRUNCATE empties the aggregate), so every writer keeps it exact:
--    the correlator, the retention purge, a user's INSERT / UPDATE / DELETE. Each statement
--    applies its changes in one pass: recovery_patterns_apply() upserts the workflow rows, then
--    the group rows, each in key order (INSERT ... ON CONFLICT DO UPDATE SET x = x + EXCLUDED.x
--    row-locks: concurrent writers of a group wait for each other, lose nothing, and take the
--    locks in one order; several statements in one transaction can still deadlock each other,
--    as any two transactions updating shared rows can). Maxima are recomputed in a later
--    statement than the one that locked the rows, so that under READ COMMITTED they read what
--    concurrent writers committed meanwhile.
--
-- 4. The error_type comes from the link's error. Two cases need care:
--    - Deleting an error deletes its links by ON DELETE CASCADE (006), and the links' trigger
--      then runs after the error is gone. A statement-level AFTER DELETE trigger on
--      debug_error_events, which PostgreSQL fires before the cascaded statement's triggers,
--      keeps the deleted errors' (id, error_type) in a temporary table of the session
--      (pg_temp.recovery_pattern_deleted_errors, ON COMMIT DELETE ROWS) where the links' trigger
--      finds them. Retention deletes the links first (its purge_links), so this costs it only
--      the copy of (id, error_type) of each deleted error.
--    - UPDATE OF error_type of an error moves its links to the new group: a row-level trigger
--      with WHEN (OLD.error_type IS DISTINCT FROM NEW.error_type), so that no other update
--      (the correlator's recovery fields) costs anything.
--
-- 5. recovery_patterns_rebuild() recomputes the aggregate from the rows (the backfill below).
--    Writes that bypass triggers need it afterwards: session_replication_role = replica (the
--    benchmark's fill), ALTER TABLE ... DISABLE TRIGGER.
--
-- Not supported: inserting a link before its error under deferred constraints (the trigger
-- needs the error's type when the link is written); it fails with foreign_key_violation.
--
-- Measured on this machine (2 cores, PostgreSQL 18.6; time inside the trigger functions from
-- pg_stat_user_functions, the wall times vary more than that from run to run here):
--   view, `debug-sink bench --only queries`: p95 1,401 ms -> 0.64 ms at 10M events (600,000
--     links), 223 -> 0.48 ms at 1M; the bench's rebuild after its fill: 3.0 s at 10M.
--   correlator, synthetic workflows (7,000 workflows, 192,816 rows in 6 waves, 23,267
--     links): 0.28-0.40 s in the triggers of 8.4-12.4 s of runs (3-4%, ~15 us per link);
--     one run over 200,000 errors and successes (synthetic.bulk_fill, 50,000 workflows)
--     making 100,000 links: 0.9-1.2 s of 17-24 s (~5%).
--   retention, purging those 100,000 errors and links: 1.3-1.6 s in the links' trigger of
--     10-13 s (~12%); the copy of the deleted errors' types 28-45 ms.
--   the backfill below: as the rebuild, ~3 s at 10M events, with new links blocked meanwhile.
--
-- Names do not start with debug_ on purpose: the quickstart's checks list every relation
-- matching 'debug_%' and expect exactly the user's 5 tables and 3 views.

-- 1. and 2. The aggregate ---------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS recovery_pattern_stats (
  error_type VARCHAR(255) NOT NULL,
  no_strategy BOOLEAN NOT NULL,                  -- the links have no recovery_strategy
  recovery_strategy VARCHAR(100) NOT NULL,       -- '' when no_strategy
  success_count BIGINT NOT NULL DEFAULT 0,       -- links with confidence_score >= 0.7
  duration_ms_sum BIGINT NOT NULL DEFAULT 0,     -- of their recovery_duration_ms
  duration_count BIGINT NOT NULL DEFAULT 0,      -- of them with a recovery_duration_ms
  confidence_sum NUMERIC NOT NULL DEFAULT 0,
  workflow_count BIGINT NOT NULL DEFAULT 0,      -- their distinct correlation_ids
  last_correlated_at TIMESTAMP WITH TIME ZONE,
  PRIMARY KEY (error_type, no_strategy, recovery_strategy),
  CONSTRAINT recovery_pattern_stats_no_strategy_check
    CHECK (NOT no_strategy OR recovery_strategy = '')
);

COMMENT ON TABLE recovery_pattern_stats IS
  'Confident links (confidence_score >= 0.7) per (error_type, recovery_strategy), kept by triggers on debug_error_success_correlation; read by debug_error_recovery_patterns.';

CREATE TABLE IF NOT EXISTS recovery_pattern_workflows (
  error_type VARCHAR(255) NOT NULL,
  no_strategy BOOLEAN NOT NULL,
  recovery_strategy VARCHAR(100) NOT NULL,
  correlation_id UUID NOT NULL,
  links BIGINT NOT NULL,                         -- confident links of the workflow in the group
  last_correlated_at TIMESTAMP WITH TIME ZONE NOT NULL,
  PRIMARY KEY (error_type, no_strategy, recovery_strategy, correlation_id)
);

COMMENT ON TABLE recovery_pattern_workflows IS
  'Workflows with confident links per (error_type, recovery_strategy): recovery_pattern_stats.workflow_count is their number.';

-- 3. Applying changes ------------------------------------------------------------------------

-- One changed link: n = +1 it counts now, -1 it counted before. error_type NULL: its error
-- was not found (deleted by the same statement: looked up in the deleted errors).
DO $$
BEGIN
  IF to_regtype('recovery_pattern_delta') IS NULL THEN
    CREATE TYPE recovery_pattern_delta AS (
      error_event_id UUID,
      error_type VARCHAR(255),
      recovery_strategy VARCHAR(100),
      correlation_id UUID,
      n INTEGER,
      recovery_duration_ms INTEGER,
      confidence_score NUMERIC(5, 4),
      correlated_at TIMESTAMP WITH TIME ZONE
    );
  END IF;
END
$$;

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
                           x.confidence_score, x.correlated_at)::recovery_pattern_delta)
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
            duration_count, confidence_sum, workflow_count, last_correlated_at)
    SELECT dw.error_type, dw.no_strategy, dw.recovery_strategy, sum(dw.n),
           sum(dw.duration_ms_sum), sum(dw.duration_count), sum(dw.confidence_sum),
           sum(dw.workflows), max(dw.added_at)
      FROM dw
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
    ON CONFLICT (error_type, no_strategy, recovery_strategy) DO UPDATE
       SET success_count = s.success_count + EXCLUDED.success_count,
           duration_ms_sum = s.duration_ms_sum + EXCLUDED.duration_ms_sum,
           duration_count = s.duration_count + EXCLUDED.duration_count,
           confidence_sum = s.confidence_sum + EXCLUDED.confidence_sum,
           workflow_count = s.workflow_count + EXCLUDED.workflow_count,
           last_correlated_at = greatest(s.last_correlated_at, EXCLUDED.last_correlated_at)
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
                               dw.correlation_id, NULL, NULL, NULL, NULL)::recovery_pattern_delta)
            FROM dw
           WHERE dw.links <= 0 OR dw.removed_at >= dw.last_correlated_at),
         (SELECT array_agg(ROW(NULL, g.error_type,
                               CASE WHEN g.no_strategy THEN NULL ELSE g.recovery_strategy END,
                               NULL, NULL, NULL, NULL, NULL)::recovery_pattern_delta)
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

COMMENT ON FUNCTION recovery_patterns_apply(recovery_pattern_delta[]) IS
  'Applies changed links to recovery_pattern_stats / recovery_pattern_workflows (called by the triggers of migration 010).';

-- Recomputes the aggregate from the rows. Locks it against the triggers of concurrent
-- writers (they wait, then apply their changes on top); call it at the start of a
-- transaction so that its snapshot is taken after the lock.
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
           sum(c.confidence_score) AS confidence_sum, max(c.correlated_at) AS last_correlated_at
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
          duration_count, confidence_sum, workflow_count, last_correlated_at)
  SELECT p.error_type, p.no_strategy, p.recovery_strategy, sum(p.links),
         sum(p.duration_ms_sum), sum(p.duration_count), sum(p.confidence_sum), count(*),
         max(p.last_correlated_at)
    FROM per_workflow AS p
   GROUP BY 1, 2, 3;
END
$$;

COMMENT ON FUNCTION recovery_patterns_rebuild() IS
  'Recomputes recovery_pattern_stats / recovery_pattern_workflows from debug_error_success_correlation, e.g. after writes with triggers disabled.';

-- 3. and 4. Triggers ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION recovery_patterns_links_inserted()
RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM recovery_patterns_apply(ARRAY(
    SELECT ROW(n.error_event_id, e.error_type, n.recovery_strategy, n.correlation_id, 1,
               n.recovery_duration_ms, n.confidence_score, n.correlated_at)::recovery_pattern_delta
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
               o.recovery_duration_ms, o.confidence_score, o.correlated_at)::recovery_pattern_delta
      FROM old_links AS o
      LEFT JOIN debug_error_events AS e ON e.id = o.error_event_id
     WHERE o.confidence_score >= 0.7));
  RETURN NULL;
END
$$;

-- Only rows whose counted fields changed count as a removal plus an addition.
CREATE OR REPLACE FUNCTION recovery_patterns_links_updated()
RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM recovery_patterns_apply(ARRAY(
    SELECT ROW(o.error_event_id, e.error_type, o.recovery_strategy, o.correlation_id, -1,
               o.recovery_duration_ms, o.confidence_score, o.correlated_at)::recovery_pattern_delta
      FROM old_links AS o
      LEFT JOIN debug_error_events AS e ON e.id = o.error_event_id
     WHERE o.confidence_score >= 0.7
       AND NOT EXISTS (
             SELECT 1 FROM new_links AS n
              WHERE n.id = o.id
                AND (n.error_event_id, n.recovery_strategy, n.correlation_id,
                     n.recovery_duration_ms, n.confidence_score, n.correlated_at)
                    IS NOT DISTINCT FROM
                    (o.error_event_id, o.recovery_strategy, o.correlation_id,
                     o.recovery_duration_ms, o.confidence_score, o.correlated_at))
    UNION ALL
    SELECT ROW(n.error_event_id, e.error_type, n.recovery_strategy, n.correlation_id, 1,
               n.recovery_duration_ms, n.confidence_score, n.correlated_at)::recovery_pattern_delta
      FROM new_links AS n
      LEFT JOIN debug_error_events AS e ON e.id = n.error_event_id
     WHERE n.confidence_score >= 0.7
       AND NOT EXISTS (
             SELECT 1 FROM old_links AS o
              WHERE o.id = n.id
                AND (n.error_event_id, n.recovery_strategy, n.correlation_id,
                     n.recovery_duration_ms, n.confidence_score, n.correlated_at)
                    IS NOT DISTINCT FROM
                    (o.error_event_id, o.recovery_strategy, o.correlation_id,
                     o.recovery_duration_ms, o.confidence_score, o.correlated_at))));
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION recovery_patterns_links_truncated()
RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  DELETE FROM recovery_pattern_workflows;
  DELETE FROM recovery_pattern_stats;
  RETURN NULL;
END
$$;

-- The deleted errors' types, for the links their deletion cascades to (fired before the
-- cascaded statement's triggers). Kept until the next deletion of errors or the commit.
CREATE OR REPLACE FUNCTION recovery_patterns_errors_deleted()
RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  IF to_regclass('pg_temp.recovery_pattern_deleted_errors') IS NULL THEN
    CREATE TEMPORARY TABLE recovery_pattern_deleted_errors (
      id UUID NOT NULL,
      error_type VARCHAR(255) NOT NULL
    ) ON COMMIT DELETE ROWS;
  ELSE
    DELETE FROM pg_temp.recovery_pattern_deleted_errors;
  END IF;
  INSERT INTO pg_temp.recovery_pattern_deleted_errors (id, error_type)
  SELECT o.id, o.error_type FROM old_errors AS o;
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
               c.recovery_duration_ms, c.confidence_score, c.correlated_at)::recovery_pattern_delta
      FROM debug_error_success_correlation AS c
     CROSS JOIN (VALUES (OLD.error_type, -1), (NEW.error_type, 1)) AS t(error_type, n)
     WHERE c.error_event_id = NEW.id
       AND c.confidence_score >= 0.7));
  RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER recovery_patterns_insert
  AFTER INSERT ON debug_error_success_correlation
  REFERENCING NEW TABLE AS new_links
  FOR EACH STATEMENT EXECUTE FUNCTION recovery_patterns_links_inserted();

CREATE OR REPLACE TRIGGER recovery_patterns_update
  AFTER UPDATE ON debug_error_success_correlation
  REFERENCING OLD TABLE AS old_links NEW TABLE AS new_links
  FOR EACH STATEMENT EXECUTE FUNCTION recovery_patterns_links_updated();

CREATE OR REPLACE TRIGGER recovery_patterns_delete
  AFTER DELETE ON debug_error_success_correlation
  REFERENCING OLD TABLE AS old_links
  FOR EACH STATEMENT EXECUTE FUNCTION recovery_patterns_links_deleted();

CREATE OR REPLACE TRIGGER recovery_patterns_truncate
  AFTER TRUNCATE ON debug_error_success_correlation
  FOR EACH STATEMENT EXECUTE FUNCTION recovery_patterns_links_truncated();

CREATE OR REPLACE TRIGGER recovery_patterns_errors_delete
  AFTER DELETE ON debug_error_events
  REFERENCING OLD TABLE AS old_errors
  FOR EACH STATEMENT EXECUTE FUNCTION recovery_patterns_errors_deleted();

CREATE OR REPLACE TRIGGER recovery_patterns_error_type
  AFTER UPDATE OF error_type ON debug_error_events
  FOR EACH ROW WHEN (OLD.error_type IS DISTINCT FROM NEW.error_type)
  EXECUTE FUNCTION recovery_patterns_error_type_changed();

-- 5. Backfill ---------------------------------------------------------------------------------

-- The triggers exist and hold their table locks until commit: no link written meanwhile is
-- missed or counted twice.
SELECT recovery_patterns_rebuild();

-- The view ------------------------------------------------------------------------------------

-- Same columns, types and values as migration 005's definition. avg() is sum / count with
-- numeric division, as PostgreSQL's avg(integer) and avg(numeric) compute it.
CREATE OR REPLACE VIEW debug_error_recovery_patterns AS
SELECT
  s.error_type,
  (CASE WHEN s.no_strategy THEN NULL ELSE s.recovery_strategy END)::VARCHAR(100)
    AS recovery_strategy,
  s.success_count,
  s.duration_ms_sum::NUMERIC / NULLIF(s.duration_count, 0) AS avg_recovery_duration_ms,
  s.confidence_sum / s.success_count AS avg_confidence,
  s.workflow_count,
  s.last_correlated_at
FROM recovery_pattern_stats AS s
WHERE s.success_count > 0;

COMMENT ON VIEW debug_error_recovery_patterns IS
  'Successful recovery strategies per error type: correlations with confidence_score >= 0.7, counted per (error_type, recovery_strategy). Reads recovery_pattern_stats (migration 010).';

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (10, 'recovery patterns: debug_error_recovery_patterns from a trigger-maintained aggregate',
        (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description, execution_time_ms = EXCLUDED.execution_time_ms;
