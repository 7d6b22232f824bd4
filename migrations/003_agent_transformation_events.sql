-- Migration 003: agent_transformation_events
--
-- The agents' existing log of identity transformations (delegations between agents), which
-- migration 005 extends with references to snapshots, errors and successes. The documents
-- assume it exists with a uuid primary key `id` (defect 2); its other columns are the ones the
-- documents' integration examples write (source_agent, target_agent, correlation_id, ...).

CREATE TABLE IF NOT EXISTS agent_transformation_events (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  correlation_id UUID NOT NULL,
  session_id UUID,
  source_agent VARCHAR(255) NOT NULL,
  target_agent VARCHAR(255) NOT NULL,
  transformation_type VARCHAR(100) NOT NULL DEFAULT 'delegation',
  reason TEXT,
  confidence_score NUMERIC(5,4)
    CONSTRAINT agent_transformation_events_confidence_check
    CHECK (confidence_score IS NULL OR confidence_score BETWEEN 0 AND 1),
  metadata JSONB,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX IF NOT EXISTS idx_agent_transformation_events_correlation
  ON agent_transformation_events(correlation_id, created_at);

COMMENT ON TABLE agent_transformation_events IS
  'Agent identity transformations (source_agent -> target_agent) within a workflow (correlation_id).';

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (
  3,
  'agent_transformation_events',
  (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer
)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description,
      execution_time_ms = EXCLUDED.execution_time_ms;
