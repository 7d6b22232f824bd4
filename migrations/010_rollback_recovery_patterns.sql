-- Rollback of 010: debug_error_recovery_patterns aggregates the links again (migration 005's
-- definition and comment); the aggregate, its triggers and functions go. No CASCADE: a user's
-- object on them blocks this. Sessions that deleted errors keep an empty temporary
-- recovery_pattern_deleted_errors until they end.
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

DROP TRIGGER IF EXISTS recovery_patterns_error_type ON debug_error_events;
DROP TRIGGER IF EXISTS recovery_patterns_errors_delete ON debug_error_events;
DROP TRIGGER IF EXISTS recovery_patterns_truncate ON debug_error_success_correlation;
DROP TRIGGER IF EXISTS recovery_patterns_delete ON debug_error_success_correlation;
DROP TRIGGER IF EXISTS recovery_patterns_update ON debug_error_success_correlation;
DROP TRIGGER IF EXISTS recovery_patterns_insert ON debug_error_success_correlation;
DROP FUNCTION IF EXISTS recovery_patterns_error_type_changed();
DROP FUNCTION IF EXISTS recovery_patterns_errors_deleted();
DROP FUNCTION IF EXISTS recovery_patterns_links_truncated();
DROP FUNCTION IF EXISTS recovery_patterns_links_updated();
DROP FUNCTION IF EXISTS recovery_patterns_links_deleted();
DROP FUNCTION IF EXISTS recovery_patterns_links_inserted();
DROP FUNCTION IF EXISTS recovery_patterns_rebuild();
DROP FUNCTION IF EXISTS recovery_patterns_apply(recovery_pattern_delta[]);
DROP TYPE IF EXISTS recovery_pattern_delta;
DROP TABLE IF EXISTS recovery_pattern_workflows;
DROP TABLE IF EXISTS recovery_pattern_stats;
DELETE FROM schema_migrations WHERE version = 10;
