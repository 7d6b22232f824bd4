-- Least privilege (debug_sink.db.grants). Run by the schema owner after `migrate up`; the
-- identifiers in braces are quoted by the caller. Default privileges make the grants cover
-- what later migrations (run by the same owner) create.

-- name: writer
-- `debug-sink run` (and the correlator and retention it schedules): read and write rows,
-- nothing else -- no DDL, no TRUNCATE of real tables, no ownership. TEMPORARY: the staging
-- tables of COPY and the correlator's work tables are session temp tables.
GRANT USAGE ON SCHEMA {schema} TO {role};
GRANT TEMPORARY ON DATABASE {database} TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};
REVOKE INSERT, UPDATE, DELETE ON {schema}.schema_migrations FROM {role};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role};
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {role};
ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role};
ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {role};
ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT EXECUTE ON FUNCTIONS TO {role}

-- name: reader
-- The read side (show, workflows, errors, patterns, known-fixes, dead-letters list, the web
-- view): SELECT and the read functions; writing fails with "permission denied".
GRANT USAGE ON SCHEMA {schema} TO {role};
GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role};
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {role};
ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {role};
ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT EXECUTE ON FUNCTIONS TO {role}

-- name: create_role
-- With --create-roles: a group role without LOGIN (operators add members that log in).
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {role_literal}) THEN
    CREATE ROLE {role} NOLOGIN;
  END IF;
END $$
