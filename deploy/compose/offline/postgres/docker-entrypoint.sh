#!/bin/sh
# The official postgres image's contract, for the settings compose.yaml uses:
# on first start (no PG_VERSION in PGDATA) make a cluster whose superuser is
# POSTGRES_USER (default postgres) with POSTGRES_PASSWORD (required), owning
# a database POSTGRES_DB (default: the user's name), reachable over TCP with
# a password (scram-sha-256); later starts reuse the cluster as it is. Runs
# PostgreSQL as the postgres user, as PID 1 (SIGINT: fast shutdown).
set -eu

if [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"   # `command: [-c, ...]` passes options to postgres
fi
if [ "$1" != postgres ]; then
    exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
    # A fresh named volume belongs to root: hand it (and the socket directory) over.
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (the superuser's password)}"
    user="${POSTGRES_USER:-postgres}"
    database="${POSTGRES_DB:-$user}"
    password_file="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$password_file"
    initdb --username="$user" --pwfile="$password_file" --encoding=UTF8 \
        --auth-local=trust --auth-host=scram-sha-256
    rm -f "$password_file"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    if [ "$database" != postgres ]; then
        # On the socket only, so nothing connects before the database exists.
        pg_ctl --wait --options="-c listen_addresses=''" start
        createdb --username="$user" --owner="$user" -- "$database"
        pg_ctl --wait --mode=fast stop
    fi
fi
exec "$@"
