#!/bin/sh
# What the official postgres image's entry point does on a first start, for the env the chart
# sets: a cluster in $PGDATA owned by $POSTGRES_USER with $POSTGRES_PASSWORD (scram-sha-256 over
# TCP from anywhere), the database $POSTGRES_DB, then /docker-entrypoint-initdb.d/*.sql in it.
set -eu
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?the stand-in, like the official image, needs POSTGRES_PASSWORD}"
    user="${POSTGRES_USER:-postgres}"
    mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
    password="$(mktemp)" && printf '%s' "$POSTGRES_PASSWORD" > "$password"
    initdb --username="$user" --pwfile="$password" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 -D "$PGDATA" >/dev/null
    rm -f "$password"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    psql -v ON_ERROR_STOP=1 -q -U "$user" -d postgres -c "CREATE DATABASE \"${POSTGRES_DB:-$user}\""
    for script in /docker-entrypoint-initdb.d/*.sql; do
        [ -e "$script" ] && psql -v ON_ERROR_STOP=1 -q -U "$user" -d "${POSTGRES_DB:-$user}" -f "$script"
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "stand-in: database cluster initialised"
fi
exec "$@"
