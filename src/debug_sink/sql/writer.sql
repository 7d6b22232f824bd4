-- Fixed statements of the batch transaction (debug_sink.sink.writer). The per-kind staging
-- and upsert statements are generated from the column lists (debug_sink.sink.tables).

-- name: defer_constraints
SET CONSTRAINTS ALL DEFERRED

-- name: check_then_defer_constraints
-- Check the deferred foreign keys of the events just written now, then defer them again, in
-- one round trip: a violation is raised for those events (inside their savepoint, or failing
-- a batch written in one go). If the check fails the second statement does not run, and the
-- savepoint's rollback restores the deferral.
SET CONSTRAINTS ALL IMMEDIATE;
SET CONSTRAINTS ALL DEFERRED

-- name: store_aliases
INSERT INTO sink_snapshot_aliases (alias_id, snapshot_id)
SELECT * FROM unnest($1::uuid[], $2::uuid[])
    ON CONFLICT (alias_id) DO NOTHING
