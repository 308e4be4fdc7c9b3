#!/usr/bin/env bash
# Throughput of three brokers against one (bench/cluster.py), on a
# PostgreSQL server started here and a local-directory object store, or
# Garage with --s3. Arguments go to bench/cluster.py, e.g.
# `bench/cluster.sh --records 100000 --runs 5`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
read -r url dir < <(scripts/postgres.sh start)
cleanup="scripts/postgres.sh stop $dir"
if [[ " $* " == *" --s3 "* ]]; then
    scripts/garage.sh install >/dev/null
    read -r endpoint gdir < <(scripts/garage.sh start lake)
    cleanup="$cleanup; scripts/garage.sh stop $gdir"
    export AWS_ENDPOINT_URL=$endpoint AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
        AWS_ACCESS_KEY_ID=GK0000000000000000000f10e0 \
        AWS_SECRET_ACCESS_KEY=0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10e0f10
fi
trap "$cleanup" EXIT
.venv/bin/python bench/cluster.py --floe "$FLOE" --postgres "$url" "$@"
