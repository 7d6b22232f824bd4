-- Named read queries of debug_sink.queries.DebugQueries.
--
-- Each query starts with a line `-- name: <query_name>` and ends where the next one starts.
-- Objects are unqualified: connections run with search_path = the configured schema.
-- Parameters are positional ($1, $2, ...) and documented per query.

-- name: workflow_summary
-- $1 correlation_id. Always one row (zeros for an unknown workflow).
SELECT * FROM get_workflow_debug_summary($1::uuid);

-- name: workflow_context
-- $1 correlation_id. One row, or none when the workflow has no steps, errors, successes or
-- snapshots.
SELECT * FROM debug_workflow_context WHERE correlation_id = $1::uuid;

-- name: errors
-- $1 correlation_id or NULL, $2 occurred at or after (or NULL), $3 error_type or NULL,
-- $4 agent_name or NULL, $5 error_severity or NULL, $6 limit.
-- recovered: marked recovered, resolved, or linked to a success by the correlator (the
-- definition of get_workflow_debug_summary's unrecovered_error_count, negated).
SELECT e.id, e.correlation_id, e.session_id, e.error_type, e.error_category, e.error_severity,
       e.error_message, e.error_stack_trace, e.error_code, e.agent_name, e.operation_name,
       e.execution_step, e.state_snapshot_id, e.is_recoverable, e.recovery_attempted,
       e.recovery_successful, e.recovery_strategy, e.metadata, e.occurred_at, e.resolved_at,
       (e.recovery_successful IS TRUE OR e.resolved_at IS NOT NULL
        OR EXISTS (SELECT 1 FROM debug_error_success_correlation AS c
                    WHERE c.error_event_id = e.id)) AS recovered
  FROM debug_error_events AS e
 WHERE ($1::uuid IS NULL OR e.correlation_id = $1::uuid)
   AND ($2::timestamptz IS NULL OR e.occurred_at >= $2::timestamptz)
   AND ($3::text IS NULL OR e.error_type = $3::text)
   AND ($4::text IS NULL OR e.agent_name = $4::text)
   AND ($5::text IS NULL OR e.error_severity = $5::text)
 ORDER BY e.occurred_at DESC, e.id
 LIMIT $6;

-- name: error_groups
-- $1 occurred at or after, $2 limit. Errors since $1 grouped by error_type, most frequent
-- first; severity is the worst seen; last_* describe the most recent error of the group
-- (looked up once per group through the occurred_at index: an array of every message of
-- a group was built before, which passed PostgreSQL's 1 GB limit -- an error, and a GB of
-- memory -- with 17,000 messages of 64 KiB).
WITH groups AS (
  SELECT e.error_type,
         count(*) AS error_count,
         count(DISTINCT e.correlation_id) AS workflow_count,
         (ARRAY['low', 'medium', 'high', 'critical'])[max(
           CASE e.error_severity WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3
                                 ELSE 4 END)] AS worst_severity,
         count(*) FILTER (
           WHERE e.recovery_successful IS TRUE OR e.resolved_at IS NOT NULL
              OR EXISTS (SELECT 1 FROM debug_error_success_correlation AS c
                          WHERE c.error_event_id = e.id)) AS recovered_count,
         array_agg(DISTINCT e.agent_name::text ORDER BY e.agent_name::text) AS agents,
         min(e.occurred_at) AS first_seen,
         max(e.occurred_at) AS last_seen
    FROM debug_error_events AS e
   WHERE e.occurred_at >= $1::timestamptz
   GROUP BY e.error_type
   ORDER BY error_count DESC, e.error_type
   LIMIT $2
)
SELECT g.error_type, g.error_count, g.workflow_count, g.worst_severity, g.recovered_count,
       g.agents, g.first_seen, g.last_seen, l.error_message AS last_message,
       l.correlation_id AS last_correlation_id
  FROM groups AS g
 CROSS JOIN LATERAL (
   SELECT x.error_message, x.correlation_id
     FROM debug_error_events AS x
    WHERE x.occurred_at = g.last_seen AND x.error_type = g.error_type
    ORDER BY x.id
    LIMIT 1
 ) AS l
 ORDER BY g.error_count DESC, g.error_type;

-- name: llm_calls
-- $1 correlation_id. The rows of debug_llm_call_summary with the hook's agent, step and
-- latency (when the producer sent them, as the SDK does).
SELECT l.hook_event_id, l.session_id, l.correlation_id, l.tool_name, l.quality_score,
       l.success_classification, l.call_timestamp,
       h.metadata->>'agent_name' AS agent_name,
       CASE WHEN h.metadata->>'execution_step' ~ '^[0-9]{1,9}$'
            THEN (h.metadata->>'execution_step')::integer END AS execution_step,
       CASE WHEN jsonb_typeof(h.payload->'quality_metrics'->'latency_ms') = 'number'
            THEN (h.payload->'quality_metrics'->>'latency_ms')::float8 END AS latency_ms,
       h.payload
  FROM debug_llm_call_summary AS l
  JOIN hook_events AS h ON h.id = l.hook_event_id
 WHERE l.correlation_id = $1::uuid
 ORDER BY l.call_timestamp, l.hook_event_id;

-- name: recovery_patterns
-- $1 minimum success_count. The quickstart's "SELECT * FROM debug_error_recovery_patterns
-- WHERE success_count >= 3 ORDER BY success_count DESC", with a stable tie-break.
SELECT *
  FROM debug_error_recovery_patterns
 WHERE success_count >= $1::bigint
 ORDER BY success_count DESC, error_type, recovery_strategy NULLS LAST;

-- name: known_fixes
-- $1 error_type, $2 agent_name or NULL, $3 operation_name or NULL, $4 limit.
-- known_fixes() is defined by migration 008.
SELECT * FROM known_fixes($1::text, $2::text, $3::text, $4::integer);

-- name: correlator_agreement
-- $1 since (the errors' occurred_at; NULL: every retained row). The correlator's blind
-- inference against the links agents stated (correlator_agreement, migration 011): per error
-- that can be compared, agreed = inferred the stated link, wrong = inferred a link the agents
-- contradict, missed = did not infer the stated link; in total (agent_name NULL) and per
-- agent of the error.
SELECT e.agent_name::text AS agent_name,
       count(*) FILTER (WHERE a.stated_success_id = a.inferred_success_id) AS agreed,
       count(*) FILTER (WHERE a.inferred_success_id IS NOT NULL
                          AND a.inferred_success_id IS DISTINCT FROM a.stated_success_id)
         AS wrong,
       count(*) FILTER (WHERE a.stated_success_id IS NOT NULL
                          AND a.stated_success_id IS DISTINCT FROM a.inferred_success_id)
         AS missed
  FROM correlator_agreement AS a
  JOIN debug_error_events AS e ON e.id = a.error_event_id
 WHERE $1::timestamptz IS NULL OR a.occurred_at >= $1::timestamptz
 GROUP BY GROUPING SETS ((), (e.agent_name))
 ORDER BY e.agent_name NULLS FIRST;

-- name: function_exists
-- $1 function name: whether a function of that name is visible on the search_path.
SELECT EXISTS (
  SELECT 1 FROM pg_proc AS p
  JOIN pg_namespace AS ns ON ns.oid = p.pronamespace
   WHERE p.proname = $1::name
     AND ns.nspname = ANY (current_schemas(false))
);

-- name: timeline
-- $1 correlation_id, $2 at most this many events (NULL: all). The workflow's events as (kind,
-- id, at, agent_name, step_number, attempt, follows, data): follows = ids that must come
-- before it (see debug_sink.timeline); data = the row without its bulky columns (agent_state,
-- stack trace, step input/output; a snapshot's columns are named, so that its state -- up to
-- 1 MB -- is not even read). With $2, the first $2 events by (at, kind, id): each
-- table gives at most its own first $2 rows (by time, through its correlation_id index where
-- it has one) before any row is turned into JSON, so a workflow of millions of events costs
-- a page of them.
SELECT 'step' AS kind, s.id, s.started_at AS at, s.agent_name::text AS agent_name,
       s.step_number, s.attempt, ARRAY[]::uuid[] AS follows,
       to_jsonb(s) - 'input_data' - 'output_data' AS data
  FROM (SELECT * FROM debug_workflow_steps WHERE correlation_id = $1::uuid
         ORDER BY started_at, id LIMIT $2::bigint) AS s
UNION ALL
SELECT 'snapshot', n.id, n.captured_at, n.agent_name::text, n.execution_step, NULL,
       array_remove(ARRAY[n.parent_snapshot_id], NULL),
       to_jsonb(n)
  FROM (SELECT id, snapshot_type, correlation_id, session_id, agent_name, state_hash,
               execution_step, task_description, user_request, state_size_bytes,
               variables_count, context_depth, memory_usage_mb, cpu_time_ms, wall_time_ms,
               transformation_event_id, parent_snapshot_id, metadata, captured_at
          FROM debug_state_snapshots WHERE correlation_id = $1::uuid
         ORDER BY captured_at, id LIMIT $2::bigint) AS n
UNION ALL
SELECT 'error', e.id, e.occurred_at, e.agent_name::text, e.execution_step, NULL,
       array_remove(ARRAY[e.state_snapshot_id], NULL)
         || ARRAY(SELECT w.id FROM debug_workflow_steps AS w
                   WHERE w.correlation_id = $1::uuid AND w.error_event_id = e.id),
       (to_jsonb(e) - 'error_stack_trace')
         || jsonb_build_object('recoveries', coalesce((
              SELECT jsonb_agg(jsonb_build_object(
                       'success_event_id', c.success_event_id,
                       'recovery_strategy', c.recovery_strategy,
                       'recovery_duration_ms', c.recovery_duration_ms,
                       'confidence_score', c.confidence_score,
                       'success_type', se.success_type,
                       'operation_name', se.operation_name,
                       'occurred_at', se.occurred_at)
                     ORDER BY se.occurred_at, c.success_event_id)
                FROM debug_error_success_correlation AS c
                JOIN debug_success_events AS se ON se.id = c.success_event_id
               WHERE c.error_event_id = e.id), '[]'::jsonb))
  FROM (SELECT * FROM debug_error_events WHERE correlation_id = $1::uuid
         ORDER BY occurred_at, id LIMIT $2::bigint) AS e
UNION ALL
SELECT 'success', u.id, u.occurred_at, u.agent_name::text, u.execution_step, NULL,
       array_remove(ARRAY[u.state_snapshot_id], NULL)
         || ARRAY(SELECT w.id FROM debug_workflow_steps AS w
                   WHERE w.correlation_id = $1::uuid AND w.success_event_id = u.id)
         || ARRAY(SELECT c.error_event_id FROM debug_error_success_correlation AS c
                   WHERE c.success_event_id = u.id),
       to_jsonb(u)
  FROM (SELECT * FROM debug_success_events WHERE correlation_id = $1::uuid
         ORDER BY occurred_at, id LIMIT $2::bigint) AS u
UNION ALL
SELECT 'transformation', t.id, t.created_at, t.source_agent::text, NULL, NULL,
       array_remove(ARRAY[t.state_snapshot_id, t.error_event_id], NULL),
       to_jsonb(t)
  FROM (SELECT * FROM agent_transformation_events WHERE correlation_id = $1::uuid
         ORDER BY created_at, id LIMIT $2::bigint) AS t
UNION ALL
SELECT 'llm_call', h.id, h.created_at, h.metadata->>'agent_name',
       CASE WHEN h.metadata->>'execution_step' ~ '^[0-9]{1,9}$'
            THEN (h.metadata->>'execution_step')::integer END,
       NULL, ARRAY[]::uuid[],
       jsonb_build_object('tool_name', h.resource_id, 'source', h.source,
                          'quality_score', h.payload->'quality_metrics'->'quality_score',
                          'latency_ms', h.payload->'quality_metrics'->'latency_ms',
                          'success_classification', h.payload->'success_classification',
                          'usage', h.payload->'usage', 'metadata', h.metadata)
  FROM (SELECT * FROM hook_events WHERE correlation_id = $1::uuid AND source = 'PostToolUse'
         ORDER BY created_at, id LIMIT $2::bigint) AS h
 ORDER BY at, kind, id
 LIMIT $2::bigint;

-- name: snapshots
-- $1 snapshot ids (a duplicate's id resolves to the kept snapshot through
-- sink_snapshot_aliases). One row per id found: requested_id, and the snapshot with its state.
SELECT r.requested_id, s.id, s.snapshot_type, s.correlation_id, s.agent_name, s.agent_state,
       s.state_hash, s.state_size_bytes, s.execution_step, s.captured_at
  FROM unnest($1::uuid[]) AS r(requested_id)
  LEFT JOIN sink_snapshot_aliases AS a ON a.alias_id = r.requested_id
  JOIN debug_state_snapshots AS s ON s.id = coalesce(a.snapshot_id, r.requested_id);

-- name: snapshot_sizes
-- $1 snapshot ids (a duplicate's id resolves as in `snapshots`). One row per id found:
-- requested_id and the bytes of its state (state_size_bytes, the sink's canonical JSON;
-- else the stored size), without reading the state.
SELECT r.requested_id,
       coalesce(s.state_size_bytes, pg_column_size(s.agent_state))::bigint AS state_bytes
  FROM unnest($1::uuid[]) AS r(requested_id)
  LEFT JOIN sink_snapshot_aliases AS a ON a.alias_id = r.requested_id
  JOIN debug_state_snapshots AS s ON s.id = coalesce(a.snapshot_id, r.requested_id);

-- name: workflows
-- Recent workflows, latest activity first (keyset pagination: pass the last row's
-- (last_event_at, correlation_id) as $2, $3 to get the next page).
-- $1 active at or after (timestamptz), $2 last activity before this (NULL: the latest),
-- $3 with $2: the tie-break correlation id, $4 agent_name or NULL, $5 status or NULL,
-- $6 error_type or NULL, $7 limit, $8 seconds: an open step with activity this recent is
-- "running".
-- Candidates come from every event table through its time index (migrations 006 and 012):
-- what happened since $1 (the whole window, also for a later page: a workflow's last
-- activity must be the same on every page). They are sorted before the per-workflow lookups
-- (each through the correlation_id indexes), so a page stops after $7 matching workflows.
-- status: running   a step is open (started, not finished) and the workflow was active
--                   within $8 seconds;
--         failed    its last step (highest step_number, latest attempt) failed, or is open
--                   and the workflow went silent;
--         unrecovered  some error is neither linked to a recovery by the correlator, nor
--                   marked recovered or resolved (a retry that worked counts once the
--                   correlator has run);
--         recovered errors, all recovered;  ok  no errors.
WITH activity AS (
  SELECT correlation_id, greatest(started_at, completed_at) AS at
    FROM debug_workflow_steps
   WHERE started_at >= $1::timestamptz
  UNION ALL
  SELECT correlation_id, occurred_at FROM debug_error_events
   WHERE occurred_at >= $1::timestamptz
  UNION ALL
  SELECT correlation_id, occurred_at FROM debug_success_events
   WHERE occurred_at >= $1::timestamptz
  UNION ALL
  SELECT correlation_id, captured_at FROM debug_state_snapshots
   WHERE captured_at >= $1::timestamptz
  UNION ALL
  SELECT correlation_id, created_at FROM agent_transformation_events
   WHERE created_at >= $1::timestamptz
  UNION ALL
  SELECT correlation_id, created_at FROM hook_events
   WHERE created_at >= $1::timestamptz
     AND correlation_id IS NOT NULL
), candidates AS (
  SELECT correlation_id, max(at) AS last_at
    FROM activity
   GROUP BY correlation_id
), page AS (
  SELECT correlation_id, last_at
    FROM candidates
   WHERE $2::timestamptz IS NULL OR (last_at, correlation_id) < ($2::timestamptz, $3::uuid)
   ORDER BY last_at DESC, correlation_id DESC
)
SELECT p.correlation_id, x.status, s.agents_involved AS agents, s.step_count,
       s.failed_step_count, s.error_count, s.unrecovered_error_count, s.success_count,
       s.recovery_count, s.llm_call_count,
       coalesce(least(s.first_event_at, p.last_at), p.last_at) AS first_event_at,
       p.last_at AS last_event_at,
       EXTRACT(EPOCH FROM p.last_at - coalesce(least(s.first_event_at, p.last_at), p.last_at))
         * 1000 AS duration_ms
  FROM page AS p
 CROSS JOIN LATERAL get_workflow_debug_summary(p.correlation_id) AS s
 CROSS JOIN LATERAL (
   SELECT (SELECT w.status FROM debug_workflow_steps AS w
            WHERE w.correlation_id = p.correlation_id
            ORDER BY w.step_number DESC, w.attempt DESC LIMIT 1) AS last_status,
          EXISTS (SELECT 1 FROM debug_workflow_steps AS w
                   WHERE w.correlation_id = p.correlation_id AND w.status = 'started') AS open
 ) AS st
 CROSS JOIN LATERAL (
   SELECT CASE
            WHEN st.open AND p.last_at >= clock_timestamp() - make_interval(secs => $8::float8)
              THEN 'running'
            WHEN st.last_status IN ('failed', 'started') THEN 'failed'
            WHEN s.unrecovered_error_count > 0 THEN 'unrecovered'
            WHEN s.error_count > 0 THEN 'recovered'
            ELSE 'ok'
          END AS status
 ) AS x
 WHERE ($4::text IS NULL OR $4::text = ANY (s.agents_involved))
   AND ($5::text IS NULL OR x.status = $5::text)
   AND ($6::text IS NULL OR EXISTS (SELECT 1 FROM debug_error_events AS e
                                     WHERE e.correlation_id = p.correlation_id
                                       AND e.error_type = $6::text))
 ORDER BY p.last_at DESC, p.correlation_id DESC
 LIMIT $7::integer;

-- name: workflow_ids_in_range
-- $1 lowest, $2 highest uuid (a prefix's range): up to 5 distinct correlation ids of stored
-- events in the range, each table read through its correlation_id index.
SELECT DISTINCT correlation_id FROM (
  (SELECT DISTINCT correlation_id FROM debug_workflow_steps
    WHERE correlation_id BETWEEN $1::uuid AND $2::uuid ORDER BY 1 LIMIT 5)
  UNION ALL
  (SELECT DISTINCT correlation_id FROM debug_error_events
    WHERE correlation_id BETWEEN $1::uuid AND $2::uuid ORDER BY 1 LIMIT 5)
  UNION ALL
  (SELECT DISTINCT correlation_id FROM debug_success_events
    WHERE correlation_id BETWEEN $1::uuid AND $2::uuid ORDER BY 1 LIMIT 5)
  UNION ALL
  (SELECT DISTINCT correlation_id FROM debug_state_snapshots
    WHERE correlation_id BETWEEN $1::uuid AND $2::uuid ORDER BY 1 LIMIT 5)
  UNION ALL
  (SELECT DISTINCT correlation_id FROM agent_transformation_events
    WHERE correlation_id BETWEEN $1::uuid AND $2::uuid ORDER BY 1 LIMIT 5)
  UNION ALL
  (SELECT DISTINCT correlation_id FROM hook_events
    WHERE source = 'PostToolUse' AND correlation_id IS NOT NULL
      AND correlation_id BETWEEN $1::uuid AND $2::uuid ORDER BY 1 LIMIT 5)
) AS found
ORDER BY 1
LIMIT 5;

-- ---------------------------------------------------------------------------------------------
-- The web view (debug_sink.ui) reads through the queries below; so may anyone else.
-- ---------------------------------------------------------------------------------------------

-- name: activity_latest
-- The activity stream of the workflow list (DebugQueries.workflow_page), newest first: one
-- row per event, (correlation_id, at), at or after $1 (NULL: any time), at most $2 rows.
-- "Activity" is the time of an event as each table's time index has it: a step's start, an
-- error's or a success's occurrence, a snapshot's capture, a hand-over's and an LLM call's
-- creation. Each branch is a backward scan of that index (migrations 006 and 012) cut at $2
-- rows, and the branches are merged: the cost is the rows read, not the tables' size. (The
-- cut in each branch is what makes the planner scan hook_events' time index backwards; over
-- the whole union it sorted every LLM call instead -- 35 ms at 1M events, 0.7 ms cut.)
-- Ties in time go by correlation id, descending: the order activity_before continues.
SELECT correlation_id, at FROM (
  (SELECT correlation_id, started_at AS at FROM debug_workflow_steps
    WHERE started_at >= coalesce($1::timestamptz, '-infinity')
    ORDER BY started_at DESC, correlation_id DESC LIMIT $2::integer)
  UNION ALL
  (SELECT correlation_id, occurred_at FROM debug_error_events
    WHERE occurred_at >= coalesce($1::timestamptz, '-infinity')
    ORDER BY occurred_at DESC, correlation_id DESC LIMIT $2::integer)
  UNION ALL
  (SELECT correlation_id, occurred_at FROM debug_success_events
    WHERE occurred_at >= coalesce($1::timestamptz, '-infinity')
    ORDER BY occurred_at DESC, correlation_id DESC LIMIT $2::integer)
  UNION ALL
  (SELECT correlation_id, captured_at FROM debug_state_snapshots
    WHERE captured_at >= coalesce($1::timestamptz, '-infinity')
    ORDER BY captured_at DESC, correlation_id DESC LIMIT $2::integer)
  UNION ALL
  (SELECT correlation_id, created_at FROM agent_transformation_events
    WHERE created_at >= coalesce($1::timestamptz, '-infinity')
    ORDER BY created_at DESC, correlation_id DESC LIMIT $2::integer)
  UNION ALL
  (SELECT correlation_id, created_at FROM hook_events
    WHERE source = 'PostToolUse' AND correlation_id IS NOT NULL
      AND created_at >= coalesce($1::timestamptz, '-infinity')
    ORDER BY created_at DESC, correlation_id DESC LIMIT $2::integer)
) AS a
 ORDER BY at DESC, correlation_id DESC
 LIMIT $2::integer;

-- name: activity_before
-- activity_latest continued below a position: events at or after $1 (NULL: any time) and
-- before ($2 at, $3 correlation_id) in the stream's order -- earlier, or at the same moment
-- of a smaller id -- at most $4 rows. (A separate query, not a NULL test in one: the cursor
-- must be an index bound in every plan.)
SELECT correlation_id, at FROM (
  (SELECT correlation_id, started_at AS at FROM debug_workflow_steps
    WHERE started_at >= coalesce($1::timestamptz, '-infinity') AND started_at <= $2::timestamptz
      AND (started_at < $2::timestamptz OR correlation_id < $3::uuid)
    ORDER BY started_at DESC, correlation_id DESC LIMIT $4::integer)
  UNION ALL
  (SELECT correlation_id, occurred_at FROM debug_error_events
    WHERE occurred_at >= coalesce($1::timestamptz, '-infinity') AND occurred_at <= $2::timestamptz
      AND (occurred_at < $2::timestamptz OR correlation_id < $3::uuid)
    ORDER BY occurred_at DESC, correlation_id DESC LIMIT $4::integer)
  UNION ALL
  (SELECT correlation_id, occurred_at FROM debug_success_events
    WHERE occurred_at >= coalesce($1::timestamptz, '-infinity') AND occurred_at <= $2::timestamptz
      AND (occurred_at < $2::timestamptz OR correlation_id < $3::uuid)
    ORDER BY occurred_at DESC, correlation_id DESC LIMIT $4::integer)
  UNION ALL
  (SELECT correlation_id, captured_at FROM debug_state_snapshots
    WHERE captured_at >= coalesce($1::timestamptz, '-infinity') AND captured_at <= $2::timestamptz
      AND (captured_at < $2::timestamptz OR correlation_id < $3::uuid)
    ORDER BY captured_at DESC, correlation_id DESC LIMIT $4::integer)
  UNION ALL
  (SELECT correlation_id, created_at FROM agent_transformation_events
    WHERE created_at >= coalesce($1::timestamptz, '-infinity') AND created_at <= $2::timestamptz
      AND (created_at < $2::timestamptz OR correlation_id < $3::uuid)
    ORDER BY created_at DESC, correlation_id DESC LIMIT $4::integer)
  UNION ALL
  (SELECT correlation_id, created_at FROM hook_events
    WHERE source = 'PostToolUse' AND correlation_id IS NOT NULL
      AND created_at >= coalesce($1::timestamptz, '-infinity') AND created_at <= $2::timestamptz
      AND (created_at < $2::timestamptz OR correlation_id < $3::uuid)
    ORDER BY created_at DESC, correlation_id DESC LIMIT $4::integer)
) AS a
 ORDER BY at DESC, correlation_id DESC
 LIMIT $4::integer;

-- name: workflow_page_rows
-- The workflows of one slice of the activity stream, in stream order: $1 correlation ids
-- (each at its first, i.e. latest, position in the stream), $2 those positions' times. A
-- workflow is kept when its last activity (the latest of the times activity_latest reads)
-- is its position -- a later event means it belongs to an earlier page -- and it passes the
-- filters: $3 agent_name (among the agents of its steps, errors, successes or snapshots),
-- $4 status, $5 an error type that occurred in it (NULL: any); at most $6 rows; $7 seconds:
-- an open step with activity this recent is "running".
-- status: the rule of the `workflows` query above (running, failed, unrecovered, recovered,
-- ok), on the same columns; tests/integration/ui holds the two to the same answers.
-- Cheapest first: the status columns (three index probes) and the filters decide in
-- `candidate` -- each filter condition there is necessary for the status it asks, so the
-- planner drops most rows before `decided` looks up the last activity (six probes) -- and
-- the columns of the list are looked up only for the rows that are kept: the counts and
-- agents of get_workflow_debug_summary (the same definitions), inline, because that function
-- (SET search_path) is not inlined and cost 0.4 ms a row at 1M events, ten times these.
WITH candidate AS (
  SELECT c.n, c.correlation_id, c.position_at, st.last_status, st.open, er.error_count,
         er.unrecovered_error_count
    FROM unnest($1::uuid[], $2::timestamptz[]) WITH ORDINALITY AS c(correlation_id, position_at, n)
   CROSS JOIN LATERAL (
     SELECT (SELECT w.status FROM debug_workflow_steps AS w
              WHERE w.correlation_id = c.correlation_id
              ORDER BY w.step_number DESC, w.attempt DESC LIMIT 1) AS last_status,
            EXISTS (SELECT 1 FROM debug_workflow_steps AS w
                     WHERE w.correlation_id = c.correlation_id AND w.status = 'started') AS open
   ) AS st
   CROSS JOIN LATERAL (
     SELECT count(*) AS error_count,
            count(*) FILTER (
              WHERE e.recovery_successful IS NOT TRUE AND e.resolved_at IS NULL
                AND NOT EXISTS (SELECT 1 FROM debug_error_success_correlation AS l
                                 WHERE l.error_event_id = e.id)) AS unrecovered_error_count
       FROM debug_error_events AS e
      WHERE e.correlation_id = c.correlation_id
   ) AS er
   WHERE CASE $4::text
           WHEN 'running' THEN st.open
           WHEN 'failed' THEN st.last_status IN ('failed', 'started')
           WHEN 'unrecovered' THEN er.unrecovered_error_count > 0
           WHEN 'recovered' THEN er.error_count > 0 AND er.unrecovered_error_count = 0
           WHEN 'ok' THEN er.error_count = 0
           ELSE TRUE
         END
     AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM debug_error_events AS e
                                       WHERE e.correlation_id = c.correlation_id
                                         AND e.error_type = $5::text))
     AND ($3::text IS NULL
          OR EXISTS (SELECT 1 FROM debug_workflow_steps AS w
                      WHERE w.correlation_id = c.correlation_id AND w.agent_name = $3::text)
          OR EXISTS (SELECT 1 FROM debug_error_events AS e
                      WHERE e.correlation_id = c.correlation_id AND e.agent_name = $3::text)
          OR EXISTS (SELECT 1 FROM debug_success_events AS u
                      WHERE u.correlation_id = c.correlation_id AND u.agent_name = $3::text)
          OR EXISTS (SELECT 1 FROM debug_state_snapshots AS s
                      WHERE s.correlation_id = c.correlation_id AND s.agent_name = $3::text))
), decided AS (
  SELECT d.*, la.last_at,
         CASE
           WHEN d.open AND la.last_at >= clock_timestamp() - make_interval(secs => $7::float8)
             THEN 'running'
           WHEN d.last_status IN ('failed', 'started') THEN 'failed'
           WHEN d.unrecovered_error_count > 0 THEN 'unrecovered'
           WHEN d.error_count > 0 THEN 'recovered'
           ELSE 'ok'
         END AS status
    FROM candidate AS d
   CROSS JOIN LATERAL (
     SELECT greatest(
       (SELECT max(w.started_at) FROM debug_workflow_steps AS w
         WHERE w.correlation_id = d.correlation_id),
       (SELECT max(e.occurred_at) FROM debug_error_events AS e
         WHERE e.correlation_id = d.correlation_id),
       (SELECT max(u.occurred_at) FROM debug_success_events AS u
         WHERE u.correlation_id = d.correlation_id),
       (SELECT max(s.captured_at) FROM debug_state_snapshots AS s
         WHERE s.correlation_id = d.correlation_id),
       (SELECT max(t.created_at) FROM agent_transformation_events AS t
         WHERE t.correlation_id = d.correlation_id),
       (SELECT max(h.created_at) FROM hook_events AS h
         WHERE h.correlation_id = d.correlation_id AND h.source = 'PostToolUse')
     ) AS last_at
   ) AS la
   WHERE la.last_at <= d.position_at
), kept AS (
  SELECT *
    FROM decided
   WHERE $4::text IS NULL OR status = $4::text
   ORDER BY n
   LIMIT $6::integer
)
SELECT k.n, k.correlation_id, k.status,
       ARRAY(SELECT DISTINCT a.name FROM (
               SELECT w.agent_name::text FROM debug_workflow_steps AS w
                WHERE w.correlation_id = k.correlation_id
               UNION ALL
               SELECT e.agent_name::text FROM debug_error_events AS e
                WHERE e.correlation_id = k.correlation_id
               UNION ALL
               SELECT u.agent_name::text FROM debug_success_events AS u
                WHERE u.correlation_id = k.correlation_id
               UNION ALL
               SELECT s.agent_name::text FROM debug_state_snapshots AS s
                WHERE s.correlation_id = k.correlation_id
             ) AS a(name) ORDER BY a.name) AS agents,
       ws.step_count, ws.failed_step_count, k.error_count, k.unrecovered_error_count,
       (SELECT count(*) FROM debug_success_events AS u
         WHERE u.correlation_id = k.correlation_id) AS success_count,
       (SELECT count(*) FROM debug_error_success_correlation AS c
         WHERE c.correlation_id = k.correlation_id) AS recovery_count,
       (SELECT count(*) FROM hook_events AS h
         WHERE h.correlation_id = k.correlation_id AND h.source = 'PostToolUse')
         AS llm_call_count,
       (SELECT count(*) FROM agent_transformation_events AS t
         WHERE t.correlation_id = k.correlation_id) AS transformation_count,
       fe.first_at AS first_event_at,
       k.last_at AS last_event_at,
       EXTRACT(EPOCH FROM k.last_at - fe.first_at) * 1000 AS duration_ms,
       (SELECT array_agg(DISTINCT e.error_type ORDER BY e.error_type)
          FROM debug_error_events AS e
         WHERE e.correlation_id = k.correlation_id) AS error_types
  FROM kept AS k
 CROSS JOIN LATERAL (
   SELECT count(*) AS step_count, count(*) FILTER (WHERE w.status = 'failed') AS failed_step_count
     FROM debug_workflow_steps AS w
    WHERE w.correlation_id = k.correlation_id
 ) AS ws
 CROSS JOIN LATERAL (
   SELECT least(
     k.last_at,
     (SELECT min(w.started_at) FROM debug_workflow_steps AS w
       WHERE w.correlation_id = k.correlation_id),
     (SELECT min(e.occurred_at) FROM debug_error_events AS e
       WHERE e.correlation_id = k.correlation_id),
     (SELECT min(u.occurred_at) FROM debug_success_events AS u
       WHERE u.correlation_id = k.correlation_id),
     (SELECT min(s.captured_at) FROM debug_state_snapshots AS s
       WHERE s.correlation_id = k.correlation_id)
   ) AS first_at
 ) AS fe
 ORDER BY k.n;

-- name: workflow_links
-- $1 correlation_id. Every recovery link of the workflow (debug_error_success_correlation):
-- the error, the success that recovered it, how (strategy, path), whether the agent stated
-- it or the correlator inferred it, with what confidence, after how long.
SELECT c.error_event_id, c.success_event_id, c.recovery_strategy, c.recovery_path,
       c.recovery_duration_ms, c.intermediate_steps, c.confidence_score, c.link_source,
       c.correlated_at, u.success_type, u.operation_name, u.agent_name::text AS agent_name,
       u.occurred_at AS success_occurred_at
  FROM debug_error_success_correlation AS c
  JOIN debug_success_events AS u ON u.id = c.success_event_id
 WHERE c.correlation_id = $1::uuid
 ORDER BY u.occurred_at, c.error_event_id;

-- name: error_links
-- $1 error ids, $2 at most this many links per error. The recovery links of those errors
-- (the columns of workflow_links), each error's in its successes' time order: a page's
-- errors only, through the error_event_id index, however many the workflow has.
SELECT l.*
  FROM unnest($1::uuid[]) AS r(error_event_id)
 CROSS JOIN LATERAL (
   SELECT c.error_event_id, c.success_event_id, c.recovery_strategy, c.recovery_path,
          c.recovery_duration_ms, c.intermediate_steps, c.confidence_score, c.link_source,
          c.correlated_at, u.success_type, u.operation_name, u.agent_name::text AS agent_name,
          u.occurred_at AS success_occurred_at
     FROM debug_error_success_correlation AS c
     JOIN debug_success_events AS u ON u.id = c.success_event_id
    WHERE c.error_event_id = r.error_event_id
    ORDER BY u.occurred_at, c.success_event_id
    LIMIT $2::integer
 ) AS l;

-- name: raw_event
-- $1 event id. The stored row of the event, whatever its kind, as JSON (every column: the
-- full state, stack trace, step input and output, hook payload); none when unknown.
SELECT 'step' AS kind, w.correlation_id, to_jsonb(w) AS data
  FROM debug_workflow_steps AS w WHERE w.id = $1::uuid
UNION ALL
SELECT 'snapshot', s.correlation_id, to_jsonb(s)
  FROM debug_state_snapshots AS s
 WHERE s.id = coalesce((SELECT a.snapshot_id FROM sink_snapshot_aliases AS a
                         WHERE a.alias_id = $1::uuid), $1::uuid)
UNION ALL
SELECT 'error', e.correlation_id, to_jsonb(e)
  FROM debug_error_events AS e WHERE e.id = $1::uuid
UNION ALL
SELECT 'success', u.correlation_id, to_jsonb(u)
  FROM debug_success_events AS u WHERE u.id = $1::uuid
UNION ALL
SELECT 'transformation', t.correlation_id, to_jsonb(t)
  FROM agent_transformation_events AS t WHERE t.id = $1::uuid
UNION ALL
SELECT 'llm_call', h.correlation_id, to_jsonb(h)
  FROM hook_events AS h WHERE h.id = $1::uuid
 LIMIT 1;

-- name: error_type_names
-- Error types the correlator has counted (known_fix_occurrences, migration 008: a few
-- thousand rows at most), most frequent first, at most $1: occurrences, recovered errors and
-- the last time one occurred.
SELECT o.error_type::text AS error_type, sum(o.occurred)::bigint AS occurred,
       coalesce((SELECT sum(k.recovered) FROM known_fix_stats AS k
                  WHERE k.error_type = o.error_type), 0)::bigint AS recovered,
       max(o.last_occurred_at) AS last_occurred_at
  FROM known_fix_occurrences AS o
 GROUP BY o.error_type
 ORDER BY occurred DESC, error_type
 LIMIT $1::integer;

-- name: known_fixes_overview
-- The known fixes of the $1 most frequent error types (as error_type_names), each with its
-- $2 best strategies (known_fixes(), migration 011), in that order.
WITH types AS (
  SELECT o.error_type::text AS error_type, sum(o.occurred)::bigint AS occurred,
         max(o.last_occurred_at) AS last_occurred_at
    FROM known_fix_occurrences AS o
   GROUP BY o.error_type
   ORDER BY occurred DESC, error_type
   LIMIT $1::integer
)
SELECT t.error_type, t.occurred, t.last_occurred_at, f.*
  FROM types AS t
  LEFT JOIN LATERAL known_fixes(t.error_type, NULL, NULL, $2::integer) AS f ON TRUE
 ORDER BY t.occurred DESC, t.error_type, f.success_count DESC NULLS LAST;

-- name: agent_names
-- The agents that ran steps, at most $1, in name order: a loose index scan of
-- idx_debug_workflow_steps_agent (one index probe per agent, whatever the table's size).
WITH RECURSIVE agents AS (
  (SELECT agent_name::text AS agent_name FROM debug_workflow_steps
    ORDER BY agent_name LIMIT 1)
  UNION ALL
  SELECT (SELECT w.agent_name::text FROM debug_workflow_steps AS w
           WHERE w.agent_name > a.agent_name ORDER BY w.agent_name LIMIT 1)
    FROM agents AS a
   WHERE a.agent_name IS NOT NULL
)
SELECT agent_name FROM agents WHERE agent_name IS NOT NULL LIMIT $1::integer;

-- name: correlator_state
-- The correlator's last run (migration 008): runs so far, links made, when and how long.
SELECT runs, links_total, last_run_at, last_run_ms FROM correlator_state;
