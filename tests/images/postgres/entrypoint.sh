#!/usr/bin/env bash
# Entrypoint of the local PostgreSQL test image: on first start create the cluster in $PGDATA
# with POSTGRES_USER / POSTGRES_DB and the password from POSTGRES_PASSWORD_FILE (or
# POSTGRES_PASSWORD), then run the server listening on all addresses of the container with
# scram-sha-256 authentication. Started as root it runs as the postgres user; started as any
# other uid (compose `user:`) it runs as that uid, which must own (or be able to create) PGDATA.
set -euo pipefail

if [ "$(id -u)" = "0" ]; then
    mkdir -p "$PGDATA"
    chown -R postgres:postgres "$PGDATA"
    chmod 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "${1:-}" != "postgres" ]; then
    exec "$@"
fi

POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    chmod 0700 "$PGDATA"
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        password="$(cat "$POSTGRES_PASSWORD_FILE")"
    else
        password="${POSTGRES_PASSWORD:-}"
    fi
    if [ -z "$password" ]; then
        echo "postgres-entrypoint: set POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD) for the first start" >&2
        exit 1
    fi
    pwfile="$(mktemp)"
    printf '%s\n' "$password" > "$pwfile"
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
    rm -f "$pwfile"
    unset password
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /var/run/postgresql" -w -t 60 start >/dev/null
    if [ "$POSTGRES_DB" != "postgres" ]; then
        psql -v ON_ERROR_STOP=1 -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres \
            -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
    fi
    pg_ctl -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
    echo "postgres-entrypoint: created database $POSTGRES_DB owned by $POSTGRES_USER"
fi

shift
exec postgres -D "$PGDATA" -c listen_addresses='*' -k /var/run/postgresql "$@"
