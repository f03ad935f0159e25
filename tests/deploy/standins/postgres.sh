#!/bin/sh
# Plays the official postgres image's entrypoint on Debian's package: on first start a cluster
# with the POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB that image documents, then the
# server in the foreground as PID 1's child-free exec, so SIGTERM reaches it.
set -eu
data=/var/lib/postgresql/data
bin=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
chown postgres:postgres "$data"
chmod 700 "$data"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$data/PG_VERSION" ]; then
    umask 077
    printf '%s\n' "$POSTGRES_PASSWORD" >/tmp/pwfile
    chown postgres /tmp/pwfile
    as_postgres "$bin/initdb" --pgdata="$data" --username="$POSTGRES_USER" --pwfile=/tmp/pwfile \
        --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f /tmp/pwfile
    echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" |
        as_postgres "$bin/postgres" --single -D "$data" postgres >/dev/null
    # Every loopback address: each service of the stack has its own.
    echo "host all all 127.0.0.0/8 scram-sha-256" >>"$data/pg_hba.conf"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$data" \
    -c listen_addresses="$PG_LISTEN" -c unix_socket_directories=/tmp
