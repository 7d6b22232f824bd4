-- The user's literal seed schema, for `debug-sink bench` only (target (b): raw COPY into it).
--
-- Verbatim: the CREATE TABLE / CREATE INDEX / COMMENT statements of Tables 1-5 of
-- debug-loop-schema.md (section 1.2), with the default-opclass GIN index on agent_state and
-- every index of the document, then "STEP 2: Extend Existing Tables" of its migration text.
-- Nothing of the shipped migrations' fixes is applied here. Prerequisites: migrations 001-004
-- (schema_migrations, hook_events, agent_transformation_events); the bench runs
-- `migrate_up(to=4)` first, in a database of its own. Never used by the sink.

-- Table 1
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
  state_hash VARCHAR(64) NOT NULL, -- SHA-256 for deduplication

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
  transformation_event_id UUID REFERENCES agent_transformation_events(id),
  parent_snapshot_id UUID REFERENCES debug_state_snapshots(id), -- Previous snapshot

  -- Timestamps
  captured_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),

  -- Constraints
  CONSTRAINT debug_state_snapshots_snapshot_type_check
    CHECK (snapshot_type IN ('error', 'success', 'checkpoint', 'pre_transform', 'post_transform'))
);

-- Indexes for performance
CREATE INDEX idx_debug_state_snapshots_correlation
  ON debug_state_snapshots(correlation_id, captured_at DESC);

CREATE INDEX idx_debug_state_snapshots_session
  ON debug_state_snapshots(session_id, captured_at DESC)
  WHERE session_id IS NOT NULL;

CREATE INDEX idx_debug_state_snapshots_agent
  ON debug_state_snapshots(agent_name, snapshot_type, captured_at DESC);

CREATE INDEX idx_debug_state_snapshots_type_time
  ON debug_state_snapshots(snapshot_type, captured_at DESC);

CREATE INDEX idx_debug_state_snapshots_hash
  ON debug_state_snapshots(state_hash); -- Deduplication

CREATE INDEX idx_debug_state_snapshots_parent
  ON debug_state_snapshots(parent_snapshot_id)
  WHERE parent_snapshot_id IS NOT NULL;

-- JSONB index for state queries
CREATE INDEX idx_debug_state_snapshots_state
  ON debug_state_snapshots USING GIN(agent_state);

COMMENT ON TABLE debug_state_snapshots IS
  'Captures agent state at critical points for debug replay and analysis. ONEX Effect node.';
COMMENT ON COLUMN debug_state_snapshots.agent_state IS
  'Full agent state including context, variables, and execution metadata';
COMMENT ON COLUMN debug_state_snapshots.state_hash IS
  'SHA-256 hash for deduplication - same state should not be captured twice';

-- Table 2
CREATE TABLE IF NOT EXISTS debug_error_events (
  -- Primary key
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),

  -- Identification
  correlation_id UUID NOT NULL,
  session_id UUID,

  -- Error classification
  error_type VARCHAR(100) NOT NULL, -- validation_error, execution_error, timeout, etc.
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
  state_snapshot_id UUID REFERENCES debug_state_snapshots(id),

  -- Impact assessment
  is_recoverable BOOLEAN DEFAULT FALSE,
  recovery_attempted BOOLEAN DEFAULT FALSE,
  recovery_successful BOOLEAN,
  recovery_strategy VARCHAR(100), -- retry, fallback, skip, abort

  -- Metadata
  metadata JSONB, -- Additional context (request params, env vars, etc.)

  -- Timestamps
  occurred_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
  resolved_at TIMESTAMP WITH TIME ZONE,

  -- Constraints
  CONSTRAINT debug_error_events_severity_check
    CHECK (error_severity IN ('low', 'medium', 'high', 'critical')),
  CONSTRAINT debug_error_events_category_check
    CHECK (error_category IN ('agent', 'framework', 'external', 'user'))
);

-- Indexes
CREATE INDEX idx_debug_error_events_correlation
  ON debug_error_events(correlation_id, occurred_at DESC);

CREATE INDEX idx_debug_error_events_session
  ON debug_error_events(session_id, occurred_at DESC)
  WHERE session_id IS NOT NULL;

CREATE INDEX idx_debug_error_events_agent_type
  ON debug_error_events(agent_name, error_type, occurred_at DESC);

CREATE INDEX idx_debug_error_events_severity
  ON debug_error_events(error_severity, occurred_at DESC);

CREATE INDEX idx_debug_error_events_state
  ON debug_error_events(state_snapshot_id)
  WHERE state_snapshot_id IS NOT NULL;

CREATE INDEX idx_debug_error_events_recovery
  ON debug_error_events(is_recoverable, recovery_successful)
  WHERE recovery_attempted = TRUE;

COMMENT ON TABLE debug_error_events IS
  'Tracks error occurrences with full context for analysis and recovery. ONEX Effect node.';

-- Table 3
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
  state_snapshot_id UUID REFERENCES debug_state_snapshots(id),

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
  occurred_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),

  -- Constraints
  CONSTRAINT debug_success_events_quality_check
    CHECK (quality_score IS NULL OR (quality_score >= 0 AND quality_score <= 1))
);

-- Indexes
CREATE INDEX idx_debug_success_events_correlation
  ON debug_success_events(correlation_id, occurred_at DESC);

CREATE INDEX idx_debug_success_events_agent
  ON debug_success_events(agent_name, success_type, occurred_at DESC);

CREATE INDEX idx_debug_success_events_quality
  ON debug_success_events(quality_score DESC, occurred_at DESC)
  WHERE quality_score IS NOT NULL;

CREATE INDEX idx_debug_success_events_state
  ON debug_success_events(state_snapshot_id)
  WHERE state_snapshot_id IS NOT NULL;

COMMENT ON TABLE debug_success_events IS
  'Tracks successful operations for pattern learning and optimization. ONEX Effect node.';

-- Table 4
CREATE TABLE IF NOT EXISTS debug_error_success_correlation (
  -- Primary key
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),

  -- Relationships
  error_event_id UUID NOT NULL REFERENCES debug_error_events(id),
  success_event_id UUID NOT NULL REFERENCES debug_success_events(id),

  -- Correlation metadata
  correlation_id UUID NOT NULL, -- Workflow correlation
  recovery_path TEXT, -- Description of how error led to success
  recovery_duration_ms INTEGER, -- Time from error to success
  intermediate_steps INTEGER, -- Steps between error and success

  -- Learning insights
  recovery_strategy VARCHAR(100), -- What strategy led to success
  confidence_score DECIMAL(5,4), -- Confidence in correlation (0-1)

  -- Timestamps
  correlated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),

  -- Constraints
  CONSTRAINT debug_error_success_correlation_unique
    UNIQUE (error_event_id, success_event_id),
  CONSTRAINT debug_error_success_correlation_confidence_check
    CHECK (confidence_score >= 0 AND confidence_score <= 1)
);

-- Indexes
CREATE INDEX idx_debug_error_success_correlation_error
  ON debug_error_success_correlation(error_event_id);

CREATE INDEX idx_debug_error_success_correlation_success
  ON debug_error_success_correlation(success_event_id);

CREATE INDEX idx_debug_error_success_correlation_workflow
  ON debug_error_success_correlation(correlation_id, correlated_at DESC);

CREATE INDEX idx_debug_error_success_correlation_strategy
  ON debug_error_success_correlation(recovery_strategy, confidence_score DESC);

COMMENT ON TABLE debug_error_success_correlation IS
  'Links errors to eventual successes for recovery pattern learning. ONEX Reducer node.';

-- Table 5
CREATE TABLE IF NOT EXISTS debug_workflow_steps (
  -- Primary key
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),

  -- Identification
  correlation_id UUID NOT NULL,
  session_id UUID,
  step_number INTEGER NOT NULL,

  -- Step details
  step_type VARCHAR(100) NOT NULL, -- initialization, routing, execution, transformation, validation
  agent_name VARCHAR(255) NOT NULL,
  operation_name VARCHAR(255) NOT NULL,
  step_description TEXT,

  -- State snapshots
  pre_state_snapshot_id UUID REFERENCES debug_state_snapshots(id),
  post_state_snapshot_id UUID REFERENCES debug_state_snapshots(id),

  -- Execution outcome
  status VARCHAR(50) NOT NULL, -- started, completed, failed, skipped
  error_event_id UUID REFERENCES debug_error_events(id),
  success_event_id UUID REFERENCES debug_success_events(id),

  -- Performance
  duration_ms INTEGER,

  -- Dependencies
  parent_step_id UUID REFERENCES debug_workflow_steps(id),
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
    CHECK (status IN ('started', 'completed', 'failed', 'skipped')),
  CONSTRAINT debug_workflow_steps_unique_step
    UNIQUE (correlation_id, step_number)
);

-- Indexes
CREATE INDEX idx_debug_workflow_steps_correlation
  ON debug_workflow_steps(correlation_id, step_number);

CREATE INDEX idx_debug_workflow_steps_agent
  ON debug_workflow_steps(agent_name, started_at DESC);

CREATE INDEX idx_debug_workflow_steps_status
  ON debug_workflow_steps(status, started_at DESC);

CREATE INDEX idx_debug_workflow_steps_error
  ON debug_workflow_steps(error_event_id)
  WHERE error_event_id IS NOT NULL;

CREATE INDEX idx_debug_workflow_steps_parent
  ON debug_workflow_steps(parent_step_id)
  WHERE parent_step_id IS NOT NULL;

COMMENT ON TABLE debug_workflow_steps IS
  'Tracks discrete workflow steps for replay and dependency analysis. ONEX Effect node.';

-- ============================================================================
-- STEP 2: Extend Existing Tables
-- ============================================================================

-- Extend agent_transformation_events
ALTER TABLE agent_transformation_events
  ADD COLUMN IF NOT EXISTS state_snapshot_id UUID REFERENCES debug_state_snapshots(id),
  ADD COLUMN IF NOT EXISTS error_event_id UUID REFERENCES debug_error_events(id),
  ADD COLUMN IF NOT EXISTS success_event_id UUID REFERENCES debug_success_events(id);

CREATE INDEX IF NOT EXISTS idx_agent_transformation_events_state_snapshot
  ON agent_transformation_events(state_snapshot_id)
  WHERE state_snapshot_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_agent_transformation_events_error
  ON agent_transformation_events(error_event_id)
  WHERE error_event_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_agent_transformation_events_success
  ON agent_transformation_events(success_event_id)
  WHERE success_event_id IS NOT NULL;
