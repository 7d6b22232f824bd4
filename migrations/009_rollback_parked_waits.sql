-- Rollback of 009: the waits table and its triggers go, the GIN index on waiting_for (as 007
-- defined it) comes back. No CASCADE: a user's object on them blocks this. waiting_for was
-- kept up to date throughout, so the parked events lose nothing.
DROP TRIGGER IF EXISTS sink_parked_waits_on_update ON sink_parked_events;
DROP TRIGGER IF EXISTS sink_parked_waits_on_insert ON sink_parked_events;
DROP FUNCTION IF EXISTS sink_parked_waits_sync();
DROP TABLE IF EXISTS sink_parked_waits;
CREATE INDEX IF NOT EXISTS idx_sink_parked_events_waiting ON sink_parked_events USING GIN (waiting_for);
DELETE FROM schema_migrations WHERE version = 9;
