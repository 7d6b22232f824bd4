-- Fixed statements of the batch transaction (debug_sink.sink.writer). The per-kind staging
-- and upsert statements are generated from the column lists (debug_sink.sink.tables).

-- name: defer_constraints
SET CONSTRAINTS ALL DEFERRED

-- name: check_constraints
-- Check the deferred foreign keys now, inside the current savepoint, so that a violation is
-- attributed to the events of that savepoint; defer_constraints follows it.
SET CONSTRAINTS ALL IMMEDIATE

-- name: aliases_of
-- Known snapshot aliases among the ids $1 (a duplicate snapshot's id -> the kept one).
SELECT alias_id, snapshot_id FROM sink_snapshot_aliases WHERE alias_id = ANY ($1::uuid[])

-- name: snapshots_by_key
-- Stored snapshots of the (correlation_id, state_hash) keys $1/$2: the dedupe lookup.
SELECT s.correlation_id, s.state_hash, s.id
  FROM unnest($1::uuid[], $2::text[]) AS k(correlation_id, state_hash)
  JOIN debug_state_snapshots s USING (correlation_id, state_hash)

-- name: store_aliases
INSERT INTO sink_snapshot_aliases (alias_id, snapshot_id)
SELECT * FROM unnest($1::uuid[], $2::uuid[])
    ON CONFLICT (alias_id) DO NOTHING
