-- Migration 001: schema_migrations
--
-- The ledger of applied migrations, assumed by the user's migration 005 (defect 2).
-- `version` is the primary key because every migration records itself with
-- `ON CONFLICT (version)`. Each up file ends with its own INSERT (so `psql -1 -f FILE`
-- records it too); `debug-sink migrate` then overwrites execution_time_ms with its own
-- measurement and sets `checksum` (SHA-256 of the file), which it uses to refuse a changed
-- applied migration.
--
-- Conventions of every file in this folder: no BEGIN/COMMIT (the runner, or `psql -1`, runs
-- each file in one transaction); object names unqualified (the runner sets
-- `search_path` to the target schema, DEBUG_SINK_DB_SCHEMA, default public); every
-- function has `SET search_path FROM CURRENT`; no extensions.

CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  description TEXT NOT NULL,
  execution_time_ms INTEGER NOT NULL DEFAULT 0,
  checksum TEXT,
  applied_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp()
);

COMMENT ON TABLE schema_migrations IS
  'Applied schema migrations: one row per version, written by each migration file and by debug-sink migrate.';

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (
  1,
  'schema_migrations ledger',
  (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer
)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description,
      execution_time_ms = EXCLUDED.execution_time_ms;
