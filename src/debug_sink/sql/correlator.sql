-- Queries of the correlator (debug_sink.correlator). Each runs inside the run's single
-- REPEATABLE READ transaction, so all of them read one snapshot: the one stored as the new
-- watermark at the end.

-- name: begin_run
-- The snapshot this run reads (stored as the watermark when it commits) and the previous
-- watermark. First statement of the transaction: it fixes the snapshot.
SELECT pg_current_snapshot()::text AS current, seen::text AS seen,
       counted::text AS counted
  FROM correlator_state
 WHERE id
   FOR UPDATE

-- name: create_new_events
CREATE TEMP TABLE correlator_new (
  kind "char" NOT NULL,           -- e: error, s: success
  id UUID NOT NULL,
  correlation_id UUID NOT NULL,
  error_type TEXT,
  agent_name TEXT NOT NULL,
  operation_name TEXT NOT NULL,
  occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
  uncounted BOOLEAN NOT NULL      -- an error known_fix_occurrences does not count yet
) ON COMMIT DROP

-- name: collect_new_events
-- Errors and successes committed since the previous run: their ingest_xid is not visible in
-- the previous run's snapshot ($1; NULL on the first run, which reads everything). The range
-- condition uses idx_*_ingest_xid; the visibility test drops the rows the previous run saw
-- (those of transactions that had committed above its xmin). $2 = the snapshot whose errors
-- known_fix_occurrences counts already (NULL: none; it never shows fewer rows than $1).
INSERT INTO correlator_new
SELECT 'e', e.id, e.correlation_id, e.error_type, e.agent_name, coalesce(e.operation_name, ''),
       e.occurred_at,
       $2::text IS NULL
         OR (e.ingest_xid IS NOT NULL
             AND NOT pg_visible_in_snapshot(e.ingest_xid, $2::text::pg_snapshot))
  FROM debug_error_events AS e
 WHERE $1::text IS NULL
    OR (e.ingest_xid >= pg_snapshot_xmin($1::text::pg_snapshot)
        AND NOT pg_visible_in_snapshot(e.ingest_xid, $1::text::pg_snapshot))
UNION ALL
SELECT 's', s.id, s.correlation_id, NULL, s.agent_name, s.operation_name, s.occurred_at,
       false
  FROM debug_success_events AS s
 WHERE $1::text IS NULL
    OR (s.ingest_xid >= pg_snapshot_xmin($1::text::pg_snapshot)
        AND NOT pg_visible_in_snapshot(s.ingest_xid, $1::text::pg_snapshot))

-- name: create_workflows
-- The workflows that received new events: the only ones this run examines.
CREATE TEMP TABLE correlator_workflows ON COMMIT DROP AS
SELECT DISTINCT correlation_id FROM correlator_new

-- name: index_workflows
ALTER TABLE correlator_workflows ADD PRIMARY KEY (correlation_id)

-- name: new_event_counts
SELECT count(*) FILTER (WHERE kind = 'e') AS errors,
       count(*) FILTER (WHERE kind = 's') AS successes,
       (SELECT count(*) FROM correlator_workflows) AS workflows
  FROM correlator_new

-- name: next_workflows
-- The next chunk of affected workflows, in id order after $1.
SELECT coalesce(array_agg(w.correlation_id ORDER BY w.correlation_id), '{}') AS ids
  FROM (SELECT correlation_id FROM correlator_workflows
         WHERE $1::uuid IS NULL OR correlation_id > $1::uuid
         ORDER BY correlation_id
         LIMIT $2) AS w

-- name: count_occurrences
-- Every new error counts once towards known_fix_occurrences (success_rate's denominator).
WITH counted AS (
  INSERT INTO known_fix_occurrences AS o
         (error_type, agent_name, operation_name, occurred, last_occurred_at)
  SELECT n.error_type, n.agent_name, n.operation_name, count(*), max(n.occurred_at)
    FROM correlator_new AS n
   WHERE n.kind = 'e' AND n.uncounted
   GROUP BY n.error_type, n.agent_name, n.operation_name
  ON CONFLICT (error_type, agent_name, operation_name) DO UPDATE
     SET occurred = o.occurred + EXCLUDED.occurred,
         last_occurred_at = greatest(o.last_occurred_at, EXCLUDED.last_occurred_at)
  RETURNING 1
)
SELECT count(*) FROM counted

-- name: link
-- Links each error of the workflows $1 to the success that recovered it (or moves its link
-- to a better success that arrived since), marks it recovered and keeps known_fix_stats in
-- step. $2 = minimum confidence. The rules and weights are documented in
-- debug_sink/correlator.py; this is their only implementation.
WITH errs AS MATERIALIZED (
  SELECT e.id, e.correlation_id, e.error_type, e.agent_name, e.operation_name, e.occurred_at,
         e.execution_step, e.is_recoverable, e.recovery_attempted, e.recovery_successful,
         e.recovery_strategy, e.resolved_at
    FROM debug_error_events AS e
   WHERE e.correlation_id = ANY ($1::uuid[])
),
succ AS MATERIALIZED (
  SELECT s.id, s.correlation_id, s.success_type, s.agent_name, s.operation_name, s.occurred_at,
         s.execution_step, coalesce(s.retry_count, 0) AS retry_count,
         left(coalesce(s.success_factors->>'recovery_strategy', s.success_factors->>'strategy'),
              100) AS factor_strategy
    FROM debug_success_events AS s
   WHERE s.correlation_id = ANY ($1::uuid[])
),
-- Existing links of these errors. An error with several links (not the correlator's doing)
-- is left alone.
current_links AS MATERIALIZED (
  SELECT c.error_event_id, min(c.success_event_id::text)::uuid AS success_id, count(*) AS n
    FROM debug_error_success_correlation AS c
   WHERE c.error_event_id IN (SELECT id FROM errs)
   GROUP BY c.error_event_id
),
-- Each error's first later success of its own agent and operation: the operation worked again.
first_same AS MATERIALIZED (
  SELECT DISTINCT ON (e.id) e.id AS error_id, s.id AS success_id, s.occurred_at
    FROM errs AS e
    JOIN succ AS s
      ON s.correlation_id = e.correlation_id
     AND s.agent_name = e.agent_name
     AND s.operation_name = e.operation_name
     AND s.occurred_at > e.occurred_at
   ORDER BY e.id, s.occurred_at, s.id
),
pairs AS (
  SELECT e.id AS error_id, s.id AS success_id, e.correlation_id, e.error_type,
         e.agent_name AS error_agent, e.operation_name AS error_operation,
         e.occurred_at AS error_at, e.execution_step AS error_step,
         s.success_type, s.agent_name AS success_agent, s.operation_name AS success_operation,
         s.occurred_at AS success_at, s.execution_step AS success_step, s.retry_count,
         e.recovery_strategy AS declared_strategy, s.factor_strategy,
         (e.agent_name = s.agent_name AND e.operation_name = s.operation_name) IS TRUE
           AS same_operation,
         0.25
         + CASE WHEN e.agent_name = s.agent_name THEN 0.15 ELSE 0 END
         + CASE WHEN e.operation_name = s.operation_name THEN 0.15 ELSE 0 END
         + CASE WHEN e.execution_step = s.execution_step THEN 0.15 ELSE 0 END
         + CASE WHEN s.success_type = 'recovery_success' THEN 0.15 ELSE 0 END
         + CASE WHEN s.retry_count > 0 THEN 0.10 ELSE 0 END
         + CASE WHEN e.recovery_attempted THEN 0.05 ELSE 0 END
         + CASE WHEN lower(e.recovery_strategy) = 'retry' THEN
                  CASE WHEN e.agent_name = s.agent_name AND e.operation_name = s.operation_name
                       THEN 0.15 ELSE -0.10 END
                WHEN lower(e.recovery_strategy) = 'skip' THEN -0.30
                WHEN lower(e.recovery_strategy) = 'abort' THEN -0.50
                WHEN e.recovery_strategy IS NOT NULL THEN  -- fallback, escalate, delegate, ...
                  CASE WHEN e.agent_name = s.agent_name AND e.operation_name = s.operation_name
                       THEN -0.10 ELSE 0.15 END
                ELSE 0 END
         - CASE WHEN e.recovery_successful IS FALSE THEN 0.40 ELSE 0 END
         - CASE WHEN s.occurred_at - e.occurred_at > interval '1 hour' THEN 0.10 ELSE 0 END
           AS score
    FROM errs AS e
    JOIN succ AS s
      ON s.correlation_id = e.correlation_id
     AND s.occurred_at > e.occurred_at
    LEFT JOIN first_same AS f ON f.error_id = e.id
    LEFT JOIN current_links AS cl ON cl.error_event_id = e.id
   WHERE coalesce(cl.n, 0) <= 1
     -- nothing after the error's own operation worked again
     AND (f.error_id IS NULL OR s.occurred_at <= f.occurred_at)
     -- a success that is another error's own recovery is not also this one's
     AND (s.id = f.success_id
          OR NOT EXISTS (SELECT 1 FROM first_same AS c WHERE c.success_id = s.id))
),
best AS (
  SELECT DISTINCT ON (p.error_id) p.*
    FROM pairs AS p
   WHERE p.score >= $2
   ORDER BY p.error_id, p.score DESC, p.success_at, p.success_id
),
-- New links, and links to move: the best success is no longer the linked one.
changes AS MATERIALIZED (
  SELECT b.*,
         round(least(1, greatest(0, b.score)), 4)::numeric(5, 4) AS confidence,
         left(coalesce(b.declared_strategy, b.factor_strategy,
                       CASE WHEN b.same_operation THEN 'retry' ELSE 'fallback' END), 100)
           AS strategy,
         least(floor(extract(epoch FROM b.success_at - b.error_at) * 1000), 2147483647)::integer
           AS duration_ms,
         CASE WHEN EXISTS (SELECT 1 FROM debug_workflow_steps AS w
                            WHERE w.correlation_id = b.correlation_id)
              THEN (SELECT count(*) FROM debug_workflow_steps AS w
                     WHERE w.correlation_id = b.correlation_id
                       AND w.started_at > b.error_at
                       AND w.started_at < b.success_at)::integer
              ELSE greatest(b.success_step - b.error_step - 1, 0)
         END AS steps_between,
         cl.success_id AS old_success_id,
         (SELECT s.occurred_at FROM succ AS s WHERE s.id = cl.success_id) AS old_success_at
    FROM best AS b
    LEFT JOIN current_links AS cl ON cl.error_event_id = b.error_id
   WHERE cl.success_id IS DISTINCT FROM b.success_id
),
unlinked AS (
  DELETE FROM debug_error_success_correlation AS c
   USING changes AS ch
   WHERE c.error_event_id = ch.error_id AND c.success_event_id = ch.old_success_id
  RETURNING c.error_event_id, c.recovery_strategy, c.recovery_duration_ms, c.confidence_score
),
ins AS (
  INSERT INTO debug_error_success_correlation AS c
         (error_event_id, success_event_id, correlation_id, recovery_path,
          recovery_duration_ms, intermediate_steps, recovery_strategy, confidence_score)
  SELECT ch.error_id, ch.success_id, ch.correlation_id,
         format('%s in %s%s -> %s -> %s in %s%s (%s)',
                ch.error_type, ch.error_agent, '.' || ch.error_operation, ch.strategy,
                ch.success_type, ch.success_agent, '.' || ch.success_operation,
                concat_ws(', ',
                  CASE WHEN ch.retry_count = 1 THEN '1 retry'
                       WHEN ch.retry_count > 1 THEN ch.retry_count || ' retries' END,
                  CASE WHEN ch.steps_between IS NOT NULL
                       THEN ch.steps_between || ' intermediate steps' END,
                  ch.duration_ms || ' ms')),
         ch.duration_ms, ch.steps_between, ch.strategy, ch.confidence
    FROM changes AS ch
  ON CONFLICT (error_event_id, success_event_id) DO NOTHING
  RETURNING c.error_event_id, c.success_event_id
),
done AS MATERIALIZED (
  SELECT ch.*
    FROM changes AS ch
    JOIN ins ON ins.error_event_id = ch.error_id AND ins.success_event_id = ch.success_id
),
marked AS (
  UPDATE debug_error_events AS e
     SET recovery_successful = TRUE,
         resolved_at = CASE WHEN e.resolved_at IS NULL OR e.resolved_at = d.old_success_at
                            THEN d.success_at ELSE e.resolved_at END
    FROM done AS d
   WHERE e.id = d.error_id
     AND (e.recovery_successful IS NOT TRUE
          OR e.resolved_at IS NULL
          OR (e.resolved_at = d.old_success_at AND d.old_success_at <> d.success_at))
  RETURNING e.id
),
-- known_fix_stats: +1 per new link, -1 per moved-away link (of the correlator's making).
delta AS (
  SELECT d.error_type, d.error_agent AS agent_name,
         coalesce(d.error_operation, '') AS operation_name, d.strategy, 1 AS n,
         (d.confidence >= 0.7)::integer AS confident, d.duration_ms, d.confidence,
         d.correlation_id, d.success_at
    FROM done AS d
  UNION ALL
  SELECT e.error_type, e.agent_name, coalesce(e.operation_name, ''), u.recovery_strategy, -1,
         -(u.confidence_score >= 0.7)::integer, -u.recovery_duration_ms, -u.confidence_score,
         NULL, NULL
    FROM unlinked AS u
    JOIN errs AS e ON e.id = u.error_event_id
   WHERE u.recovery_strategy IS NOT NULL
),
stats AS (
  INSERT INTO known_fix_stats AS k
         (error_type, agent_name, operation_name, recovery_strategy, recovered, confident,
          duration_ms_sum, duration_count, confidence_sum, example_correlation_ids,
          last_recovered_at)
  SELECT d.error_type, d.agent_name, d.operation_name, d.strategy,
         sum(d.n), sum(d.confident),
         coalesce(sum(d.duration_ms), 0),
         coalesce(sum(sign(d.n)) FILTER (WHERE d.duration_ms IS NOT NULL), 0),
         coalesce(sum(d.confidence), 0),
         coalesce((array_agg(DISTINCT d.correlation_id)
                    FILTER (WHERE d.correlation_id IS NOT NULL))[1:5], '{}'),
         max(d.success_at)
    FROM delta AS d
   GROUP BY d.error_type, d.agent_name, d.operation_name, d.strategy
  ON CONFLICT (error_type, agent_name, operation_name, recovery_strategy) DO UPDATE
     SET recovered = k.recovered + EXCLUDED.recovered,
         confident = k.confident + EXCLUDED.confident,
         duration_ms_sum = k.duration_ms_sum + EXCLUDED.duration_ms_sum,
         duration_count = k.duration_count + EXCLUDED.duration_count,
         confidence_sum = k.confidence_sum + EXCLUDED.confidence_sum,
         example_correlation_ids = ARRAY(
           SELECT x.id
             FROM unnest(EXCLUDED.example_correlation_ids || k.example_correlation_ids)
                  WITH ORDINALITY AS x(id, n)
            GROUP BY x.id
            ORDER BY min(x.n)
            LIMIT 5),
         last_recovered_at = greatest(k.last_recovered_at, EXCLUDED.last_recovered_at)
  RETURNING 1
)
SELECT (SELECT count(*) FROM errs) AS errors_examined,
       (SELECT count(*) FROM succ) AS successes_examined,
       (SELECT count(*) FROM ins) AS links,
       (SELECT count(*) FROM unlinked) AS moved,
       (SELECT count(*) FROM marked) AS marked,
       (SELECT count(*) FROM stats) AS stats_rows

-- name: advance
-- The watermark moves in the same transaction as the links: all of a run or none of it.
UPDATE correlator_state
   SET seen = $1::text::pg_snapshot,
       counted = $1::text::pg_snapshot,
       runs = runs + 1,
       links_total = links_total + $2,
       last_run_at = clock_timestamp(),
       last_run_ms = $3
 WHERE id

-- name: expected_occurrences
-- known_fix_occurrences recomputed from the rows: the errors visible in the counted snapshot
-- (rows older than migration 008 have no ingest_xid and are visible in any).
SELECT e.error_type, e.agent_name, coalesce(e.operation_name, '') AS operation_name,
       count(*) AS occurred, max(e.occurred_at) AS last_occurred_at
  FROM debug_error_events AS e, correlator_state AS st
 WHERE st.id AND st.counted IS NOT NULL
   AND (e.ingest_xid IS NULL OR pg_visible_in_snapshot(e.ingest_xid, st.counted))
 GROUP BY 1, 2, 3

-- name: mark_counted
-- A rebuild counts every error visible now and records that snapshot (the transaction's, in
-- REPEATABLE READ): later runs count only errors committed after it.
UPDATE correlator_state SET counted = pg_current_snapshot() WHERE id

-- name: rebuild_occurrences
INSERT INTO known_fix_occurrences
       (error_type, agent_name, operation_name, occurred, last_occurred_at)
SELECT e.error_type, e.agent_name, coalesce(e.operation_name, ''), count(*), max(e.occurred_at)
  FROM debug_error_events AS e
 GROUP BY 1, 2, 3

-- name: expected_stats
-- known_fix_stats recomputed from the rows: every link, per the linked error's kind.
SELECT e.error_type, e.agent_name, coalesce(e.operation_name, '') AS operation_name,
       c.recovery_strategy, count(*) AS recovered,
       count(*) FILTER (WHERE c.confidence_score >= 0.7) AS confident,
       coalesce(sum(c.recovery_duration_ms), 0) AS duration_ms_sum,
       count(c.recovery_duration_ms) AS duration_count,
       coalesce(sum(c.confidence_score), 0) AS confidence_sum,
       (array_agg(DISTINCT c.correlation_id))[1:5] AS example_correlation_ids,
       max(s.occurred_at) AS last_recovered_at
  FROM debug_error_success_correlation AS c
  JOIN debug_error_events AS e ON e.id = c.error_event_id
  JOIN debug_success_events AS s ON s.id = c.success_event_id
 WHERE c.recovery_strategy IS NOT NULL
 GROUP BY 1, 2, 3, 4
