-- Rollback of 008: the correlator's watermark and the known-fixes aggregate. No CASCADE: a
-- user's object on them blocks this. The links in debug_error_success_correlation and the
-- recovery fields the correlator filled in debug_error_events are data and stay.
DROP FUNCTION IF EXISTS known_fixes(TEXT, TEXT, TEXT, INTEGER);
DROP TABLE IF EXISTS known_fix_stats;
DROP TABLE IF EXISTS known_fix_occurrences;
DROP TABLE IF EXISTS correlator_state;
DROP INDEX IF EXISTS idx_debug_success_events_ingest_xid;
DROP INDEX IF EXISTS idx_debug_error_events_ingest_xid;
ALTER TABLE debug_success_events DROP COLUMN IF EXISTS ingest_xid;
ALTER TABLE debug_error_events DROP COLUMN IF EXISTS ingest_xid;
DELETE FROM schema_migrations WHERE version = 8;
