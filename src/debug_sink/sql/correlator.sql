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
  uncounted BOOLEAN NOT NULL,     -- not counted yet: an error in known_fix_occurrences, a
                                  -- success in correlator_operations
  typed BOOLEAN NOT NULL          -- a success typed recovery_success
) ON COMMIT DROP

-- name: collect_new_events
-- Errors and successes committed since the previous run: their ingest_xid is not visible in
-- the previous run's snapshot ($1; NULL on the first run, which reads everything). The range
-- condition uses idx_*_ingest_xid; the visibility test drops the rows the previous run saw
-- (those of transactions that had committed above its xmin). $2 = the snapshot whose errors
-- known_fix_occurrences and correlator_operations count already (NULL: none; it never shows
-- fewer rows than $1).
INSERT INTO correlator_new
SELECT 'e', e.id, e.correlation_id, e.error_type, e.agent_name, coalesce(e.operation_name, ''),
       e.occurred_at,
       $2::text IS NULL
         OR (e.ingest_xid IS NOT NULL
             AND NOT pg_visible_in_snapshot(e.ingest_xid, $2::text::pg_snapshot)),
       false
  FROM debug_error_events AS e
 WHERE $1::text IS NULL
    OR (e.ingest_xid >= pg_snapshot_xmin($1::text::pg_snapshot)
        AND NOT pg_visible_in_snapshot(e.ingest_xid, $1::text::pg_snapshot))
UNION ALL
SELECT 's', s.id, s.correlation_id, NULL, s.agent_name, s.operation_name, s.occurred_at,
       $2::text IS NULL
         OR (s.ingest_xid IS NOT NULL
             AND NOT pg_visible_in_snapshot(s.ingest_xid, $2::text::pg_snapshot)),
       s.success_type = 'recovery_success'
  FROM debug_success_events AS s
 WHERE $1::text IS NULL
    OR (s.ingest_xid >= pg_snapshot_xmin($1::text::pg_snapshot)
        AND NOT pg_visible_in_snapshot(s.ingest_xid, $1::text::pg_snapshot))

-- name: create_workflows
-- The workflows that received new events, or new or folded step rows while they have errors
-- (a late step can change an event's step or attempt): the only ones this run examines.
CREATE TEMP TABLE correlator_workflows ON COMMIT DROP AS
SELECT correlation_id FROM correlator_new
UNION
SELECT w.correlation_id
  FROM debug_workflow_steps AS w
 WHERE $1::text IS NOT NULL
   AND w.ingest_xid >= pg_snapshot_xmin($1::text::pg_snapshot)
   AND NOT pg_visible_in_snapshot(w.ingest_xid, $1::text::pg_snapshot)
   AND EXISTS (SELECT 1 FROM debug_error_events AS e WHERE e.correlation_id = w.correlation_id)

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
-- Every new error counts once towards known_fix_occurrences (success_rate's denominator),
-- every new success once towards correlator_operations (migration 015).
WITH operations AS (
  INSERT INTO correlator_operations AS o
         (agent_name, operation_name, successes, typed_recoveries)
  SELECT n.agent_name, n.operation_name, count(*), count(*) FILTER (WHERE n.typed)
    FROM correlator_new AS n
   WHERE n.kind = 's' AND n.uncounted
   GROUP BY n.agent_name, n.operation_name
  ON CONFLICT (agent_name, operation_name) DO UPDATE
     SET successes = o.successes + EXCLUDED.successes,
         typed_recoveries = o.typed_recoveries + EXCLUDED.typed_recoveries
  RETURNING 1
), counted AS (
  INSERT INTO known_fix_occurrences AS o
         (error_type, agent_name, operation_name, occurred, last_occurred_at)
  SELECT n.error_type, n.agent_name, n.operation_name, count(*), max(n.occurred_at)
    FROM correlator_new AS n
   WHERE n.kind = 'e' AND n.uncounted
   GROUP BY n.error_type, n.agent_name, n.operation_name
  ON CONFLICT (error_type, (md5(agent_name)), (md5(operation_name))) DO UPDATE  -- migration 018
     SET occurred = o.occurred + EXCLUDED.occurred,
         last_occurred_at = greatest(o.last_occurred_at, EXCLUDED.last_occurred_at)
  RETURNING 1
)
SELECT (SELECT count(*) FROM counted) + (SELECT count(*) FROM operations)

-- name: create_choices
-- Per examined error: what the run decided, read by `apply` (one chunk at a time).
CREATE TEMP TABLE correlator_choice (
  error_id UUID PRIMARY KEY,
  correlation_id UUID NOT NULL,
  occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
  stated_success_id UUID,          -- the earliest success of the workflow that names it
  inferred_success_id UUID,        -- the best inferred candidate among those not stated
  inferred_score NUMERIC,
  blind_success_id UUID,           -- the best inferred candidate, as if nobody stated anything
  blind_stating BOOLEAN NOT NULL   -- blind_success_id names the errors it recovers
) ON COMMIT DROP

-- name: clear_choices
TRUNCATE correlator_choice

-- name: choose
-- Scores every (error, later success) pair of the workflows $1 (each error with the first $3
-- successes after it) and records, per error, the stated link, the best inferred one and the
-- blind one (correlator_choice). $2 = minimum confidence. The rules and weights are
-- documented in debug_sink/jobs/correlator.py; this is their only implementation.
WITH steps AS MATERIALIZED (
  SELECT w.step_number, w.attempt, w.error_event_id, w.success_event_id
    FROM debug_workflow_steps AS w
   WHERE w.correlation_id = ANY ($1::uuid[])
     AND (w.error_event_id IS NOT NULL OR w.success_event_id IS NOT NULL)
),
error_steps AS (
  SELECT DISTINCT ON (w.error_event_id) w.error_event_id AS id, w.step_number, w.attempt
    FROM steps AS w
   WHERE w.error_event_id IS NOT NULL
   ORDER BY w.error_event_id, w.attempt DESC
),
success_steps AS (
  SELECT DISTINCT ON (w.success_event_id) w.success_event_id AS id, w.step_number, w.attempt
    FROM steps AS w
   WHERE w.success_event_id IS NOT NULL
   ORDER BY w.success_event_id, w.attempt DESC
),
-- An event's step: its execution_step, else the number of the step row that references it.
-- recovery_successful as the agent sent it, not as an earlier link marked it (migration 016).
errs AS MATERIALIZED (
  SELECT e.id, e.correlation_id, e.agent_name, coalesce(e.operation_name, '') AS operation_name,
         e.occurred_at, coalesce(e.execution_step, es.step_number) AS step, es.attempt,
         e.recovery_attempted,
         CASE WHEN e.correlator_marks & 1 <> 0 THEN NULL
              WHEN e.correlator_marks & 2 <> 0 THEN FALSE
              ELSE e.recovery_successful END AS recovery_successful,
         lower(e.recovery_strategy) AS strategy
    FROM debug_error_events AS e
    LEFT JOIN error_steps AS es ON es.id = e.id
   WHERE e.correlation_id = ANY ($1::uuid[])
     -- a time of +-infinity (stored before the sink refused years 1 and 9999) is no time:
     -- the event is left out rather than fail the run's interval arithmetic for everyone
     AND isfinite(e.occurred_at)
),
-- recovering: typed recovery_success, or of an operation whose agents type at least a fifth of
-- its successes (of at least five) so (correlator_operations, migration 015).
succ AS MATERIALIZED (
  SELECT s.id, s.correlation_id, s.agent_name, s.operation_name, s.occurred_at,
         s.success_type = 'recovery_success'
           OR coalesce(o.successes >= 5 AND o.typed_recoveries * 5 >= o.successes, FALSE)
           AS recovering,
         s.success_type = 'recovery_success' AS typed,
         coalesce(s.retry_count, 0) AS retry_count,
         coalesce(s.execution_step, ss.step_number) AS step, ss.attempt,
         s.recovers_error_ids
    FROM debug_success_events AS s
    LEFT JOIN success_steps AS ss ON ss.id = s.id
    LEFT JOIN correlator_operations AS o
      ON o.agent_name = s.agent_name AND o.operation_name = s.operation_name
   WHERE s.correlation_id = ANY ($1::uuid[])
     AND isfinite(s.occurred_at)  -- as in errs
),
-- Each agent's outcomes in time order. An error's agent has moved on (moved_at) at its next
-- success of anything, its next error that gives up (skip, abort), or its next outcome of the
-- same operation in another step (a new invocation, not a retry). after_error: the outcome
-- right before this one, of the same agent, was an error.
agent_events AS (
  SELECT o.*,
         CASE WHEN NOT o.is_error OR o.strategy IN ('skip', 'abort') THEN o.occurred_at END
           AS moves_at
    FROM (SELECT id, correlation_id, agent_name, operation_name, occurred_at, step, attempt,
                 strategy, TRUE AS is_error
            FROM errs
          UNION ALL
          SELECT id, correlation_id, agent_name, operation_name, occurred_at, step, attempt,
                 NULL, FALSE
            FROM succ) AS o
),
agent_order AS (
  SELECT a.id, a.correlation_id, a.agent_name, a.operation_name, a.occurred_at,
         -- backwards, so that the frame only grows
         min(a.moves_at) OVER (PARTITION BY a.correlation_id, a.agent_name
                               ORDER BY a.occurred_at DESC, a.id DESC
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS next_move_at,
         lag(a.is_error) OVER (PARTITION BY a.correlation_id, a.agent_name
                               ORDER BY a.occurred_at, a.id) AS after_error,
         CASE WHEN (lag(a.step) OVER op) IS NOT DISTINCT FROM a.step THEN 0 ELSE 1 END
           AS new_step,
         lead(a.occurred_at) OVER op AS next_of_operation_at
    FROM agent_events AS a
  WINDOW op AS (PARTITION BY a.correlation_id, a.agent_name, a.operation_name
                ORDER BY a.occurred_at, a.id)
),
step_runs AS (
  SELECT o.*, sum(o.new_step) OVER (PARTITION BY o.correlation_id, o.agent_name,
                                                 o.operation_name
                                    ORDER BY o.occurred_at, o.id) AS run
    FROM agent_order AS o
),
moved AS MATERIALIZED (
  SELECT r.id, coalesce(r.after_error, FALSE) AS after_error,
         least(coalesce(r.next_move_at, 'infinity'),
               max(coalesce(r.next_of_operation_at, 'infinity')) OVER (
                 PARTITION BY r.correlation_id, r.agent_name, r.operation_name, r.run))
           AS moved_at
    FROM step_runs AS r
),
-- Retry chains: an error was retried, and the retry failed too, when its agent's next outcome
-- is an error of the same operation in the same step (or a later attempt, or either step
-- unknown). Each candidate of a chain's error scores at least what it scores for the chain's
-- last error (pairs).
chain_starts AS (
  SELECT a.id, a.correlation_id, a.agent_name, a.occurred_at, a.is_error,
         CASE WHEN a.is_error AND lag(a.is_error) OVER w
                   AND lag(a.operation_name) OVER w = a.operation_name
                   AND (a.step IS NULL OR lag(a.step) OVER w IS NULL
                        OR a.step = lag(a.step) OVER w
                        OR a.attempt > lag(a.attempt) OVER w)
              THEN 0 ELSE 1 END AS starts
    FROM agent_events AS a
  WINDOW w AS (PARTITION BY a.correlation_id, a.agent_name ORDER BY a.occurred_at, a.id)
),
chains AS (
  SELECT c.*, sum(c.starts) OVER (PARTITION BY c.correlation_id, c.agent_name
                                  ORDER BY c.occurred_at, c.id) AS chain
    FROM chain_starts AS c
),
chain_last AS MATERIALIZED (
  SELECT c.id, last_value(c.id) OVER (
           PARTITION BY c.correlation_id, c.agent_name, c.chain ORDER BY c.occurred_at, c.id
           ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS last_id
    FROM chains AS c
   WHERE c.is_error
),
-- The successes an error is compared with: the first $3 of its workflow after it. candidates
-- holds every error (all of errs) once per such success (success_id), taken from a slice of
-- its workflow's successes in time order (before: how many occurred at or before the error;
-- successes sort before errors of the same time, and the frame takes in its peers). A
-- workflow of E errors and S successes costs at most E x $3 pairs, not E x S, and every join
-- after this one is on an id.
success_order AS MATERIALIZED (
  SELECT s.correlation_id, array_agg(s.id ORDER BY s.occurred_at, s.id) AS ids
    FROM succ AS s
   GROUP BY s.correlation_id
),
candidates AS MATERIALIZED (
  SELECT e.*, c.success_id
    FROM errs AS e
    JOIN (SELECT a.id, a.is_error,
                 count(*) FILTER (WHERE NOT a.is_error) OVER (
                   PARTITION BY a.correlation_id ORDER BY a.occurred_at, a.is_error) AS before
            FROM agent_events AS a) AS p
      ON p.id = e.id AND p.is_error
    JOIN success_order AS o ON o.correlation_id = e.correlation_id
   CROSS JOIN LATERAL unnest(o.ids[p.before + 1:p.before + $3]) AS c(success_id)
),
-- Each error's first later success of its own agent, operation and step (when both steps are
-- known): the operation worked again.
first_same AS MATERIALIZED (
  SELECT DISTINCT ON (e.id) e.id AS error_id, s.id AS success_id, s.occurred_at
    FROM candidates AS e
    JOIN succ AS s ON s.id = e.success_id
   WHERE s.agent_name = e.agent_name
     AND s.operation_name = e.operation_name
     AND s.occurred_at > e.occurred_at
     AND (s.step IS NULL OR e.step IS NULL OR s.step = e.step)
   ORDER BY e.id, s.occurred_at, s.id
),
own_pairs AS MATERIALIZED (
  SELECT e.id AS error_id, s.id AS success_id, s.occurred_at AS success_at,
         s.recovers_error_ids IS NOT NULL AS stating,
         0.25
         + CASE WHEN e.agent_name = s.agent_name THEN 0.15 ELSE 0 END
         + CASE WHEN e.operation_name = s.operation_name THEN 0.15 ELSE 0 END
         + CASE WHEN e.step = s.step THEN 0.15 ELSE 0 END
         + CASE WHEN s.recovering THEN 0.20 ELSE 0 END
         + CASE WHEN s.retry_count > 0 THEN 0.10 ELSE 0 END
         + CASE WHEN s.attempt > coalesce(e.attempt, 1) THEN 0.10 ELSE 0 END
         + CASE WHEN e.recovery_attempted THEN 0.05 ELSE 0 END
         + CASE WHEN e.strategy = 'retry' THEN
                  CASE WHEN e.agent_name = s.agent_name AND e.operation_name = s.operation_name
                       THEN 0.15 ELSE -0.10 END
                WHEN e.strategy = 'skip' THEN -0.30
                WHEN e.strategy = 'abort' THEN -0.50
                WHEN e.strategy IS NOT NULL THEN  -- fallback, escalate, delegate, ...
                  CASE WHEN e.agent_name = s.agent_name AND e.operation_name = s.operation_name
                       THEN -0.10 ELSE 0.15 END
                ELSE 0 END
         - CASE WHEN e.recovery_successful IS FALSE THEN 0.40 ELSE 0 END
         - CASE WHEN s.occurred_at - e.occurred_at > interval '1 hour' THEN 0.10 ELSE 0 END
         -- new work rather than a recovery: ...
         -- ... a success with no sign of recovering anything (first try, no retries, not typed
         -- nor of a recovering operation)
         - CASE WHEN NOT s.recovering AND s.retry_count = 0
                     AND coalesce(s.attempt, 1) <= 1 THEN 0.05 ELSE 0 END
         -- ... another step of the same operation, not a retry of the failed one (unless typed
         -- a recovery before the agent moved on: a retry the agent reports as a new step)
         - CASE WHEN e.agent_name = s.agent_name AND e.operation_name = s.operation_name
                     AND e.step <> s.step AND NOT coalesce(s.attempt > 1, FALSE)
                     AND NOT (s.typed AND m.moved_at >= s.occurred_at)
                THEN 0.30 ELSE 0 END
         -- ... the error's agent went on to other work before this success
         - CASE WHEN m.moved_at < s.occurred_at THEN 0.30 ELSE 0 END
         -- ... another agent's success right after an error of its own: its own recovery
         - CASE WHEN e.agent_name <> s.agent_name AND sm.after_error THEN 0.10 ELSE 0 END
           AS score
    FROM candidates AS e
    JOIN succ AS s ON s.id = e.success_id AND s.occurred_at > e.occurred_at
    JOIN moved AS m ON m.id = e.id
    JOIN moved AS sm ON sm.id = s.id
    LEFT JOIN first_same AS f ON f.error_id = e.id
     -- nothing after the error's own operation worked again
   WHERE (f.error_id IS NULL OR s.occurred_at <= f.occurred_at)
     -- a success that is another error's own recovery is not also this one's
     AND (s.id = f.success_id
          OR NOT EXISTS (SELECT 1 FROM first_same AS c WHERE c.success_id = s.id))
),
-- Each error's candidates, scored at least what they score for its retry chain's last error.
pairs AS MATERIALIZED (
  SELECT p.error_id, p.success_id, p.success_at, p.stating,
         greatest(p.score, q.score) AS score
    FROM own_pairs AS p
    LEFT JOIN chain_last AS l ON l.id = p.error_id AND l.last_id <> p.error_id
    LEFT JOIN own_pairs AS q ON q.error_id = l.last_id AND q.success_id = p.success_id
),
-- What the agents said: the earliest success of the workflow naming the error.
stated AS (
  SELECT DISTINCT ON (e.id) e.id AS error_id, s.id AS success_id
    FROM succ AS s
   CROSS JOIN LATERAL unnest(s.recovers_error_ids) AS r(error_id)
    JOIN errs AS e ON e.id = r.error_id AND e.correlation_id = s.correlation_id
   ORDER BY e.id, s.occurred_at, s.id
),
blind AS (
  SELECT DISTINCT ON (p.error_id) p.error_id, p.success_id, p.stating
    FROM pairs AS p
   WHERE p.score >= $2
   ORDER BY p.error_id, p.score DESC, p.success_at, p.success_id
),
-- Inference for the rest: not for a stated error, and not onto a success that said what it
-- recovers.
inferred AS (
  SELECT DISTINCT ON (p.error_id) p.error_id, p.success_id, p.score
    FROM pairs AS p
   WHERE p.score >= $2
     AND NOT p.stating
     AND NOT EXISTS (SELECT 1 FROM stated AS st WHERE st.error_id = p.error_id)
   ORDER BY p.error_id, p.score DESC, p.success_at, p.success_id
),
chosen AS (
  INSERT INTO correlator_choice
  SELECT e.id, e.correlation_id, e.occurred_at, st.success_id,
         i.success_id, round(least(1, greatest(0, i.score)), 4),
         b.success_id, coalesce(b.stating, FALSE)
    FROM errs AS e
    LEFT JOIN stated AS st ON st.error_id = e.id
    LEFT JOIN inferred AS i ON i.error_id = e.id
    LEFT JOIN blind AS b ON b.error_id = e.id
  RETURNING 1
)
SELECT (SELECT count(*) FROM chosen) AS errors_examined,
       (SELECT count(*) FROM succ) AS successes_examined,
       (SELECT count(*) FROM own_pairs) AS pairs_scored

-- name: apply
-- Makes the links correlator_choice asks for: a stated link where an agent named the error,
-- else the best inferred one; moves a link whose target changed (an inferred link never
-- replaces a stated one: a stated error's target is its statement); removes an inferred link
-- of the correlator's making that the evidence no longer supports (and the marks it set on
-- the error); marks the errors recovered, keeps known_fix_stats in step and records the
-- comparison of blind inference with the statements (correlator_agreement and its totals).
-- An error with several links (not the correlator's doing) is left alone.
WITH cur AS MATERIALIZED (
  SELECT c.error_event_id, min(c.success_event_id::text)::uuid AS success_id,
         min(c.link_source) AS source, count(*) AS n
    FROM debug_error_success_correlation AS c
   WHERE c.error_event_id IN (SELECT error_id FROM correlator_choice)
   GROUP BY c.error_event_id
),
target AS (
  SELECT ch.error_id, coalesce(ch.stated_success_id, ch.inferred_success_id) AS success_id,
         CASE WHEN ch.stated_success_id IS NOT NULL THEN 'stated' ELSE 'inferred' END AS source,
         CASE WHEN ch.stated_success_id IS NOT NULL THEN 1 ELSE ch.inferred_score END
           AS confidence
    FROM correlator_choice AS ch
   WHERE coalesce(ch.stated_success_id, ch.inferred_success_id) IS NOT NULL
),
changes AS MATERIALIZED (
  SELECT t.error_id, t.success_id, t.source, t.confidence::numeric(5, 4) AS confidence,
         e.correlation_id, e.error_type, e.agent_name AS error_agent,
         coalesce(e.operation_name, '') AS error_operation, e.occurred_at AS error_at,
         e.execution_step AS error_step, e.recovery_successful AS error_recovered,
         e.resolved_at AS error_resolved_at, e.correlator_marks AS error_marks,
         s.success_type, s.agent_name AS success_agent, s.operation_name AS success_operation,
         s.occurred_at AS success_at, s.execution_step AS success_step,
         coalesce(s.retry_count, 0) AS retry_count,
         left(coalesce(e.recovery_strategy,
                       s.success_factors->>'recovery_strategy', s.success_factors->>'strategy',
                       CASE WHEN e.agent_name = s.agent_name
                                 AND e.operation_name = s.operation_name
                            THEN 'retry' ELSE 'fallback' END), 100) AS strategy,
         least(greatest(floor(extract(epoch FROM s.occurred_at - e.occurred_at) * 1000), 0),
               2147483647)::integer AS duration_ms,
         cur.success_id AS old_success_id,
         (SELECT o.occurred_at FROM debug_success_events AS o WHERE o.id = cur.success_id)
           AS old_success_at
    FROM target AS t
    JOIN debug_error_events AS e ON e.id = t.error_id
    JOIN debug_success_events AS s ON s.id = t.success_id
    LEFT JOIN cur ON cur.error_event_id = t.error_id
   WHERE coalesce(cur.n, 0) <= 1
     AND (cur.success_id IS DISTINCT FROM t.success_id OR cur.source IS DISTINCT FROM t.source)
),
-- Inferred links (with a strategy: the correlator's) whose error now has no candidate.
-- marks: what the correlator set on the error (correlator_marks, see unmarked).
dropped AS MATERIALIZED (
  SELECT x.*,
         coalesce(x.error_marks, CASE WHEN x.error_resolved_at = x.old_success_at THEN 5 ELSE 0 END)
           AS marks
    FROM (SELECT c.error_event_id AS error_id, c.success_event_id AS old_success_id,
                 (SELECT o.occurred_at FROM debug_success_events AS o
                   WHERE o.id = c.success_event_id) AS old_success_at,
                 e.correlator_marks AS error_marks, e.resolved_at AS error_resolved_at
            FROM correlator_choice AS ch
            JOIN cur ON cur.error_event_id = ch.error_id AND cur.n = 1
            JOIN debug_error_success_correlation AS c
              ON c.error_event_id = cur.error_event_id AND c.success_event_id = cur.success_id
            JOIN debug_error_events AS e ON e.id = c.error_event_id
           WHERE ch.stated_success_id IS NULL AND ch.inferred_success_id IS NULL
             AND c.link_source = 'inferred' AND c.recovery_strategy IS NOT NULL) AS x
),
details AS MATERIALIZED (
  SELECT ch.*,
         CASE WHEN EXISTS (SELECT 1 FROM debug_workflow_steps AS w
                            WHERE w.correlation_id = ch.correlation_id)
              THEN (SELECT count(*) FROM debug_workflow_steps AS w
                     WHERE w.correlation_id = ch.correlation_id
                       AND w.started_at > ch.error_at
                       AND w.started_at < ch.success_at)::integer
              ELSE greatest(ch.success_step - ch.error_step - 1, 0)
         END AS steps_between
    FROM changes AS ch
),
described AS (
  SELECT d.*,
         format('%s in %s%s -> %s -> %s in %s%s (%s)',
                d.error_type, d.error_agent, '.' || nullif(d.error_operation, ''), d.strategy,
                d.success_type, d.success_agent, '.' || d.success_operation,
                concat_ws(', ',
                  CASE WHEN d.source = 'stated' THEN 'stated' END,
                  CASE WHEN d.retry_count = 1 THEN '1 retry'
                       WHEN d.retry_count > 1 THEN d.retry_count || ' retries' END,
                  CASE WHEN d.steps_between IS NOT NULL
                       THEN d.steps_between || ' intermediate steps' END,
                  d.duration_ms || ' ms')) AS path
    FROM details AS d
),
-- The links replaced, as they were (this statement's snapshot).
prior AS MATERIALIZED (
  SELECT c.error_event_id, c.success_event_id, c.recovery_strategy, c.recovery_duration_ms,
         c.confidence_score, c.link_source
    FROM debug_error_success_correlation AS c
    JOIN (SELECT error_id, old_success_id FROM changes
          UNION ALL
          SELECT error_id, old_success_id FROM dropped) AS ch
      ON ch.error_id = c.error_event_id AND ch.old_success_id = c.success_event_id
),
unlinked AS (
  DELETE FROM debug_error_success_correlation AS c
   USING (SELECT error_id, old_success_id FROM changes WHERE old_success_id <> success_id
          UNION ALL
          SELECT error_id, old_success_id FROM dropped) AS ch
   WHERE c.error_event_id = ch.error_id AND c.success_event_id = ch.old_success_id
  RETURNING c.error_event_id
),
-- An error whose link was dropped: the marks the correlator set go, and only those
-- (correlator_marks, migration 016: 1 recovery_successful was NULL, 2 it was FALSE, 4
-- resolved_at was NULL); the agent's own values stay. An error marked before migration 016
-- has no record: then resolved_at equal to the old success's time says both were ours.
unmarked AS (
  UPDATE debug_error_events AS e
     SET recovery_successful = CASE WHEN d.marks & 1 <> 0 THEN NULL
                                    WHEN d.marks & 2 <> 0 THEN FALSE
                                    ELSE e.recovery_successful END,
         resolved_at = CASE WHEN d.marks & 4 <> 0 THEN NULL ELSE e.resolved_at END,
         correlator_marks = NULL
    FROM dropped AS d
   WHERE e.id = d.error_id AND d.marks <> 0
  RETURNING e.id
),
-- Same pair, another source (a statement about a link inference had made).
resourced AS (
  UPDATE debug_error_success_correlation AS c
     SET link_source = d.source, confidence_score = d.confidence, recovery_strategy = d.strategy,
         recovery_path = d.path, recovery_duration_ms = d.duration_ms,
         intermediate_steps = d.steps_between
    FROM described AS d
   WHERE c.error_event_id = d.error_id AND c.success_event_id = d.success_id
     AND d.old_success_id = d.success_id
  RETURNING c.error_event_id, c.success_event_id
),
ins AS (
  INSERT INTO debug_error_success_correlation AS c
         (error_event_id, success_event_id, correlation_id, recovery_path,
          recovery_duration_ms, intermediate_steps, recovery_strategy, confidence_score,
          link_source)
  SELECT d.error_id, d.success_id, d.correlation_id, d.path, d.duration_ms, d.steps_between,
         d.strategy, d.confidence, d.source
    FROM described AS d
   WHERE d.old_success_id IS DISTINCT FROM d.success_id
  ON CONFLICT (error_event_id, success_event_id) DO NOTHING
  RETURNING c.error_event_id, c.success_event_id
),
done AS MATERIALIZED (
  SELECT d.*,
         coalesce(d.error_marks, CASE WHEN d.error_resolved_at = d.old_success_at THEN 5 ELSE 0 END)
           AS marks
    FROM described AS d
    JOIN (SELECT * FROM ins UNION ALL SELECT * FROM resourced) AS x
      ON x.error_event_id = d.error_id AND x.success_event_id = d.success_id
),
-- The error marked recovered; what was changed is recorded (correlator_marks, see unmarked),
-- added to what an earlier link of the correlator's had changed. A moved link moves the
-- resolved_at the correlator had set; an agent's own resolved_at stays.
marked AS (
  UPDATE debug_error_events AS e
     SET recovery_successful = TRUE,
         resolved_at = CASE WHEN e.resolved_at IS NULL OR d.marks & 4 <> 0
                            THEN d.success_at ELSE e.resolved_at END,
         correlator_marks = d.marks
           | CASE WHEN e.recovery_successful IS NULL THEN 1
                  WHEN NOT e.recovery_successful THEN 2 ELSE 0 END
           | CASE WHEN e.resolved_at IS NULL THEN 4 ELSE 0 END
    FROM done AS d
   WHERE e.id = d.error_id
     AND (e.recovery_successful IS NOT TRUE
          OR e.resolved_at IS NULL
          OR e.correlator_marks IS NULL
          OR (d.marks & 4 <> 0 AND e.resolved_at IS DISTINCT FROM d.success_at))
  RETURNING e.id,
            d.error_recovered IS NOT TRUE
              OR e.resolved_at IS DISTINCT FROM d.error_resolved_at AS changed
),
-- known_fix_stats: +1 per link made, -1 per link replaced (of the correlator's making).
delta AS (
  SELECT d.error_type, d.error_agent AS agent_name, d.error_operation AS operation_name,
         d.strategy, 1 AS n, (d.source = 'stated')::integer AS stated,
         (d.confidence >= 0.7)::integer AS confident, d.duration_ms, d.confidence,
         d.correlation_id, d.success_at
    FROM done AS d
  UNION ALL
  SELECT e.error_type, e.agent_name, coalesce(e.operation_name, ''), p.recovery_strategy, -1,
         -(p.link_source = 'stated')::integer,
         -(p.confidence_score >= 0.7)::integer, -p.recovery_duration_ms, -p.confidence_score,
         NULL, NULL
    FROM prior AS p
    JOIN debug_error_events AS e ON e.id = p.error_event_id
   WHERE p.recovery_strategy IS NOT NULL
     AND p.error_event_id IN (SELECT error_event_id FROM unlinked
                              UNION ALL
                              SELECT error_event_id FROM resourced)
),
stats AS (
  INSERT INTO known_fix_stats AS k
         (error_type, agent_name, operation_name, recovery_strategy, recovered, confident,
          duration_ms_sum, duration_count, confidence_sum, example_correlation_ids,
          last_recovered_at, stated)
  SELECT d.error_type, d.agent_name, d.operation_name, d.strategy,
         sum(d.n), sum(d.confident),
         coalesce(sum(d.duration_ms), 0),
         coalesce(sum(sign(d.n)) FILTER (WHERE d.duration_ms IS NOT NULL), 0),
         coalesce(sum(d.confidence), 0),
         coalesce((array_agg(DISTINCT d.correlation_id)
                    FILTER (WHERE d.correlation_id IS NOT NULL))[1:5], '{}'),
         max(d.success_at), sum(d.stated)
    FROM delta AS d
   GROUP BY d.error_type, d.agent_name, d.operation_name, d.strategy
  ON CONFLICT (error_type, (md5(agent_name)), (md5(operation_name)), recovery_strategy)
  DO UPDATE  -- migration 018
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
         last_recovered_at = greatest(k.last_recovered_at, EXCLUDED.last_recovered_at),
         stated = k.stated + EXCLUDED.stated
  RETURNING 1
),
-- Blind inference against the statements, per error where they can be compared: the error is
-- stated, or the blind link goes to a success that states (other) errors.
compared AS (
  SELECT ch.error_id, ch.correlation_id, ch.occurred_at, ch.stated_success_id,
         ch.blind_success_id
    FROM correlator_choice AS ch
   WHERE ch.stated_success_id IS NOT NULL OR ch.blind_stating
),
compared_before AS MATERIALIZED (
  SELECT a.error_event_id, a.stated_success_id, a.inferred_success_id
    FROM correlator_agreement AS a
   WHERE a.error_event_id IN (SELECT error_id FROM correlator_choice)
),
compared_gone AS (
  DELETE FROM correlator_agreement AS a
   USING compared_before AS b
   WHERE a.error_event_id = b.error_event_id
     AND NOT EXISTS (SELECT 1 FROM compared AS c WHERE c.error_id = b.error_event_id)
  RETURNING 1
),
compared_now AS (
  INSERT INTO correlator_agreement AS a
         (error_event_id, correlation_id, occurred_at, stated_success_id, inferred_success_id)
  SELECT c.error_id, c.correlation_id, c.occurred_at, c.stated_success_id, c.blind_success_id
    FROM compared AS c
   WHERE NOT EXISTS (SELECT 1 FROM compared_before AS b
                      WHERE b.error_event_id = c.error_id
                        AND b.stated_success_id IS NOT DISTINCT FROM c.stated_success_id
                        AND b.inferred_success_id IS NOT DISTINCT FROM c.blind_success_id)
  ON CONFLICT (error_event_id) DO UPDATE
     SET stated_success_id = EXCLUDED.stated_success_id,
         inferred_success_id = EXCLUDED.inferred_success_id,
         occurred_at = EXCLUDED.occurred_at,
         evaluated_at = EXCLUDED.evaluated_at
  RETURNING 1
),
outcome AS (
  SELECT x.weight,
         (x.s IS NOT NULL AND x.s = x.i)::integer AS agreed,
         (x.i IS NOT NULL AND x.i IS DISTINCT FROM x.s)::integer AS wrong,
         (x.s IS NOT NULL AND x.s IS DISTINCT FROM x.i)::integer AS missed
    FROM (SELECT 1 AS weight, c.stated_success_id AS s, c.blind_success_id AS i FROM compared AS c
          UNION ALL
          SELECT -1, b.stated_success_id, b.inferred_success_id FROM compared_before AS b) AS x
),
totals AS (
  UPDATE correlator_state AS st
     SET agreement_agreed = st.agreement_agreed + o.agreed,
         agreement_wrong = st.agreement_wrong + o.wrong,
         agreement_missed = st.agreement_missed + o.missed
    FROM (SELECT coalesce(sum(weight * agreed), 0) AS agreed,
                 coalesce(sum(weight * wrong), 0) AS wrong,
                 coalesce(sum(weight * missed), 0) AS missed
            FROM outcome) AS o
   WHERE st.id AND (o.agreed, o.wrong, o.missed) <> (0, 0, 0)
  RETURNING 1
)
SELECT (SELECT count(*) FROM ins) AS links,
       (SELECT count(*) FROM ins JOIN done AS d ON d.error_id = ins.error_event_id
                                             AND d.source = 'stated') AS stated,
       (SELECT count(*) FROM unlinked) - (SELECT count(*) FROM dropped)
         + (SELECT count(*) FROM resourced) AS moved,
       (SELECT count(*) FROM dropped) AS removed,
       (SELECT count(*) FROM marked WHERE marked.changed) AS marked,
       (SELECT count(*) FROM unmarked) AS unmarked,
       (SELECT count(*) FROM stats) AS stats_rows,
       (SELECT count(*) FROM compared_gone) + (SELECT count(*) FROM compared_now)
         + (SELECT count(*) FROM totals) AS agreement_rows,
       (SELECT jsonb_agg(DISTINCT jsonb_build_array(d.error_type, d.agent_name,
                                                    d.operation_name, d.strategy))
          FROM delta AS d
         WHERE d.n < 0) AS unlinked_keys

-- name: prune_examples
-- The example workflows of known_fix_stats rows ($1-$4: error type, agent, operation, strategy
-- of each) that no longer have a link of their row: a link of the workflow was moved, removed
-- or purged. The caller holds the aggregate lock (or is the correlator's run).
UPDATE known_fix_stats AS k
   SET example_correlation_ids = ARRAY(
         SELECT x.id
           FROM unnest(k.example_correlation_ids) WITH ORDINALITY AS x(id, n)
          WHERE EXISTS (SELECT 1
                          FROM debug_error_success_correlation AS c
                          JOIN debug_error_events AS e ON e.id = c.error_event_id
                         WHERE c.correlation_id = x.id
                           AND c.recovery_strategy = k.recovery_strategy
                           AND e.error_type = k.error_type
                           AND e.agent_name = k.agent_name
                           AND coalesce(e.operation_name, '') = k.operation_name)
          ORDER BY x.n)
  FROM (SELECT DISTINCT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]))
         AS a(error_type, agent_name, operation_name, recovery_strategy)
 WHERE k.error_type = a.error_type AND k.agent_name = a.agent_name
   AND k.operation_name = a.operation_name AND k.recovery_strategy = a.recovery_strategy

-- name: fill_examples
-- Rows of the keys $1-$4 with fewer examples than recoveries (up to 5) after prune_examples:
-- filled from the workflows of the newest linked errors of their kind (the errors index on
-- agent and type; at most the newest 10,000 errors are looked at, so a kind with many errors
-- and few links costs a bounded read).
UPDATE known_fix_stats AS k
   SET example_correlation_ids = ARRAY(
         SELECT f.id
           FROM (SELECT x.id, x.n
                   FROM unnest(k.example_correlation_ids) WITH ORDINALITY AS x(id, n)
                 UNION ALL
                 SELECT c.correlation_id, 5 + row_number() OVER (ORDER BY e.occurred_at DESC)
                   FROM (SELECT e.id, e.occurred_at
                           FROM debug_error_events AS e
                          WHERE e.agent_name = k.agent_name AND e.error_type = k.error_type
                            AND coalesce(e.operation_name, '') = k.operation_name
                          ORDER BY e.occurred_at DESC
                          LIMIT 10000) AS e
                   JOIN debug_error_success_correlation AS c
                     ON c.error_event_id = e.id AND c.recovery_strategy = k.recovery_strategy)
                AS f
          GROUP BY f.id
          ORDER BY min(f.n)
          LIMIT 5)
  FROM (SELECT DISTINCT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]))
         AS a(error_type, agent_name, operation_name, recovery_strategy)
 WHERE k.error_type = a.error_type AND k.agent_name = a.agent_name
   AND k.operation_name = a.operation_name AND k.recovery_strategy = a.recovery_strategy
   AND cardinality(k.example_correlation_ids) < least(5, k.recovered)

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
RETURNING agreement_agreed AS agreed, agreement_wrong AS wrong, agreement_missed AS missed

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

-- name: expected_operations
-- correlator_operations recomputed from the rows: the successes visible in the counted
-- snapshot.
SELECT s.agent_name, s.operation_name, count(*) AS successes,
       count(*) FILTER (WHERE s.success_type = 'recovery_success') AS typed_recoveries
  FROM debug_success_events AS s, correlator_state AS st
 WHERE st.id AND st.counted IS NOT NULL
   AND (s.ingest_xid IS NULL OR pg_visible_in_snapshot(s.ingest_xid, st.counted))
 GROUP BY 1, 2

-- name: rebuild_operations
INSERT INTO correlator_operations (agent_name, operation_name, successes, typed_recoveries)
SELECT s.agent_name, s.operation_name, count(*),
       count(*) FILTER (WHERE s.success_type = 'recovery_success')
  FROM debug_success_events AS s
 GROUP BY 1, 2

-- name: expected_stats
-- known_fix_stats recomputed from the rows: every link, per the linked error's kind.
SELECT e.error_type, e.agent_name, coalesce(e.operation_name, '') AS operation_name,
       c.recovery_strategy, count(*) AS recovered,
       count(*) FILTER (WHERE c.confidence_score >= 0.7) AS confident,
       coalesce(sum(c.recovery_duration_ms), 0) AS duration_ms_sum,
       count(c.recovery_duration_ms) AS duration_count,
       coalesce(sum(c.confidence_score), 0) AS confidence_sum,
       (array_agg(DISTINCT c.correlation_id))[1:5] AS example_correlation_ids,
       max(s.occurred_at) AS last_recovered_at,
       count(*) FILTER (WHERE c.link_source = 'stated') AS stated
  FROM debug_error_success_correlation AS c
  JOIN debug_error_events AS e ON e.id = c.error_event_id
  JOIN debug_success_events AS s ON s.id = c.success_event_id
 WHERE c.recovery_strategy IS NOT NULL
 GROUP BY 1, 2, 3, 4

-- name: expected_agreement
-- The agreement totals recomputed from correlator_agreement.
SELECT count(*) FILTER (WHERE stated_success_id = inferred_success_id) AS agreed,
       count(*) FILTER (WHERE inferred_success_id IS NOT NULL
                          AND inferred_success_id IS DISTINCT FROM stated_success_id) AS wrong,
       count(*) FILTER (WHERE stated_success_id IS NOT NULL
                          AND stated_success_id IS DISTINCT FROM inferred_success_id) AS missed
  FROM correlator_agreement

-- name: rebuild_agreement
UPDATE correlator_state AS st
   SET agreement_agreed = x.agreed, agreement_wrong = x.wrong, agreement_missed = x.missed
  FROM (SELECT count(*) FILTER (WHERE stated_success_id = inferred_success_id) AS agreed,
               count(*) FILTER (WHERE inferred_success_id IS NOT NULL
                                  AND inferred_success_id IS DISTINCT FROM stated_success_id)
                 AS wrong,
               count(*) FILTER (WHERE stated_success_id IS NOT NULL
                                  AND stated_success_id IS DISTINCT FROM inferred_success_id)
                 AS missed
          FROM correlator_agreement) AS x
 WHERE st.id
