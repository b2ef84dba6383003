#!/bin/sh
# Runs once, when the postgres service starts on an empty postgres-data volume (the image runs
# /docker-entrypoint-initdb.d/*.sh as the postgres superuser). Creates:
#   sluice          owns the database sluice; sluice creates and migrates its tables itself
#                   (query_log.store in config/sluice.yaml, password SLUICE_QUERYLOG_PASSWORD)
#   sluice_grafana  read-only: SELECT on every table sluice creates, nothing else (Grafana's data
#                   source, password GRAFANA_POSTGRES_PASSWORD); docs/grafana/README.md has the
#                   narrower grants for a production database
# The passwords are passed to psql as variables and quoted by it (:'name'), never pasted into SQL.
set -eu
: "${SLUICE_QUERYLOG_PASSWORD:?}" "${GRAFANA_POSTGRES_PASSWORD:?}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v sluice_password="$SLUICE_QUERYLOG_PASSWORD" \
  -v grafana_password="$GRAFANA_POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE sluice LOGIN PASSWORD :'sluice_password';
CREATE ROLE sluice_grafana LOGIN PASSWORD :'grafana_password';
-- A dashboard query that runs away is cancelled instead of loading the database for good.
ALTER ROLE sluice_grafana SET statement_timeout = '60s';
ALTER ROLE sluice_grafana SET default_transaction_read_only = on;
CREATE DATABASE sluice OWNER sluice;
REVOKE ALL ON DATABASE sluice FROM PUBLIC;
GRANT CONNECT ON DATABASE sluice TO sluice_grafana;

\connect sluice
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO sluice_grafana;
-- Tables (and views, and each day's new partition) that sluice creates later are readable by Grafana.
ALTER DEFAULT PRIVILEGES FOR ROLE sluice IN SCHEMA public GRANT SELECT ON TABLES TO sluice_grafana;
SQL
