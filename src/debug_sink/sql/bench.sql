-- The query-scale database of `debug-sink bench` (debug_sink.bench, section "queries").
--
-- A migrated database is filled with generate_series, not through the sink: $1 workflows of
-- 10 events each (3 snapshots, 1 error with a stack trace, 1 success, 3 steps, 1 LLM hook
-- event, 1 transformation), and a correlator link for 3 workflows in 5. Ids are md5-derived
-- (reproducible); workflows are spread over the last 30 days; 12 agents, 17 operations, 20
-- error types, 3 recovery strategies. The bench drops the secondary indexes before the fill
-- and recreates them after it (CREATE INDEX is much cheaper than maintaining them row by
-- row), and fills with session_replication_role = replica: the rows are consistent by
-- construction, so the foreign-key triggers are skipped -- and so are the triggers that keep
-- the recovery-patterns aggregate (migration 010): the bench rebuilds it after the fill.

-- name: fill_workflows
-- $1 workflows.
CREATE TEMP TABLE bench_workflows AS
SELECT w,
       md5('bw' || w)::uuid AS correlation_id,
       md5('bsess' || (w / 4))::uuid AS session_id,
       clock_timestamp() - (w % 2592000) * interval '1 second' AS t0,
       'agent_' || (w % 12) AS agent,
       'op_' || (w % 17) AS op,
       (ARRAY['TimeoutError', 'RateLimitError', 'HTTPError', 'ValidationError', 'ToolError',
              'LLMOutputParseError', 'ContextLengthExceeded', 'KeyError', 'ValueError',
              'ConnectionResetError', 'JSONDecodeError', 'PermissionError', 'TestFailure',
              'AssertionError', 'RuntimeError', 'NotFoundError', 'AuthenticationError',
              'ServiceUnavailable', 'BudgetExceeded', 'SchemaMismatch'])[1 + w % 20]
         AS error_type
  FROM generate_series(1, $1::integer) AS w

-- name: fill_snapshots
-- $1 the state template (jsonb, ~1 KB); each state adds the workflow and checkpoint numbers.
-- $2 the size of a state in bytes (recorded in state_size_bytes).
INSERT INTO debug_state_snapshots (id, snapshot_type, correlation_id, session_id, agent_name,
                                   agent_state, state_hash, execution_step, task_description,
                                   state_size_bytes, variables_count, parent_snapshot_id,
                                   captured_at)
SELECT md5('bs' || k || ':' || w)::uuid, (ARRAY['checkpoint', 'error', 'success'])[k],
       correlation_id, session_id, agent,
       $1::jsonb || jsonb_build_object('workflow', w, 'checkpoint', k),
       md5('h1' || k || ':' || w) || md5('h2' || k || ':' || w),
       k, 'bench workflow task', $2::integer, 9,
       CASE WHEN k > 1 THEN md5('bs' || (k - 1) || ':' || w)::uuid END,
       t0 + k * interval '1 second'
  FROM bench_workflows, generate_series(1, 3) AS k

-- name: fill_errors
-- $1 the stack trace text (~1 KB).
INSERT INTO debug_error_events (id, correlation_id, session_id, error_type, error_category,
                                error_severity, error_message, error_stack_trace, agent_name,
                                operation_name, execution_step, state_snapshot_id,
                                is_recoverable, recovery_attempted, recovery_strategy,
                                metadata, occurred_at)
SELECT md5('be' || w)::uuid, correlation_id, session_id, error_type,
       (ARRAY['agent', 'framework', 'external', 'user'])[1 + w % 4],
       (ARRAY['low', 'medium', 'high', 'critical'])[1 + w % 4],
       error_type || ' in ' || op || ' of workflow ' || w, $1::text, agent, op, 2,
       md5('bs2:' || w)::uuid, w % 3 <> 0, w % 5 < 3,
       CASE WHEN w % 5 < 3 THEN (ARRAY['retry', 'fallback', 'escalate'])[1 + w % 3] END,
       jsonb_build_object('endpoint', '/v1/' || op, 'timeout_s', 30),
       t0 + interval '2.5 seconds'
  FROM bench_workflows

-- name: fill_successes
INSERT INTO debug_success_events (id, correlation_id, session_id, success_type, operation_name,
                                  agent_name, execution_step, state_snapshot_id, quality_score,
                                  completion_status, execution_time_ms, retry_count,
                                  success_factors, occurred_at)
SELECT md5('bo' || w)::uuid, correlation_id, session_id,
       CASE WHEN w % 5 < 3 THEN 'recovery_success' ELSE 'task_completion' END, op, agent, 3,
       md5('bs3:' || w)::uuid, ((w % 100) / 100.0)::numeric(5, 4), 'full', 1000 + w % 5000,
       CASE WHEN w % 5 < 3 THEN 1 ELSE 0 END,
       jsonb_build_object('strategy', 'retry', 'backoff_ms', 1000), t0 + interval '3.5 seconds'
  FROM bench_workflows

-- name: fill_steps
INSERT INTO debug_workflow_steps (id, correlation_id, session_id, step_number, attempt,
                                  step_type, agent_name, operation_name, status,
                                  pre_state_snapshot_id, error_event_id, success_event_id,
                                  duration_ms, input_data, output_data, started_at,
                                  completed_at)
SELECT md5('bt' || k || ':' || w)::uuid, correlation_id, session_id, k, 1, 'execution', agent,
       op, CASE k WHEN 2 THEN 'failed' ELSE 'completed' END,
       md5('bs' || k || ':' || w)::uuid,
       CASE WHEN k = 2 THEN md5('be' || w)::uuid END,
       CASE WHEN k = 3 THEN md5('bo' || w)::uuid END,
       900, jsonb_build_object('input', k), jsonb_build_object('output', k),
       t0 + k * interval '1 second', t0 + (k + 0.9) * interval '1 second'
  FROM bench_workflows, generate_series(1, 3) AS k

-- name: fill_hooks
INSERT INTO hook_events (id, source, resource_id, payload, metadata, created_at)
SELECT md5('bh' || w)::uuid, 'PostToolUse', 'gpt-4o',
       jsonb_build_object('quality_metrics',
                          jsonb_build_object('quality_score', 0.9, 'latency_ms', 1840),
                          'success_classification', 'success',
                          'usage', jsonb_build_object('prompt_tokens', 3120,
                                                      'completion_tokens', 412)),
       jsonb_build_object('correlation_id', correlation_id, 'session_id', session_id,
                          'agent_name', agent, 'execution_step', 1),
       t0 + interval '1.5 seconds'
  FROM bench_workflows

-- name: fill_transformations
INSERT INTO agent_transformation_events (id, correlation_id, session_id, source_agent,
                                         target_agent, transformation_type, reason,
                                         confidence_score, state_snapshot_id, created_at)
SELECT md5('bx' || w)::uuid, correlation_id, session_id, 'router', agent, 'delegation',
       'routed by capability', 0.87, md5('bs1:' || w)::uuid, t0 + interval '0.5 seconds'
  FROM bench_workflows

-- name: fill_correlations
INSERT INTO debug_error_success_correlation (error_event_id, success_event_id, correlation_id,
                                             recovery_path, recovery_duration_ms,
                                             intermediate_steps, recovery_strategy,
                                             confidence_score, correlated_at)
SELECT md5('be' || w)::uuid, md5('bo' || w)::uuid, correlation_id,
       error_type || ' in ' || agent || '.' || op || ' -> retry', 1000, 1,
       (ARRAY['retry', 'fallback', 'escalate'])[1 + w % 3], 0.6 + (w % 40) / 100.0,
       t0 + interval '4 seconds'
  FROM bench_workflows
 WHERE w % 5 < 3

-- name: secondary_indexes
-- $1 table names. The indexes that back no constraint: dropped before the fill, recreated
-- after it.
SELECT i.indexname, i.indexdef
  FROM pg_indexes AS i
  JOIN pg_class AS c ON c.relname = i.indexname
  JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = i.schemaname
 WHERE i.schemaname = current_schema()
   AND i.tablename = ANY ($1::text[])
   AND NOT EXISTS (SELECT 1 FROM pg_constraint AS k WHERE k.conindid = c.oid)
 ORDER BY i.tablename, i.indexname

-- name: sample_workflows
-- $1 how many, $2 workflows in the database: evenly spread workflow ids.
SELECT md5('bw' || (1 + (k * ($2::bigint - 1)) / greatest($1::integer - 1, 1)))::uuid
  FROM generate_series(0, $1::integer - 1) AS k

-- name: fill_known_fix_occurrences
-- Fallback when the correlator module cannot rebuild the known-fixes aggregate: the same
-- shape (migration 008), computed from the rows.
INSERT INTO known_fix_occurrences (error_type, agent_name, operation_name, occurred,
                                   last_occurred_at)
SELECT error_type, agent_name, coalesce(operation_name, ''), count(*), max(occurred_at)
  FROM debug_error_events
 GROUP BY 1, 2, 3

-- name: fill_known_fix_stats
INSERT INTO known_fix_stats (error_type, agent_name, operation_name, recovery_strategy,
                             recovered, confident, duration_ms_sum, duration_count,
                             confidence_sum, example_correlation_ids, last_recovered_at)
SELECT e.error_type, e.agent_name, coalesce(e.operation_name, ''), c.recovery_strategy,
       count(*), count(*) FILTER (WHERE c.confidence_score >= 0.7),
       coalesce(sum(c.recovery_duration_ms), 0), count(c.recovery_duration_ms),
       coalesce(sum(c.confidence_score), 0),
       (array_agg(c.correlation_id ORDER BY c.correlated_at DESC))[1:5], max(c.correlated_at)
  FROM debug_error_success_correlation AS c
  JOIN debug_error_events AS e ON e.id = c.error_event_id
 GROUP BY 1, 2, 3, 4
