-- Migration 009: index the waits of parked events (sink_parked_waits).
--
-- Why. After each batch the sink looks for parked events waiting for any of the ids the batch
-- wrote (~5,000). With only sink_parked_events.waiting_for (uuid[]) that lookup was
-- `waiting_for && $1::uuid[]`: the planner estimates that every row matches (the selectivity
-- of && with a 5,000-element array saturates), walks the primary key for ORDER BY id and
-- evaluates the overlap on each row, O(parked x written): docs/PERFORMANCE.md section 1, and
-- the measurements below. Its GIN index was not used (forced, it was slower still: 5.8 s
-- with a full pending list at 55,000 rows).
--
-- What.
-- sink_parked_waits   one row per (awaited parent id, parked event): the lookup becomes
--                     `parent_id = ANY($1)` on its primary key. parked_id REFERENCES
--                     sink_parked_events ON DELETE CASCADE: however a parked row goes
--                     (released, expired, dead-lettered, purged by retention, deleted by
--                     hand), its waits go with it. Indexed on parked_id for that cascade.
-- sink_parked_waits_sync()  trigger function, statement level (transition tables) on INSERT
--                     and UPDATE of sink_parked_events: the waits are derived from
--                     waiting_for, which stays the source of truth. Any writer keeps them in
--                     sync, including a sink of an older version during a rolling upgrade
--                     (it parks one row per statement; then the trigger runs per row).
--                     An UPDATE that leaves waiting_for as it was changes nothing. Written
--                     by the sink instead, the same rows would cost the same.
-- Backfill            from the rows parked before this migration, after the trigger exists:
--                     CREATE TRIGGER locks out concurrent writers until this transaction
--                     commits, so a row is either seen by the backfill or fires the trigger.
-- GIN index on waiting_for dropped: no query uses it any more (an older sink's `&&` lookup
--                     never did), and it was paid on every park.
--
-- Measured (2 shared cores, PostgreSQL 18, shared_buffers 512MB; parked rows each waiting for
-- a missing snapshot, two rows per awaited id, every 10th row for a second one; 200,000
-- snapshots, 100,000 errors and steps, 50,000 successes and transformations, 20,000 aliases
-- stored; EXPLAIN ANALYZE, 3 runs):
--                                               before (GIN, &&)   after (this migration)
--   release lookup, 5,000 ids, 5,000 matches
--     100,000 parked                            1,750-1,780 ms     10-12 ms
--     300,000 parked                            8,140-8,530 ms     18-35 ms
--   periodic release (LIMIT 5000, none ready)
--     100,000 parked                              940-1,040 ms     210-250 ms
--     300,000 parked                            4,280-4,600 ms     470-640 ms
--   parking 50,000 events (5,000 per statement) 1.55 s             2.03 s
--     (the trigger alone: 1.29 -> 1.87 s, ~11 us per event, of which ~4 us the foreign-key
--     check; dropping the GIN gives back ~5 us)
--   deleting 5,000 parked rows (a release)      25 ms              36 ms (the cascade)
-- This migration's backfill holds sink_parked_events locked: 2.4 s at 100,000 parked rows,
-- 5.0 s at 300,000 (parking sinks wait meanwhile; nothing is lost).
--
-- Names start with sink_ (not debug_) on purpose: the quickstart's checks list every
-- relation matching 'debug_%' and expect exactly the user's 5 tables and 3 views.

CREATE TABLE IF NOT EXISTS sink_parked_waits (
  parent_id UUID   NOT NULL,  -- an id listed in sink_parked_events.waiting_for
  parked_id BIGINT NOT NULL REFERENCES sink_parked_events (id) ON DELETE CASCADE,
  PRIMARY KEY (parent_id, parked_id)
);
CREATE INDEX IF NOT EXISTS idx_sink_parked_waits_parked ON sink_parked_waits (parked_id);

CREATE OR REPLACE FUNCTION sink_parked_waits_sync() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    DELETE FROM sink_parked_waits AS w
     USING new_rows AS n JOIN old_rows AS o ON o.id = n.id
     WHERE o.waiting_for IS DISTINCT FROM n.waiting_for
       AND w.parked_id = n.id
       AND w.parent_id <> ALL (array_remove(n.waiting_for, NULL));
    INSERT INTO sink_parked_waits (parent_id, parked_id)
    SELECT DISTINCT p.parent_id, n.id
      FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id,
           unnest(n.waiting_for) AS p(parent_id)
     WHERE o.waiting_for IS DISTINCT FROM n.waiting_for AND p.parent_id IS NOT NULL
    ON CONFLICT DO NOTHING;
  ELSE
    INSERT INTO sink_parked_waits (parent_id, parked_id)
    SELECT DISTINCT p.parent_id, n.id
      FROM new_rows AS n, unnest(n.waiting_for) AS p(parent_id)
     WHERE p.parent_id IS NOT NULL
    ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END
$$;

-- Two triggers: a trigger with transition tables fires for one kind of event only.
CREATE OR REPLACE TRIGGER sink_parked_waits_on_insert
  AFTER INSERT ON sink_parked_events
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION sink_parked_waits_sync();
CREATE OR REPLACE TRIGGER sink_parked_waits_on_update
  AFTER UPDATE ON sink_parked_events
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION sink_parked_waits_sync();

INSERT INTO sink_parked_waits (parent_id, parked_id)
SELECT DISTINCT p.parent_id, e.id
  FROM sink_parked_events AS e, unnest(e.waiting_for) AS p(parent_id)
 WHERE p.parent_id IS NOT NULL
ON CONFLICT DO NOTHING;

DROP INDEX IF EXISTS idx_sink_parked_events_waiting;

COMMENT ON TABLE sink_parked_waits IS
  'One row per (awaited parent id, parked event), kept equal to sink_parked_events.waiting_for by triggers; the index of the release lookup.';

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (9, 'parked events: index their waits (sink_parked_waits), drop the GIN on waiting_for',
        (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description, execution_time_ms = EXCLUDED.execution_time_ms;
