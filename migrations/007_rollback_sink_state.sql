-- Rollback of 007: the sink's state tables. No CASCADE: a user's object on them blocks this.
DROP TABLE IF EXISTS sink_snapshot_aliases;
DROP TABLE IF EXISTS sink_parked_events;
DROP TABLE IF EXISTS sink_dead_letters;
DROP TABLE IF EXISTS sink_offsets;
DELETE FROM schema_migrations WHERE version = 7;
