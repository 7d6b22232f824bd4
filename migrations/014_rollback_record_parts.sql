-- Rollback of 014: parked events and dead letters unique per (topic, partition, offset) again.
--
-- Refused while a row with part > 0 exists: such a row is the second or later event of a
-- record (an OTLP span), and the old key cannot hold it next to its siblings. A parked one is
-- an event still to be written: dropping it would lose it. Let the sink release the parked
-- rows first (they are written when their parents land, or after the grace period); dead
-- letters of OTLP records can be exported (`debug-sink dead-letters list`) and deleted by the
-- operator, who decides what to keep.
DO $$
DECLARE
  v_parked BIGINT;
  v_letters BIGINT;
BEGIN
  SELECT count(*) INTO v_parked FROM sink_parked_events WHERE part > 0;
  SELECT count(*) INTO v_letters FROM sink_dead_letters WHERE part > 0;
  IF v_parked > 0 OR v_letters > 0 THEN
    RAISE EXCEPTION 'cannot roll back migration 14: % parked event(s) and % dead letter(s) are later parts of multi-event records (part > 0)', v_parked, v_letters
      USING HINT = 'let the sink release the parked events, then delete or export those dead letters';
  END IF;
END
$$;

ALTER TABLE sink_dead_letters DROP CONSTRAINT IF EXISTS sink_dead_letters_origin_unique;
ALTER TABLE sink_dead_letters DROP COLUMN IF EXISTS part;
ALTER TABLE sink_dead_letters
  ADD CONSTRAINT sink_dead_letters_origin_unique UNIQUE (topic, partition, "offset");

ALTER TABLE sink_parked_events DROP CONSTRAINT IF EXISTS sink_parked_events_origin_unique;
ALTER TABLE sink_parked_events DROP COLUMN IF EXISTS part;
ALTER TABLE sink_parked_events
  ADD CONSTRAINT sink_parked_events_origin_unique UNIQUE (topic, partition, "offset");

DELETE FROM schema_migrations WHERE version = 14;
