-- Queries of the retention purge (debug_sink.jobs.retention). Every batch is its own short
-- transaction: pick at most $3 rows older than the cutoff $2, from the time $1 on (keyset: the
-- next batch starts where this one ended, so deleted index entries are not rescanned), lock
-- them with FOR UPDATE SKIP LOCKED (a row a writer holds is left for the next run), delete.

-- name: purge_hooks
-- LLM and tool calls (hook_events): nothing references them.
WITH picked AS (
  SELECT id, created_at AS at FROM hook_events
   WHERE created_at >= $1 AND created_at < $2
   ORDER BY created_at LIMIT $3
     FOR UPDATE SKIP LOCKED
), gone AS (
  DELETE FROM hook_events AS t USING picked WHERE t.id = picked.id RETURNING 1
)
SELECT (SELECT count(*) FROM picked) AS picked, (SELECT max(at) FROM picked) AS last_at,
       (SELECT count(*) FROM gone) AS deleted

-- name: purge_transformations
-- Hand-overs between agents: a snapshot that references one keeps its row, the reference
-- becomes NULL (migration 006).
WITH picked AS (
  SELECT id, created_at AS at FROM agent_transformation_events
   WHERE created_at >= $1 AND created_at < $2
   ORDER BY created_at LIMIT $3
     FOR UPDATE SKIP LOCKED
), gone AS (
  DELETE FROM agent_transformation_events AS t USING picked WHERE t.id = picked.id RETURNING 1
)
SELECT (SELECT count(*) FROM picked) AS picked, (SELECT max(at) FROM picked) AS last_at,
       (SELECT count(*) FROM gone) AS deleted

-- name: purge_steps
WITH picked AS (
  SELECT id, started_at AS at FROM debug_workflow_steps
   WHERE started_at >= $1 AND started_at < $2
   ORDER BY started_at LIMIT $3
     FOR UPDATE SKIP LOCKED
), gone AS (
  DELETE FROM debug_workflow_steps AS t USING picked WHERE t.id = picked.id RETURNING 1
)
SELECT (SELECT count(*) FROM picked) AS picked, (SELECT max(at) FROM picked) AS last_at,
       (SELECT count(*) FROM gone) AS deleted

-- name: pick_errors
SELECT coalesce(array_agg(id), '{}') AS ids, count(*) AS picked, max(occurred_at) AS last_at
  FROM (SELECT id, occurred_at FROM debug_error_events
         WHERE occurred_at >= $1 AND occurred_at < $2
         ORDER BY occurred_at LIMIT $3
           FOR UPDATE SKIP LOCKED) AS p

-- name: pick_successes
SELECT coalesce(array_agg(id), '{}') AS ids, count(*) AS picked, max(occurred_at) AS last_at
  FROM (SELECT id, occurred_at FROM debug_success_events
         WHERE occurred_at >= $1 AND occurred_at < $2
         ORDER BY occurred_at LIMIT $3
           FOR UPDATE SKIP LOCKED) AS p

-- name: purge_links
-- The links of the errors $1 or of the successes $2 (children before parents), and their
-- share of known_fix_stats. Links the correlator did not make (no recovery_strategy) were
-- never counted.
WITH gone AS (
  DELETE FROM debug_error_success_correlation AS c
   WHERE c.error_event_id = ANY ($1::uuid[]) OR c.success_event_id = ANY ($2::uuid[])
  RETURNING c.error_event_id, c.correlation_id, c.recovery_strategy, c.recovery_duration_ms,
            c.confidence_score, c.link_source
), agg AS (
  SELECT e.error_type, e.agent_name, coalesce(e.operation_name, '') AS operation_name,
         g.recovery_strategy, count(*) AS n,
         count(*) FILTER (WHERE g.confidence_score >= 0.7) AS confident,
         coalesce(sum(g.recovery_duration_ms), 0) AS duration_ms_sum,
         count(g.recovery_duration_ms) AS duration_count,
         coalesce(sum(g.confidence_score), 0) AS confidence_sum,
         count(*) FILTER (WHERE g.link_source = 'stated') AS stated
    FROM gone AS g
    JOIN debug_error_events AS e ON e.id = g.error_event_id
   WHERE g.recovery_strategy IS NOT NULL
   GROUP BY 1, 2, 3, 4
), counted AS (
  UPDATE known_fix_stats AS k
     SET recovered = greatest(k.recovered - a.n, 0),
         confident = greatest(k.confident - a.confident, 0),
         duration_ms_sum = greatest(k.duration_ms_sum - a.duration_ms_sum, 0),
         duration_count = greatest(k.duration_count - a.duration_count, 0),
         confidence_sum = greatest(k.confidence_sum - a.confidence_sum, 0),
         stated = greatest(k.stated - a.stated, 0)
    FROM agg AS a
   WHERE k.error_type = a.error_type AND k.agent_name = a.agent_name
     AND k.operation_name = a.operation_name AND k.recovery_strategy = a.recovery_strategy
  RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT count(*) FROM counted) AS stats_rows,
       (SELECT jsonb_agg(jsonb_build_array(a.error_type, a.agent_name, a.operation_name,
                                           a.recovery_strategy))
          FROM agg AS a) AS keys

-- name: purge_agreement
-- The correlator's agreement rows of the errors $1 and their share of the totals in
-- correlator_state (without this they would go with their errors, ON DELETE CASCADE, and the
-- totals would keep counting them). The caller holds the aggregate lock.
WITH gone AS (
  DELETE FROM correlator_agreement AS a WHERE a.error_event_id = ANY ($1::uuid[])
  RETURNING a.stated_success_id AS s, a.inferred_success_id AS i
), counted AS (
  UPDATE correlator_state AS st
     SET agreement_agreed = greatest(st.agreement_agreed - x.agreed, 0),
         agreement_wrong = greatest(st.agreement_wrong - x.wrong, 0),
         agreement_missed = greatest(st.agreement_missed - x.missed, 0)
    FROM (SELECT count(*) FILTER (WHERE g.s = g.i) AS agreed,
                 count(*) FILTER (WHERE g.i IS NOT NULL AND g.i IS DISTINCT FROM g.s) AS wrong,
                 count(*) FILTER (WHERE g.s IS NOT NULL AND g.s IS DISTINCT FROM g.i) AS missed,
                 count(*) AS n
            FROM gone AS g) AS x
   WHERE st.id AND x.n > 0
  RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT count(*) FROM counted) AS stats_rows

-- name: purge_errors
-- The errors $1 and their share of known_fix_occurrences: only the errors it counts (visible
-- in correlator_state.counted; rows older than migration 008 have no ingest_xid and are
-- visible in any snapshot). The caller holds the aggregate lock, so no run is in progress.
WITH gone AS (
  DELETE FROM debug_error_events AS e WHERE e.id = ANY ($1::uuid[])
  RETURNING e.error_type, e.agent_name, coalesce(e.operation_name, '') AS operation_name,
            e.ingest_xid
), agg AS (
  SELECT g.error_type, g.agent_name, g.operation_name, count(*) AS n
    FROM gone AS g, correlator_state AS st
   WHERE st.id AND st.counted IS NOT NULL
     AND (g.ingest_xid IS NULL OR pg_visible_in_snapshot(g.ingest_xid, st.counted))
   GROUP BY 1, 2, 3
), counted AS (
  UPDATE known_fix_occurrences AS o
     SET occurred = greatest(o.occurred - a.n, 0)
    FROM agg AS a
   WHERE o.error_type = a.error_type AND o.agent_name = a.agent_name
     AND o.operation_name = a.operation_name
  RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT count(*) FROM counted) AS stats_rows

-- name: purge_successes
-- The successes $1 and their share of correlator_operations (migration 015), counted like
-- the errors' share of known_fix_occurrences above.
WITH gone AS (
  DELETE FROM debug_success_events AS s WHERE s.id = ANY ($1::uuid[])
  RETURNING s.agent_name, s.operation_name, s.success_type, s.ingest_xid
), agg AS (
  SELECT g.agent_name, g.operation_name, count(*) AS n,
         count(*) FILTER (WHERE g.success_type = 'recovery_success') AS typed
    FROM gone AS g, correlator_state AS st
   WHERE st.id AND st.counted IS NOT NULL
     AND (g.ingest_xid IS NULL OR pg_visible_in_snapshot(g.ingest_xid, st.counted))
   GROUP BY 1, 2
), counted AS (
  UPDATE correlator_operations AS o
     SET successes = greatest(o.successes - a.n, 0),
         typed_recoveries = greatest(o.typed_recoveries - a.typed, 0)
    FROM agg AS a
   WHERE o.agent_name = a.agent_name AND o.operation_name = a.operation_name
  RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT count(*) FROM counted) AS stats_rows

-- name: purge_snapshots
-- References to a deleted snapshot become NULL (migration 006); its aliases go with it.
WITH picked AS (
  SELECT id, captured_at AS at FROM debug_state_snapshots
   WHERE captured_at >= $1 AND captured_at < $2
   ORDER BY captured_at LIMIT $3
     FOR UPDATE SKIP LOCKED
), gone AS (
  DELETE FROM debug_state_snapshots AS t USING picked WHERE t.id = picked.id RETURNING 1
)
SELECT (SELECT count(*) FROM picked) AS picked, (SELECT max(at) FROM picked) AS last_at,
       (SELECT count(*) FROM gone) AS deleted

-- name: purge_dead_letters
WITH picked AS (
  SELECT id, received_at AS at FROM sink_dead_letters
   WHERE received_at >= $1 AND received_at < $2
   ORDER BY received_at LIMIT $3
     FOR UPDATE SKIP LOCKED
), gone AS (
  DELETE FROM sink_dead_letters AS t USING picked WHERE t.id = picked.id RETURNING 1
)
SELECT (SELECT count(*) FROM picked) AS picked, (SELECT max(at) FROM picked) AS last_at,
       (SELECT count(*) FROM gone) AS deleted

-- name: purge_parked
-- Parked events long past their grace period: the sink would have written them at
-- expires_at; one still here after the retention period is not coming back.
WITH picked AS (
  SELECT id, parked_at AS at FROM sink_parked_events
   WHERE parked_at >= $1 AND parked_at < $2 AND expires_at < $2
   ORDER BY parked_at LIMIT $3
     FOR UPDATE SKIP LOCKED
), gone AS (
  DELETE FROM sink_parked_events AS t USING picked WHERE t.id = picked.id RETURNING 1
)
SELECT (SELECT count(*) FROM picked) AS picked, (SELECT max(at) FROM picked) AS last_at,
       (SELECT count(*) FROM gone) AS deleted

-- name: count_old
-- What a purge with cutoff $1 would delete (dead letters and parked events: cutoff $2).
SELECT
  (SELECT count(*) FROM hook_events WHERE created_at < $1) AS hook_events,
  (SELECT count(*) FROM agent_transformation_events WHERE created_at < $1)
    AS agent_transformation_events,
  (SELECT count(*) FROM debug_workflow_steps WHERE started_at < $1) AS debug_workflow_steps,
  (SELECT count(*) FROM debug_error_success_correlation AS c
    WHERE EXISTS (SELECT 1 FROM debug_error_events AS e
                   WHERE e.id = c.error_event_id AND e.occurred_at < $1)
       OR EXISTS (SELECT 1 FROM debug_success_events AS s
                   WHERE s.id = c.success_event_id AND s.occurred_at < $1))
    AS debug_error_success_correlation,
  (SELECT count(*) FROM debug_error_events WHERE occurred_at < $1) AS debug_error_events,
  (SELECT count(*) FROM debug_success_events WHERE occurred_at < $1) AS debug_success_events,
  (SELECT count(*) FROM debug_state_snapshots WHERE captured_at < $1) AS debug_state_snapshots,
  (SELECT count(*) FROM sink_dead_letters WHERE received_at < $2) AS sink_dead_letters,
  (SELECT count(*) FROM sink_parked_events WHERE parked_at < $2 AND expires_at < $2)
    AS sink_parked_events
