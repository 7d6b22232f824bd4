#!/bin/bash
# Run once by the postgres image when it creates its database (docker-entrypoint-initdb.d):
# the login roles of least privilege. `debug-sink migrate grant` (the `grants` service of
# docker-compose.yml) then gives them their privileges on the migrated schema:
#   debug_sink          owns the schema; runs `migrate` only
#   debug_sink_writer   `debug-sink run`: reads and writes rows, no DDL
#   debug_sink_reader   read commands and dashboards: SELECT only
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v writer_password="$SINK_WRITER_PASSWORD" -v reader_password="$SINK_READER_PASSWORD" <<'EOSQL'
CREATE ROLE debug_sink_writer LOGIN PASSWORD :'writer_password';
CREATE ROLE debug_sink_reader LOGIN PASSWORD :'reader_password';
EOSQL
