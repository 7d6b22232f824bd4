-- Rollback of migration 015: the per-operation success counts (the correlator no longer
-- treats an untyped success of a recovering operation as a recovery).

DROP TABLE IF EXISTS correlator_operations;
DELETE FROM schema_migrations WHERE version = 15;
