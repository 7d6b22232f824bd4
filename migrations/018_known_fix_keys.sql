-- Migration 018: the known-fixes aggregate holds every kind the wire format accepts.
--
-- known_fix_occurrences and known_fix_stats were keyed by a primary key on the raw names
-- (error_type, agent_name, operation_name[, recovery_strategy]). The wire format accepts 255
-- characters for each name, and a character can take 4 bytes in UTF-8: a key of up to 3,060
-- (occurrences) or 3,460 bytes (stats), over the 2,704 bytes a B-tree entry may take. The
-- first error of such a kind failed the correlator's run, and every run after it (the error
-- stays new until a run commits): no workflow of anyone was correlated any more.
--
-- The unique key is now the error type as it is (at most 1,020 bytes: it is what
-- known_fixes() looks up, a range of this index as it was of the primary key), the MD5 of the
-- agent and operation names, and (stats) the strategy as it is (VARCHAR(100): 400 bytes).
-- Two names of one error type with the same MD5 would share a row; names are never merged
-- otherwise. The correlator's upserts name this index (ON CONFLICT on its expressions).

ALTER TABLE known_fix_occurrences DROP CONSTRAINT IF EXISTS known_fix_occurrences_pkey;
CREATE UNIQUE INDEX IF NOT EXISTS known_fix_occurrences_kind
  ON known_fix_occurrences (error_type, (md5(agent_name)), (md5(operation_name)));

ALTER TABLE known_fix_stats DROP CONSTRAINT IF EXISTS known_fix_stats_pkey;
CREATE UNIQUE INDEX IF NOT EXISTS known_fix_stats_kind
  ON known_fix_stats (error_type, (md5(agent_name)), (md5(operation_name)), recovery_strategy);

INSERT INTO schema_migrations (version, description, execution_time_ms)
VALUES (18, 'known_fix_occurrences and known_fix_stats keyed so that any name the wire accepts fits an index entry',
        (EXTRACT(EPOCH FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer)
ON CONFLICT (version) DO UPDATE
  SET description = EXCLUDED.description, execution_time_ms = EXCLUDED.execution_time_ms;
