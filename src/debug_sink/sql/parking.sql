-- Events parked until a referenced parent arrives (debug_sink.sink.parking). Only
-- debug_sink.sink.parking runs these. sink_parked_waits (migration 009, kept by triggers)
-- indexes which parent ids each parked event waits for.

-- name: park
-- Park fresh events in one statement (the waits trigger then runs once per batch, not once
-- per event). waiting_for travels as comma-separated uuids: one text per row, since the
-- arrays of a batch differ in length. $10 = when they stop waiting. part: the event's index
-- within its record (migration 014; 0 unless a record carries several events).
INSERT INTO sink_parked_events (kind, event_id, correlation_id, event, waiting_for,
                                expires_at, topic, partition, "offset", part)
SELECT u.kind, u.event_id, u.correlation_id, u.event,
       string_to_array(u.waiting_for, ',')::uuid[], $10, u.topic, u.partition, u.o, u.part
  FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::jsonb[], $5::text[], $6::text[],
              $7::int[], $8::bigint[], $9::int[])
       AS u(kind, event_id, correlation_id, event, waiting_for, topic, partition, o, part)
    ON CONFLICT (topic, partition, "offset", part) DO NOTHING

-- name: repark
-- Parked events planned again and still missing a parent: what they wait for now.
UPDATE sink_parked_events p
   SET waiting_for = string_to_array(u.waiting_for, ',')::uuid[]
  FROM unnest($1::bigint[], $2::text[]) AS u(id, waiting_for)
 WHERE p.id = u.id

-- name: waiting_for_written
-- Parked events waiting for any of the ids $1 (written by this transaction), through the
-- index of sink_parked_waits. `id = ANY (ARRAY(...))` rather than `IN`: the planner then looks
-- each id up in the primary key (in id order, for ORDER BY) instead of walking the whole key
-- to merge-join with the matches -- O(matches), not O(parked). At most $2 (the rest, their
-- parent stored, are the periodic release's): a parent awaited by 100,000 parked events
-- must not load them all into one batch's transaction.
SELECT p.id, p.kind, p.event, p.topic, p.partition, p."offset", p.part
  FROM sink_parked_events p
 WHERE p.id = ANY (ARRAY(SELECT w.parked_id FROM sink_parked_waits w
                          WHERE w.parent_id = ANY ($1::uuid[])))
 ORDER BY p.id
 LIMIT $2
   FOR UPDATE OF p SKIP LOCKED

-- name: expired
-- Parked events past their grace period, at most $1: the first to expire, through their
-- index (LIMIT stops it: O($1), however many are parked), then in parking order (id), as
-- a batch is planned. statement_timestamp(): a volatile clock_timestamp() cannot be an index
-- condition.
SELECT x.* FROM (
  SELECT p.id, p.kind, p.event, p.topic, p.partition, p."offset", p.part
    FROM sink_parked_events p
   WHERE p.expires_at <= statement_timestamp()
   ORDER BY p.expires_at
   LIMIT $1
     FOR UPDATE OF p SKIP LOCKED
) AS x
 ORDER BY x.id

-- name: ready
-- Parked events still in their grace period with at least one awaited parent now stored
-- (written by another replica, or aliased), at most $1; the rest keep waiting without
-- being re-planned. Each awaited id is looked up once, however many events wait for it, in
-- index order (locality in the parents' primary keys): a scan of every awaited id, so the
-- release runs it only when the expired events leave room (parking.releasable).
-- Ids are per kind: an awaited id counts only where stored as the kind the event awaits --
-- the kind of the reference field holding it (each field names one kind), or a snapshot for
-- a parked snapshot (a duplicate waits for its original, in no field). Else an event whose
-- reference is the id of a row of another kind would be planned and parked again on every
-- run, and could fill the limit ahead of the events that are ready.
WITH present AS (
  SELECT a.parent_id
    FROM (SELECT DISTINCT parent_id FROM sink_parked_waits) AS a
   WHERE EXISTS (SELECT 1 FROM debug_state_snapshots t WHERE t.id = a.parent_id)
      OR EXISTS (SELECT 1 FROM debug_error_events t WHERE t.id = a.parent_id)
      OR EXISTS (SELECT 1 FROM debug_success_events t WHERE t.id = a.parent_id)
      OR EXISTS (SELECT 1 FROM debug_workflow_steps t WHERE t.id = a.parent_id)
      OR EXISTS (SELECT 1 FROM agent_transformation_events t WHERE t.id = a.parent_id)
      OR EXISTS (SELECT 1 FROM sink_snapshot_aliases t WHERE t.alias_id = a.parent_id)
), ready AS (
  SELECT w.parked_id
    FROM present JOIN sink_parked_waits w USING (parent_id)
         JOIN sink_parked_events e ON e.id = w.parked_id
         CROSS JOIN LATERAL (SELECT w.parent_id::text AS id) AS x
   WHERE ((x.id IN (e.event->>'state_snapshot_id', e.event->>'pre_state_snapshot_id',
                    e.event->>'post_state_snapshot_id', e.event->>'parent_snapshot_id')
           OR (e.kind = 'snapshot' AND x.id IS DISTINCT FROM e.event->>'transformation_event_id'))
          AND (EXISTS (SELECT 1 FROM debug_state_snapshots t WHERE t.id = w.parent_id)
               OR EXISTS (SELECT 1 FROM sink_snapshot_aliases t WHERE t.alias_id = w.parent_id)))
      OR (x.id = e.event->>'error_event_id'
          AND EXISTS (SELECT 1 FROM debug_error_events t WHERE t.id = w.parent_id))
      OR (x.id = e.event->>'success_event_id'
          AND EXISTS (SELECT 1 FROM debug_success_events t WHERE t.id = w.parent_id))
      OR (x.id = e.event->>'parent_step_id'
          AND EXISTS (SELECT 1 FROM debug_workflow_steps t WHERE t.id = w.parent_id))
      OR (x.id = e.event->>'transformation_event_id'
          AND EXISTS (SELECT 1 FROM agent_transformation_events t WHERE t.id = w.parent_id))
)
SELECT p.id, p.kind, p.event, p.topic, p.partition, p."offset", p.part
  FROM sink_parked_events p
 WHERE p.id = ANY (ARRAY(SELECT parked_id FROM ready))
   AND p.expires_at > statement_timestamp()
 ORDER BY p.id
 LIMIT $1
   FOR UPDATE OF p SKIP LOCKED

-- name: delete
-- Parked rows $1 that were written, aliased or dead-lettered in this transaction.
DELETE FROM sink_parked_events WHERE id = ANY ($1::bigint[])

-- name: count
SELECT count(*) FROM sink_parked_events

-- name: expire_all
-- Dev mode: the parents were in a log that is gone; waiting longer cannot help.
UPDATE sink_parked_events SET expires_at = clock_timestamp()
 WHERE expires_at > clock_timestamp()
