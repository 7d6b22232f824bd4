-- Migration 016: which of an error's recovery fields the correlator set, so that removing its
-- link takes back exactly those.
--
-- A link marks its error recovered: recovery_successful = TRUE and, when the agent gave none,
-- resolved_at = the success's time. When later evidence removes or moves an inferred link,
-- the correlator takes its marks back. Before this migration it could only guess which they
-- were (resolved_at equal to the old success's time), so an agent's own
-- recovery_successful = TRUE (or FALSE) next to a resolved_at the correlator had filled in
-- became NULL. correlator_marks records, per error, what the correlator changed:
--
--   1  recovery_successful was NULL      2  recovery_successful was FALSE
--   4  resolved_at was NULL
--
-- NULL: never marked, or marked before this migration (then the old rule applies: the marks
-- go when resolved_at is the old success's time). Adding a nullable column without a default
-- rewrites nothing.

ALTER TABLE debug_error_events ADD COLUMN IF NOT EXISTS correlator_marks SMALLINT;

COMMENT ON COLUMN debug_error_events.correlator_marks IS
  'Bits of what the correlator set when it linked this error (1: recovery_successful was NULL, 2: it was FALSE, 4: resolved_at was NULL); taken back with its link.';

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (16, 'debug_error_events.correlator_marks: what the correlator set, taken back with its link',
        (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description, execution_time_ms = EXCLUDED.execution_time_ms;
