#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests (Debian's packages):
#
#   scripts/postgres.sh start       initdb in a new directory under /tmp,
#                                   start on a free loopback port, print
#                                   "<superuser URL> <directory>"
#   scripts/postgres.sh stop DIR    stop it and remove its directory
#   scripts/postgres.sh crash DIR   stop it as a crash would (immediate
#                                   shutdown), keeping its data
#   scripts/postgres.sh resume DIR  start it again on the same port
#
# Run as root, the server runs as the `postgres` user (initdb refuses root).
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }

as_server_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Starts the server of directory $1 on the port recorded there.
serve() {
    as_server_user "$bin/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $(cat "$1/port") -k $1 -c fsync=off -c max_connections=400" start >/dev/null \
        || { cat "$1/server.log" >&2; exit 1; }
}

# The directory argument, if it is one that `start` made.
ours() {
    case "$1" in /tmp/floe-postgres.*) echo "$1" ;; *) echo "not a directory of ours: $1" >&2; exit 2 ;; esac
}

cmd=${1:?start, stop, crash or resume}
case "$cmd" in
start)
    # Its own directory, readable by the server's user whoever runs this.
    dir=$(mktemp -d /tmp/floe-postgres.XXXXXX)
    chmod 755 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    user=$([ "$(id -u)" = 0 ] && echo postgres || id -un)
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_server_user "$bin/initdb" -D "$dir/data" -U "$user" --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    serve "$dir"
    echo "postgres://$user@127.0.0.1:$port/postgres $dir"
    ;;
crash)
    dir=$(ours "${2:-}")
    as_server_user "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
    ;;
resume)
    dir=$(ours "${2:-}")
    serve "$dir"
    ;;
stop)
    dir=$(ours "${2:-}")
    [ -d "$dir/data" ] && as_server_user "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start | stop DIR | crash DIR | resume DIR" >&2
    exit 2
    ;;
esac
