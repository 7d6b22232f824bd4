-- Rollback of migration 016: the correlator's record of what it set on each error (removing a
-- link then guesses again from resolved_at).

ALTER TABLE debug_error_events DROP COLUMN IF EXISTS correlator_marks;
DELETE FROM schema_migrations WHERE version = 16;
