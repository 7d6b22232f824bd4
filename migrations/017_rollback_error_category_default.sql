-- Rollback of migration 017: error_category has no default again.

ALTER TABLE debug_error_events ALTER COLUMN error_category DROP DEFAULT;
DELETE FROM schema_migrations WHERE version = 17;
