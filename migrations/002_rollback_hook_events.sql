-- Rollback of migration 002. No CASCADE: a user's view on hook_events makes this fail loudly
-- and leaves everything in place.

DROP TABLE IF EXISTS hook_events;
DROP FUNCTION IF EXISTS try_cast_uuid(TEXT);

DELETE FROM schema_migrations WHERE version = 2;
