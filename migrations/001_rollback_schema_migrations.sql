-- Rollback of migration 001: drops the migrations ledger itself.
-- No CASCADE: a user's object depending on it makes this fail loudly.

DROP TABLE IF EXISTS schema_migrations;
