-- Fixed statements of the batch transaction (debug_sink.sink.writer). The per-kind staging
-- and upsert statements are generated from the column lists (debug_sink.sink.tables).

-- name: defer_constraints
SET CONSTRAINTS ALL DEFERRED

-- name: check_constraints
-- Check the deferred foreign keys now, inside the current savepoint, so that a violation is
-- attributed to the events of that savepoint; defer_constraints follows it.
SET CONSTRAINTS ALL IMMEDIATE

-- name: check_then_defer_constraints
-- The deferred foreign keys checked now, then deferred again, in one round trip (the batch
-- written in one go, without a savepoint: a violation fails the transaction).
SET CONSTRAINTS ALL IMMEDIATE;
SET CONSTRAINTS ALL DEFERRED

-- name: store_aliases
INSERT INTO sink_snapshot_aliases (alias_id, snapshot_id)
SELECT * FROM unnest($1::uuid[], $2::uuid[])
    ON CONFLICT (alias_id) DO NOTHING
