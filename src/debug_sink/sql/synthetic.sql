-- Bulk test data (debug_sink.synthetic.bulk_fill): $1 workflows, the first $2 of them old
-- (captured / occurred / started $3 days + up to one day ago), the rest within the last hour.
-- Per workflow: 1 snapshot, 2 errors and 2 successes referencing it, 4 steps (2 referencing
-- the errors, 2 the successes, the later ones children of the first), 1 correlation (error 1
-- -> success 1) and, every 10th workflow, a snapshot alias: 10.1 rows per workflow. Ids are
-- md5-derived, so a fill is reproducible.

-- name: fill_workflows
CREATE TEMP TABLE bulk_workflows ON COMMIT DROP AS
SELECT w,
       md5('wf' || w)::uuid AS correlation_id,
       CASE WHEN w <= $2 THEN clock_timestamp() - make_interval(days => $3)
                               - (w % 86400) * interval '1 second'
            ELSE clock_timestamp() - (w % 3600) * interval '1 second' END AS t0
  FROM generate_series(1, $1::integer) AS w

-- name: fill_snapshots
INSERT INTO debug_state_snapshots (id, snapshot_type, correlation_id, agent_name, agent_state,
                                   state_hash, execution_step, captured_at)
SELECT md5('snap' || w)::uuid, 'checkpoint', correlation_id, 'agent_' || (w % 7),
       jsonb_build_object('step', w % 10, 'goal', 'bulk workflow ' || w),
       md5('state' || w) || md5('state2' || w), 1, t0
  FROM bulk_workflows

-- name: fill_errors
INSERT INTO debug_error_events (id, correlation_id, error_type, error_category, error_severity,
                                error_message, agent_name, operation_name, execution_step,
                                state_snapshot_id, recovery_attempted, recovery_strategy,
                                occurred_at)
SELECT md5('err' || k || ':' || w)::uuid, correlation_id, 'BulkError' || (w % 5), 'agent',
       'medium', 'bulk error', 'agent_' || (w % 7), 'op_' || (w % 3), k,
       md5('snap' || w)::uuid, true, 'retry', t0 + k * interval '1 second'
  FROM bulk_workflows, generate_series(1, 2) AS k

-- name: fill_successes
INSERT INTO debug_success_events (id, correlation_id, success_type, operation_name, agent_name,
                                  execution_step, state_snapshot_id, retry_count, occurred_at)
SELECT md5('ok' || k || ':' || w)::uuid, correlation_id, 'recovery_success', 'op_' || (w % 3),
       'agent_' || (w % 7), k, md5('snap' || w)::uuid, 1, t0 + (k + 2) * interval '1 second'
  FROM bulk_workflows, generate_series(1, 2) AS k

-- name: fill_steps
INSERT INTO debug_workflow_steps (id, correlation_id, step_number, attempt, step_type,
                                  agent_name, operation_name, status, error_event_id,
                                  success_event_id, parent_step_id, pre_state_snapshot_id,
                                  started_at, completed_at)
SELECT md5('step' || k || ':' || w)::uuid, correlation_id, (k + 1) / 2, 2 - k % 2, 'execution',
       'agent_' || (w % 7), 'op_' || (w % 3),
       CASE WHEN k % 2 = 1 THEN 'failed' ELSE 'completed' END,
       CASE WHEN k % 2 = 1 THEN md5('err' || (k + 1) / 2 || ':' || w)::uuid END,
       CASE WHEN k % 2 = 0 THEN md5('ok' || k / 2 || ':' || w)::uuid END,
       CASE WHEN k > 1 THEN md5('step1:' || w)::uuid END,
       md5('snap' || w)::uuid,
       t0 + k * interval '1 second', t0 + (k + 1) * interval '1 second'
  FROM bulk_workflows, generate_series(1, 4) AS k
 ORDER BY k

-- name: fill_correlations
INSERT INTO debug_error_success_correlation (error_event_id, success_event_id, correlation_id,
                                             recovery_path, recovery_duration_ms,
                                             intermediate_steps, recovery_strategy,
                                             confidence_score)
SELECT md5('err1:' || w)::uuid, md5('ok1:' || w)::uuid, correlation_id, 'bulk', 2000, 1,
       'retry', 0.9
  FROM bulk_workflows

-- name: fill_aliases
INSERT INTO sink_snapshot_aliases (alias_id, snapshot_id)
SELECT md5('alias' || w)::uuid, md5('snap' || w)::uuid FROM bulk_workflows WHERE w % 10 = 0
