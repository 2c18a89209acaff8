#!/bin/sh
# Lets trendgen protect (another container) open the replication connection it streams WAL over. Runs once,
# when the postgres service initialises an empty volume; on an existing volume run it by hand:
#   docker compose -f deploy/docker-compose.yml exec postgres sh /docker-entrypoint-initdb.d/10-allow-replication.sh
#   docker compose -f deploy/docker-compose.yml exec postgres psql -U trends -c 'select pg_reload_conf()'
set -eu
hba="${PGDATA:-/var/lib/postgresql/data}/pg_hba.conf"
grep -q '^host replication all all scram-sha-256' "$hba" || echo 'host replication all all scram-sha-256' >> "$hba"
