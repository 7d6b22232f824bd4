-- Rollback of migration 018: the primary keys on the raw names again. Refused (the whole
-- rollback, by PostgreSQL's "index row size exceeds" error) while the aggregate holds a kind
-- whose names are too long for them: the schema before 018 cannot hold it.

DROP INDEX IF EXISTS known_fix_stats_kind;
ALTER TABLE known_fix_stats
  ADD PRIMARY KEY (error_type, agent_name, operation_name, recovery_strategy);

DROP INDEX IF EXISTS known_fix_occurrences_kind;
ALTER TABLE known_fix_occurrences ADD PRIMARY KEY (error_type, agent_name, operation_name);

DELETE FROM schema_migrations WHERE version = 18;
