-- Migration: 005_debug_state_management
-- Description: Add debug loop tables for state tracking and error/success analysis
-- Source: the user's debug-loop-schema.md (tables 1-5, the extension of
-- agent_transformation_events, the views, capture_state_snapshot) and
-- migration-005-quickstart.md (the third view and the second function it verifies).
--
-- Every table, column, CHECK constraint and index of the design document is here under the
-- same name. Where the documents are defective (see shared/spec/README.md) this file ships
-- their intent instead:
--   1  the template's placeholders are replaced by the tables' full DDL;
--   3  execution_time_ms is a real, non-negative duration;
--   4  every CREATE INDEX has IF NOT EXISTS;
--   5  capture_state_snapshot() hashes with the built-in sha256(), no pgcrypto;
--   6  state_size_bytes counts bytes, variables_count counts top-level keys;
--   8  debug_error_recovery_patterns and get_workflow_debug_summary() are defined;
--   9  a state is stored once per workflow: UNIQUE (correlation_id, state_hash);
--  10  debug_workflow_context aggregates each table separately: one row per workflow, no
--      join blow-up, and the correlation_id predicate reaches every table's index;
--  12  the rollback has no CASCADE;
--  13  debug_llm_call_summary.correlation_id is a uuid backed by an index (migration 004);
--  15  defaults are clock_timestamp(), not NOW();
--  16  error_type is VARCHAR(255); a retried workflow step is a new row with a higher
--      `attempt` instead of a UNIQUE (correlation_id, step_number) violation.
-- Beyond the document: every foreign key is DEFERRABLE INITIALLY IMMEDIATE, because the sink
-- writes a batch's rows of several topics in one transaction with SET CONSTRAINTS ALL
-- DEFERRED (events of one workflow arrive in any order, and snapshots <->
-- transformations reference each other); debug_state_snapshots has a `metadata` column
-- where the sink keeps references whose target never arrived.
-- Retention (indexes on every foreign key column, ON DELETE behaviour) and the GIN index
-- decision are migration 006.
--
-- Runs in one transaction (the runner, or `psql -1 -f`); objects land in the schema the
-- runner puts first on search_path.

-- ============================================================================
-- STEP 1: Create New Tables (in dependency order)
-- ============================================================================

-- Table 1: debug_state_snapshots
CREATE TABLE IF NOT EXISTS debug_state_snapshots (
  -- Primary key
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),

  -- Identification
  snapshot_type VARCHAR(50) NOT NULL, -- error, success, checkpoint, pre_transform, post_transform
  correlation_id UUID NOT NULL, -- Links to workflow
  session_id UUID, -- Links to session

  -- Agent context
  agent_name VARCHAR(255) NOT NULL,
  agent_state JSONB NOT NULL, -- Full agent state (context, variables, etc.)
  state_hash VARCHAR(64) NOT NULL, -- SHA-256 hex of the canonical JSON, for deduplication

  -- Execution context
  execution_step INTEGER, -- Step number in workflow
  task_description TEXT, -- What agent was trying to do
  user_request TEXT, -- Original user request

  -- State metadata
  state_size_bytes INTEGER,
  variables_count INTEGER,
  context_depth INTEGER, -- How deep in delegation chain

  -- Performance
  memory_usage_mb DECIMAL(10,2),
  cpu_time_ms INTEGER,
  wall_time_ms INTEGER,

  -- Relationships (nullable - set when related events exist)
  transformation_event_id UUID
    CONSTRAINT debug_state_snapshots_transformation_event_id_fkey
    REFERENCES agent_transformation_events(id) DEFERRABLE INITIALLY IMMEDIATE,
  parent_snapshot_id UUID
    CONSTRAINT debug_state_snapshots_parent_snapshot_id_fkey
    REFERENCES debug_state_snapshots(id) DEFERRABLE INITIALLY IMMEDIATE, -- Previous snapshot

  -- Sink bookkeeping, e.g. references whose target never arrived
  metadata JSONB,

  -- Timestamps
  captured_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),

  -- Constraints
  CONSTRAINT debug_state_snapshots_snapshot_type_check
    CHECK (snapshot_type IN ('error', 'success', 'checkpoint', 'pre_transform', 'post_transform'))
);

-- Indexes for performance
CREATE INDEX IF NOT EXISTS idx_debug_state_snapshots_correlation
  ON debug_state_snapshots(correlation_id, captured_at DESC);

CREATE INDEX IF NOT EXISTS idx_debug_state_snapshots_session
  ON debug_state_snapshots(session_id, captured_at DESC)
  WHERE session_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_debug_state_snapshots_agent
  ON debug_state_snapshots(agent_name, snapshot_type, captured_at DESC);

CREATE INDEX IF NOT EXISTS idx_debug_state_snapshots_type_time
  ON debug_state_snapshots(snapshot_type, captured_at DESC);

CREATE INDEX IF NOT EXISTS idx_debug_state_snapshots_hash
  ON debug_state_snapshots(state_hash); -- Deduplication (superseded in 006)

-- Defect 9: the document promised "same state should not be captured twice" but enforced
-- nothing. The dedupe scope is one workflow; capture_state_snapshot() and the sink rely on
-- this index with ON CONFLICT (correlation_id, state_hash).
CREATE UNIQUE INDEX IF NOT EXISTS idx_debug_state_snapshots_correlation_hash
  ON debug_state_snapshots(correlation_id, state_hash);

CREATE INDEX IF NOT EXISTS idx_debug_state_snapshots_parent
  ON debug_state_snapshots(parent_snapshot_id)
  WHERE parent_snapshot_id IS NOT NULL;

-- JSONB index for state queries (replaced by a jsonb_path_ops index in 006, see there)
CREATE INDEX IF NOT EXISTS idx_debug_state_snapshots_state
  ON debug_state_snapshots USING GIN(agent_state);

COMMENT ON TABLE debug_state_snapshots IS
  'Captures agent state at critical points for debug replay and analysis. ONEX Effect node.';
COMMENT ON COLUMN debug_state_snapshots.agent_state IS
  'Full agent state including context, variables, and execution metadata';
COMMENT ON COLUMN debug_state_snapshots.state_hash IS
  'SHA-256 (hex) of debug_canonical_json(agent_state), for deduplication - the same state is stored once per correlation_id';
COMMENT ON COLUMN debug_state_snapshots.metadata IS
  'Sink bookkeeping, e.g. references to events that never arrived (kept here instead of a dangling foreign key)';

-- Table 2: debug_error_events
CREATE TABLE IF NOT EXISTS debug_error_events (
  -- Primary key
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),

  -- Identification
  correlation_id UUID NOT NULL,
  session_id UUID,

  -- Error classification
  -- Defect 16: 255, not 100 - a long exception class name must not fail inside an error handler.
  error_type VARCHAR(255) NOT NULL, -- validation_error, execution_error, timeout, etc.
  error_category VARCHAR(50) NOT NULL, -- agent, framework, external, user
  error_severity VARCHAR(20) NOT NULL, -- low, medium, high, critical

  -- Error details
  error_message TEXT NOT NULL,
  error_stack_trace TEXT,
  error_code VARCHAR(50),

  -- Context
  agent_name VARCHAR(255) NOT NULL,
  operation_name VARCHAR(255), -- What operation failed
  execution_step INTEGER,

  -- State at error
  state_snapshot_id UUID
    CONSTRAINT debug_error_events_state_snapshot_id_fkey
    REFERENCES debug_state_snapshots(id) DEFERRABLE INITIALLY IMMEDIATE,

  -- Impact assessment
  is_recoverable BOOLEAN DEFAULT FALSE,
  recovery_attempted BOOLEAN DEFAULT FALSE,
  recovery_successful BOOLEAN,
  recovery_strategy VARCHAR(100), -- retry, fallback, skip, abort

  -- Metadata
  metadata JSONB, -- Additional context (request params, env vars, etc.)

  -- Timestamps
  occurred_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
  resolved_at TIMESTAMP WITH TIME ZONE,

  -- Constraints
  CONSTRAINT debug_error_events_severity_check
    CHECK (error_severity IN ('low', 'medium', 'high', 'critical')),
  CONSTRAINT debug_error_events_category_check
    CHECK (error_category IN ('agent', 'framework', 'external', 'user'))
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_debug_error_events_correlation
  ON debug_error_events(correlation_id, occurred_at DESC);

CREATE INDEX IF NOT EXISTS idx_debug_error_events_session
  ON debug_error_events(session_id, occurred_at DESC)
  WHERE session_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_debug_error_events_agent_type
  ON debug_error_events(agent_name, error_type, occurred_at DESC);

CREATE INDEX IF NOT EXISTS idx_debug_error_events_severity
  ON debug_error_events(error_severity, occurred_at DESC);

CREATE INDEX IF NOT EXISTS idx_debug_error_events_state
  ON debug_error_events(state_snapshot_id)
  WHERE state_snapshot_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_debug_error_events_recovery
  ON debug_error_events(is_recoverable, recovery_successful)
  WHERE recovery_attempted = TRUE;

COMMENT ON TABLE debug_error_events IS
  'Tracks error occurrences with full context for analysis and recovery. ONEX Effect node.';

-- Table 3: debug_success_events
CREATE TABLE IF NOT EXISTS debug_success_events (
  -- Primary key
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),

  -- Identification
  correlation_id UUID NOT NULL,
  session_id UUID,

  -- Success classification
  success_type VARCHAR(100) NOT NULL, -- task_completion, validation_pass, recovery_success
  operation_name VARCHAR(255) NOT NULL,

  -- Context
  agent_name VARCHAR(255) NOT NULL,
  execution_step INTEGER,

  -- State at success
  state_snapshot_id UUID
    CONSTRAINT debug_success_events_state_snapshot_id_fkey
    REFERENCES debug_state_snapshots(id) DEFERRABLE INITIALLY IMMEDIATE,

  -- Quality metrics
  quality_score DECIMAL(5,4), -- 0.0000 to 1.0000
  completion_status VARCHAR(50), -- full, partial, degraded
  validation_passed BOOLEAN DEFAULT TRUE,

  -- Performance
  execution_time_ms INTEGER,
  retry_count INTEGER DEFAULT 0,

  -- Learning data
  success_factors JSONB, -- What contributed to success
  metadata JSONB,

  -- Timestamps
  occurred_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),

  -- Constraints
  CONSTRAINT debug_success_events_quality_check
    CHECK (quality_score IS NULL OR (quality_score >= 0 AND quality_score <= 1))
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_debug_success_events_correlation
  ON debug_success_events(correlation_id, occurred_at DESC);

CREATE INDEX IF NOT EXISTS idx_debug_success_events_agent
  ON debug_success_events(agent_name, success_type, occurred_at DESC);

CREATE INDEX IF NOT EXISTS idx_debug_success_events_quality
  ON debug_success_events(quality_score DESC, occurred_at DESC)
  WHERE quality_score IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_debug_success_events_state
  ON debug_success_events(state_snapshot_id)
  WHERE state_snapshot_id IS NOT NULL;

COMMENT ON TABLE debug_success_events IS
  'Tracks successful operations for pattern learning and optimization. ONEX Effect node.';

-- Table 4: debug_error_success_correlation
CREATE TABLE IF NOT EXISTS debug_error_success_correlation (
  -- Primary key
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),

  -- Relationships
  error_event_id UUID NOT NULL
    CONSTRAINT debug_error_success_correlation_error_event_id_fkey
    REFERENCES debug_error_events(id) DEFERRABLE INITIALLY IMMEDIATE,
  success_event_id UUID NOT NULL
    CONSTRAINT debug_error_success_correlation_success_event_id_fkey
    REFERENCES debug_success_events(id) DEFERRABLE INITIALLY IMMEDIATE,

  -- Correlation metadata
  correlation_id UUID NOT NULL, -- Workflow correlation
  recovery_path TEXT, -- Description of how error led to success
  recovery_duration_ms INTEGER, -- Time from error to success
  intermediate_steps INTEGER, -- Steps between error and success

  -- Learning insights
  recovery_strategy VARCHAR(100), -- What strategy led to success
  confidence_score DECIMAL(5,4), -- Confidence in correlation (0-1)

  -- Timestamps
  correlated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),

  -- Constraints
  CONSTRAINT debug_error_success_correlation_unique
    UNIQUE (error_event_id, success_event_id),
  CONSTRAINT debug_error_success_correlation_confidence_check
    CHECK (confidence_score >= 0 AND confidence_score <= 1)
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_debug_error_success_correlation_error
  ON debug_error_success_correlation(error_event_id);

CREATE INDEX IF NOT EXISTS idx_debug_error_success_correlation_success
  ON debug_error_success_correlation(success_event_id);

CREATE INDEX IF NOT EXISTS idx_debug_error_success_correlation_workflow
  ON debug_error_success_correlation(correlation_id, correlated_at DESC);

CREATE INDEX IF NOT EXISTS idx_debug_error_success_correlation_strategy
  ON debug_error_success_correlation(recovery_strategy, confidence_score DESC);

COMMENT ON TABLE debug_error_success_correlation IS
  'Links errors to eventual successes for recovery pattern learning. ONEX Reducer node.';

-- Table 5: debug_workflow_steps
CREATE TABLE IF NOT EXISTS debug_workflow_steps (
  -- Primary key
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),

  -- Identification
  correlation_id UUID NOT NULL,
  session_id UUID,
  step_number INTEGER NOT NULL,
  -- Defect 16: the document's UNIQUE (correlation_id, step_number) rejected a retried step.
  -- A retry is a new row (its own id) with the same step_number and the next attempt.
  attempt INTEGER NOT NULL DEFAULT 1
    CONSTRAINT debug_workflow_steps_attempt_check CHECK (attempt >= 1),

  -- Step details
  step_type VARCHAR(100) NOT NULL, -- initialization, routing, execution, transformation, validation
  agent_name VARCHAR(255) NOT NULL,
  operation_name VARCHAR(255) NOT NULL,
  step_description TEXT,

  -- State snapshots
  pre_state_snapshot_id UUID
    CONSTRAINT debug_workflow_steps_pre_state_snapshot_id_fkey
    REFERENCES debug_state_snapshots(id) DEFERRABLE INITIALLY IMMEDIATE,
  post_state_snapshot_id UUID
    CONSTRAINT debug_workflow_steps_post_state_snapshot_id_fkey
    REFERENCES debug_state_snapshots(id) DEFERRABLE INITIALLY IMMEDIATE,

  -- Execution outcome
  status VARCHAR(50) NOT NULL, -- started, completed, failed, skipped
  error_event_id UUID
    CONSTRAINT debug_workflow_steps_error_event_id_fkey
    REFERENCES debug_error_events(id) DEFERRABLE INITIALLY IMMEDIATE,
  success_event_id UUID
    CONSTRAINT debug_workflow_steps_success_event_id_fkey
    REFERENCES debug_success_events(id) DEFERRABLE INITIALLY IMMEDIATE,

  -- Performance
  duration_ms INTEGER,

  -- Dependencies
  parent_step_id UUID
    CONSTRAINT debug_workflow_steps_parent_step_id_fkey
    REFERENCES debug_workflow_steps(id) DEFERRABLE INITIALLY IMMEDIATE,
  depends_on_steps INTEGER[], -- Array of step_numbers this depends on

  -- Metadata
  input_data JSONB,
  output_data JSONB,
  metadata JSONB,

  -- Timestamps
  started_at TIMESTAMP WITH TIME ZONE NOT NULL,
  completed_at TIMESTAMP WITH TIME ZONE,

  -- Constraints
  CONSTRAINT debug_workflow_steps_status_check
    CHECK (status IN ('started', 'completed', 'failed', 'skipped'))
);

-- Indexes
-- Non-unique (see `attempt`); also serves the document's lookups by (correlation_id, step_number).
CREATE INDEX IF NOT EXISTS idx_debug_workflow_steps_correlation
  ON debug_workflow_steps(correlation_id, step_number, attempt);

CREATE INDEX IF NOT EXISTS idx_debug_workflow_steps_agent
  ON debug_workflow_steps(agent_name, started_at DESC);

CREATE INDEX IF NOT EXISTS idx_debug_workflow_steps_status
  ON debug_workflow_steps(status, started_at DESC);

CREATE INDEX IF NOT EXISTS idx_debug_workflow_steps_error
  ON debug_workflow_steps(error_event_id)
  WHERE error_event_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_debug_workflow_steps_parent
  ON debug_workflow_steps(parent_step_id)
  WHERE parent_step_id IS NOT NULL;

COMMENT ON TABLE debug_workflow_steps IS
  'Tracks discrete workflow steps for replay and dependency analysis. ONEX Effect node.';
COMMENT ON COLUMN debug_workflow_steps.attempt IS
  '1 for the first execution of step_number, 2, 3, ... for retries (each retry is its own row)';

-- ============================================================================
-- STEP 2: Extend Existing Tables
-- ============================================================================

-- Extend agent_transformation_events
ALTER TABLE agent_transformation_events
  ADD COLUMN IF NOT EXISTS state_snapshot_id UUID
    CONSTRAINT agent_transformation_events_state_snapshot_id_fkey
    REFERENCES debug_state_snapshots(id) DEFERRABLE INITIALLY IMMEDIATE,
  ADD COLUMN IF NOT EXISTS error_event_id UUID
    CONSTRAINT agent_transformation_events_error_event_id_fkey
    REFERENCES debug_error_events(id) DEFERRABLE INITIALLY IMMEDIATE,
  ADD COLUMN IF NOT EXISTS success_event_id UUID
    CONSTRAINT agent_transformation_events_success_event_id_fkey
    REFERENCES debug_success_events(id) DEFERRABLE INITIALLY IMMEDIATE;

CREATE INDEX IF NOT EXISTS idx_agent_transformation_events_state_snapshot
  ON agent_transformation_events(state_snapshot_id)
  WHERE state_snapshot_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_agent_transformation_events_error
  ON agent_transformation_events(error_event_id)
  WHERE error_event_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_agent_transformation_events_success
  ON agent_transformation_events(success_event_id)
  WHERE success_event_id IS NOT NULL;

-- ============================================================================
-- STEP 3: Create Views for Integration
-- ============================================================================

-- View: LLM call summary from hook_events.
-- Defect 13: correlation_id is hook_events.correlation_id, a uuid generated from the
-- metadata (migration 002) and indexed for exactly this view (migration 004). Hook events
-- whose metadata correlation_id is not a UUID are left out, as are those without one.
CREATE OR REPLACE VIEW debug_llm_call_summary AS
SELECT
  id AS hook_event_id,
  metadata->>'session_id' AS session_id,
  correlation_id,
  resource_id AS tool_name,
  payload->'quality_metrics'->>'quality_score' AS quality_score,
  (payload->>'success_classification')::TEXT AS success_classification,
  created_at AS call_timestamp
FROM hook_events
WHERE source = 'PostToolUse'
  AND correlation_id IS NOT NULL;

COMMENT ON VIEW debug_llm_call_summary IS
  'Extracts LLM call metrics from hook_events for debug analysis';

-- View: Full debug context for correlation_id.
-- Defect 10: the document LEFT JOINed steps x errors x successes x snapshots (50 x 20 x 20 x
-- 50 = 1,000,000 rows for one workflow), grouped by session_id too (one workflow, several
-- rows) and started from the steps (a workflow with errors but no steps vanished). Here each
-- table is aggregated on its own, per (correlation_id, session_id, agent_name), the parts are
-- stacked with UNION ALL and folded into one row per correlation_id. A predicate on
-- correlation_id is pushed into every branch, so a lookup is four index scans.
--   session_id          the session of the workflow's earliest event (one representative)
--   session_ids         every session the workflow's events carry, sorted
--   agents_involved     every agent of its steps, errors, successes and snapshots, sorted
--   workflow_started    its earliest event (step start, error, success, snapshot)
--   workflow_completed  its latest event (step start or completion, error, success, snapshot)
CREATE OR REPLACE VIEW debug_workflow_context AS
SELECT
  p.correlation_id,
  (array_agg(p.session_id ORDER BY p.first_at, p.session_id)
     FILTER (WHERE p.session_id IS NOT NULL))[1] AS session_id,
  array_agg(DISTINCT p.agent_name ORDER BY p.agent_name) AS agents_involved,
  sum(p.steps)::BIGINT AS total_steps,
  sum(p.errors)::BIGINT AS error_count,
  sum(p.successes)::BIGINT AS success_count,
  sum(p.snapshots)::BIGINT AS snapshot_count,
  min(p.first_at) AS workflow_started,
  max(p.last_at) AS workflow_completed,
  EXTRACT(EPOCH FROM (max(p.last_at) - min(p.first_at))) * 1000 AS duration_ms,
  coalesce(array_agg(DISTINCT p.session_id ORDER BY p.session_id)
     FILTER (WHERE p.session_id IS NOT NULL), '{}') AS session_ids
FROM (
  SELECT correlation_id, session_id, agent_name,
         count(*) AS steps, 0::BIGINT AS errors, 0::BIGINT AS successes, 0::BIGINT AS snapshots,
         min(started_at) AS first_at, greatest(max(started_at), max(completed_at)) AS last_at
  FROM debug_workflow_steps
  GROUP BY correlation_id, session_id, agent_name
  UNION ALL
  SELECT correlation_id, session_id, agent_name,
         0, count(*), 0, 0,
         min(occurred_at), max(occurred_at)
  FROM debug_error_events
  GROUP BY correlation_id, session_id, agent_name
  UNION ALL
  SELECT correlation_id, session_id, agent_name,
         0, 0, count(*), 0,
         min(occurred_at), max(occurred_at)
  FROM debug_success_events
  GROUP BY correlation_id, session_id, agent_name
  UNION ALL
  SELECT correlation_id, session_id, agent_name,
         0, 0, 0, count(*),
         min(captured_at), max(captured_at)
  FROM debug_state_snapshots
  GROUP BY correlation_id, session_id, agent_name
) AS p
GROUP BY p.correlation_id;

COMMENT ON VIEW debug_workflow_context IS
  'Aggregated debug context for workflows - entry point for debug analysis. One row per correlation_id found in steps, errors, successes or snapshots.';

-- View: recovery patterns (defect 8: promised by the quickstart, never defined).
-- The design document's "Analyze Recovery Patterns" query as a view: recoveries the
-- correlator is confident about (confidence_score >= 0.7), per error type and strategy.
-- Usage: SELECT * FROM debug_error_recovery_patterns WHERE success_count >= 3
--        ORDER BY success_count DESC;
CREATE OR REPLACE VIEW debug_error_recovery_patterns AS
SELECT
  e.error_type,
  c.recovery_strategy,
  count(*) AS success_count,
  avg(c.recovery_duration_ms) AS avg_recovery_duration_ms,
  avg(c.confidence_score) AS avg_confidence,
  count(DISTINCT c.correlation_id) AS workflow_count,
  max(c.correlated_at) AS last_correlated_at
FROM debug_error_success_correlation c
JOIN debug_error_events e ON e.id = c.error_event_id
WHERE c.confidence_score >= 0.7
GROUP BY e.error_type, c.recovery_strategy;

COMMENT ON VIEW debug_error_recovery_patterns IS
  'Successful recovery strategies per error type: correlations with confidence_score >= 0.7, counted per (error_type, recovery_strategy)';

-- ============================================================================
-- STEP 4: Helper Functions
-- ============================================================================

-- Function: canonical JSON text of a jsonb value, the input of state_hash.
-- Same definition as the sink's and the SDK's (Python: orjson.dumps(value,
-- option=orjson.OPT_SORT_KEYS)): object keys sorted by code point (COLLATE "C" on UTF-8
-- sorts bytes, which is code point order), no whitespace, strings escaped as to_json(text)
-- does, numbers / true / false / null as jsonb prints them, arrays in order.
-- Numbers agree with Python for integers and for floats written without an exponent
-- (0.5, 3.14, -2.25, 100.0); jsonb prints 1e16 as 10000000000000000, Python as 1e16.
-- Cost on this machine (2 cores, PG 18): ~0.25-0.35 ms for a 1 KB state with 35 objects and
-- arrays, ~1.7-2.3 ms for a deeply nested 8 KB state with 250: one query per object or
-- array, none per scalar (the fastest of the variants measured: recursive SQL functions,
-- one recursive CTE over the whole document, and inlining a level were all slower).
CREATE OR REPLACE FUNCTION debug_canonical_json(p_value JSONB)
RETURNS TEXT
LANGUAGE plpgsql
IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
DECLARE
  v_kind TEXT := jsonb_typeof(p_value);
  v_body TEXT;
BEGIN
  IF v_kind = 'object' THEN
    SELECT string_agg(
             to_json(e.key)::TEXT || ':' ||
             CASE WHEN jsonb_typeof(e.value) IN ('object', 'array')
                  THEN debug_canonical_json(e.value)
                  ELSE e.value::TEXT END,
             ',' ORDER BY e.key COLLATE "C")
      INTO v_body
      FROM jsonb_each(p_value) AS e;
    RETURN '{' || coalesce(v_body, '') || '}';
  ELSIF v_kind = 'array' THEN
    SELECT string_agg(
             CASE WHEN jsonb_typeof(a.value) IN ('object', 'array')
                  THEN debug_canonical_json(a.value)
                  ELSE a.value::TEXT END,
             ',' ORDER BY a.ordinality)
      INTO v_body
      FROM jsonb_array_elements(p_value) WITH ORDINALITY AS a;
    RETURN '[' || coalesce(v_body, '') || ']';
  END IF;
  RETURN p_value::TEXT;
END;
$$;

COMMENT ON FUNCTION debug_canonical_json(JSONB) IS
  'Canonical JSON text (sorted keys, no whitespace) of a jsonb value; sha256 of its UTF-8 bytes is state_hash';

-- Function: Capture state snapshot.
-- Defects 5, 6, 9: sha256() is built in (no pgcrypto); state_size_bytes is the size in bytes
-- of the canonical JSON, variables_count the number of top-level keys (elements for an
-- array state, NULL for a scalar); a state already stored for this correlation_id is not
-- stored again - the existing snapshot's id is returned (its snapshot_type, agent and step
-- stay those of the first capture). Concurrent captures of one state: the unique index makes
-- the second INSERT wait for the first transaction, then find its row. Cost is independent of
-- the table's size (one unique-index probe).
CREATE OR REPLACE FUNCTION capture_state_snapshot(
  p_snapshot_type VARCHAR,
  p_correlation_id UUID,
  p_agent_name VARCHAR,
  p_agent_state JSONB,
  p_task_description TEXT DEFAULT NULL,
  p_session_id UUID DEFAULT NULL,
  p_execution_step INTEGER DEFAULT NULL
) RETURNS UUID
LANGUAGE plpgsql
VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
  v_snapshot_id UUID;
  v_canonical BYTEA := convert_to(debug_canonical_json(p_agent_state), 'UTF8');
  v_state_hash VARCHAR(64) := encode(sha256(v_canonical), 'hex');
BEGIN
  LOOP
    INSERT INTO debug_state_snapshots (
      snapshot_type, correlation_id, session_id, agent_name,
      agent_state, state_hash, execution_step, task_description,
      state_size_bytes, variables_count
    ) VALUES (
      p_snapshot_type, p_correlation_id, p_session_id, p_agent_name,
      p_agent_state, v_state_hash, p_execution_step, p_task_description,
      octet_length(v_canonical),
      CASE jsonb_typeof(p_agent_state)
        WHEN 'object' THEN (SELECT count(*) FROM jsonb_object_keys(p_agent_state))
        WHEN 'array' THEN jsonb_array_length(p_agent_state)
      END
    )
    ON CONFLICT (correlation_id, state_hash) DO NOTHING
    RETURNING id INTO v_snapshot_id;

    IF v_snapshot_id IS NOT NULL THEN
      RETURN v_snapshot_id;
    END IF;

    SELECT s.id INTO v_snapshot_id
      FROM debug_state_snapshots AS s
     WHERE s.correlation_id = p_correlation_id
       AND s.state_hash = v_state_hash;

    IF v_snapshot_id IS NOT NULL THEN
      RETURN v_snapshot_id;
    END IF;
    -- The conflicting row was deleted (e.g. by retention) in between: insert again.
  END LOOP;
END;
$$;

COMMENT ON FUNCTION capture_state_snapshot(VARCHAR, UUID, VARCHAR, JSONB, TEXT, UUID, INTEGER) IS
  'Captures agent state snapshot with automatic deduplication: a state is stored once per correlation_id; returns the snapshot id (the existing one for a duplicate)';

-- Function: one-row debug summary of a workflow (defect 8: promised by the quickstart, never
-- defined). Always exactly one row: zeros, empty arrays and NULL times for an unknown id.
-- Each table is aggregated on its own through its correlation_id index (no join).
--   unrecovered_error_count  errors neither marked recovered (recovery_successful),
--                            nor resolved (resolved_at), nor linked to a success
--                            in debug_error_success_correlation
--   recovery_count           rows of debug_error_success_correlation for the workflow
--   first/last_event_at      as debug_workflow_context's workflow_started/_completed
CREATE OR REPLACE FUNCTION get_workflow_debug_summary(
  p_correlation_id UUID,
  OUT correlation_id UUID,
  OUT session_ids UUID[],
  OUT agents_involved TEXT[],
  OUT step_count BIGINT,
  OUT failed_step_count BIGINT,
  OUT error_count BIGINT,
  OUT unrecovered_error_count BIGINT,
  OUT success_count BIGINT,
  OUT recovery_count BIGINT,
  OUT snapshot_count BIGINT,
  OUT llm_call_count BIGINT,
  OUT transformation_count BIGINT,
  OUT first_event_at TIMESTAMP WITH TIME ZONE,
  OUT last_event_at TIMESTAMP WITH TIME ZONE,
  OUT duration_ms NUMERIC
)
LANGUAGE sql
STABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
  SELECT
    p_correlation_id,
    ARRAY(SELECT DISTINCT x FROM unnest(w.sessions || e.sessions || s.sessions || n.sessions) AS x
          WHERE x IS NOT NULL ORDER BY x),
    ARRAY(SELECT DISTINCT x FROM unnest(w.agents || e.agents || s.agents || n.agents) AS x
          ORDER BY x),
    w.cnt, w.failed, e.cnt, e.unrecovered, s.cnt, c.cnt, n.cnt, l.cnt, t.cnt,
    least(w.first_at, e.first_at, s.first_at, n.first_at),
    greatest(w.last_at, e.last_at, s.last_at, n.last_at),
    EXTRACT(EPOCH FROM (greatest(w.last_at, e.last_at, s.last_at, n.last_at)
                        - least(w.first_at, e.first_at, s.first_at, n.first_at))) * 1000
  FROM
    (SELECT count(*) AS cnt,
            count(*) FILTER (WHERE ws.status = 'failed') AS failed,
            array_agg(DISTINCT ws.session_id) AS sessions,
            array_agg(DISTINCT ws.agent_name::TEXT) AS agents,
            min(ws.started_at) AS first_at,
            greatest(max(ws.started_at), max(ws.completed_at)) AS last_at
       FROM debug_workflow_steps AS ws
      WHERE ws.correlation_id = p_correlation_id) AS w,
    (SELECT count(*) AS cnt,
            count(*) FILTER (
              WHERE ee.recovery_successful IS NOT TRUE
                AND ee.resolved_at IS NULL
                AND NOT EXISTS (SELECT 1 FROM debug_error_success_correlation AS ec
                                 WHERE ec.error_event_id = ee.id)) AS unrecovered,
            array_agg(DISTINCT ee.session_id) AS sessions,
            array_agg(DISTINCT ee.agent_name::TEXT) AS agents,
            min(ee.occurred_at) AS first_at,
            max(ee.occurred_at) AS last_at
       FROM debug_error_events AS ee
      WHERE ee.correlation_id = p_correlation_id) AS e,
    (SELECT count(*) AS cnt,
            array_agg(DISTINCT se.session_id) AS sessions,
            array_agg(DISTINCT se.agent_name::TEXT) AS agents,
            min(se.occurred_at) AS first_at,
            max(se.occurred_at) AS last_at
       FROM debug_success_events AS se
      WHERE se.correlation_id = p_correlation_id) AS s,
    (SELECT count(*) AS cnt,
            array_agg(DISTINCT ss.session_id) AS sessions,
            array_agg(DISTINCT ss.agent_name::TEXT) AS agents,
            min(ss.captured_at) AS first_at,
            max(ss.captured_at) AS last_at
       FROM debug_state_snapshots AS ss
      WHERE ss.correlation_id = p_correlation_id) AS n,
    (SELECT count(*) AS cnt FROM debug_error_success_correlation AS cc
      WHERE cc.correlation_id = p_correlation_id) AS c,
    (SELECT count(*) AS cnt FROM debug_llm_call_summary AS lc
      WHERE lc.correlation_id = p_correlation_id) AS l,
    (SELECT count(*) AS cnt FROM agent_transformation_events AS te
      WHERE te.correlation_id = p_correlation_id) AS t
$$;

COMMENT ON FUNCTION get_workflow_debug_summary(UUID) IS
  'One-row debug summary of a workflow (counts of steps, errors, unrecovered errors, successes, recoveries, snapshots, LLM calls, transformations; agents; time span). Zeros for an unknown correlation_id.';

-- ============================================================================
-- STEP 5: Record Migration
-- ============================================================================

-- Defect 3: the duration is measured from the start of this transaction, with the clock
-- (NOW() and statement_timestamp() are frozen), in milliseconds (EPOCH, not MILLISECONDS).
INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (
  5,
  'Add debug loop tables for state tracking and error/success analysis',
  (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer
)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description,
      execution_time_ms = EXCLUDED.execution_time_ms;
