#!/usr/bin/env bash
# Garage (https://garagehq.deuxfleurs.fr), an S3-compatible object store
# people run in production, for the tests and for trying floe on S3:
#
#   scripts/garage.sh install       build Garage from crates.io once (about
#                                   10 minutes on 2 cores) into
#                                   $FLOE_TOOLS (default ~/.cache/floe-tools);
#                                   print the binary's path
#   scripts/garage.sh start [BUCKET]
#                                   a single-node server in a new directory
#                                   under /tmp on free loopback ports, with
#                                   an access key and BUCKET (default lake);
#                                   print "<endpoint> <directory>"
#   scripts/garage.sh stop DIR      stop it and remove its directory
#
# The server speaks path-style S3 in region us-east-1 with the access key
# below; point floe (or any S3 client) at it with:
#
#   export AWS_ENDPOINT_URL=<endpoint> AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
#          AWS_ACCESS_KEY_ID=GK0000000000000000000f10e0 \
#          AWS_SECRET_ACCESS_KEY=0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10
set -euo pipefail

VERSION=2.5.0
KEY_ID=GK0000000000000000000f10e0
SECRET=0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10
tools=${FLOE_TOOLS:-$HOME/.cache/floe-tools}
bin=$tools/garage-$VERSION/bin/garage

install() {
    if [ ! -x "$bin" ]; then
        echo "==> building Garage $VERSION from crates.io (once; about 10 minutes)" >&2
        local build
        build=$(mktemp -d /tmp/floe-garage-build.XXXXXX)
        # Only the LMDB metadata engine: no metrics, no K2V, less to build.
        cargo install garage --version "$VERSION" --locked --quiet \
            --no-default-features --features bundled-libs,lmdb \
            --target-dir "$build" --root "$tools/garage-$VERSION" >&2 \
            || { rm -rf "$build"; exit 1; }
        rm -rf "$build"
    fi
    echo "$bin"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cmd=${1:?install, start or stop}
case "$cmd" in
install)
    install
    ;;
start)
    bucket=${2:-lake}
    [ -x "$bin" ] || { echo "Garage is not installed: run $0 install" >&2; exit 1; }
    dir=$(mktemp -d /tmp/floe-garage.XXXXXX)
    s3_port=$(free_port)
    rpc_port=$(free_port)
    cat >"$dir/garage.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$s3_port"
EOF
    GARAGE_DEFAULT_ACCESS_KEY=$KEY_ID GARAGE_DEFAULT_SECRET_KEY=$SECRET GARAGE_DEFAULT_BUCKET=$bucket \
        RUST_LOG=warn setsid "$bin" -c "$dir/garage.toml" server --single-node --default-bucket \
        >"$dir/server.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
    # Ready once the S3 API answers (with its bucket and key made before).
    for _ in $(seq 1 300); do
        if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
            cat "$dir/server.log" >&2
            rm -rf "$dir"
            exit 1
        fi
        if curl -s -o /dev/null "http://127.0.0.1:$s3_port/"; then
            echo "http://127.0.0.1:$s3_port $dir"
            exit 0
        fi
        sleep 0.1
    done
    echo "Garage did not start within 30 s:" >&2
    cat "$dir/server.log" >&2
    kill -9 "$(cat "$dir/pid")" 2>/dev/null || true
    rm -rf "$dir"
    exit 1
    ;;
stop)
    dir=${2:?the directory start printed}
    case "$dir" in /tmp/floe-garage.*) ;; *) echo "not a directory of ours: $dir" >&2; exit 2 ;; esac
    if [ -f "$dir/pid" ]; then
        kill -9 "$(cat "$dir/pid")" 2>/dev/null || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 install | start [BUCKET] | stop DIR" >&2
    exit 2
    ;;
esac
