-- Rollback of migration 003. No CASCADE: anything still depending on the table (a user's
-- view, or migration 005's foreign keys if 005 is still applied) makes this fail loudly.

DROP TABLE IF EXISTS agent_transformation_events;

DELETE FROM schema_migrations WHERE version = 3;
