#!/usr/bin/env bash
# Metadata-store transactions per second at saturation, SQLite against
# PostgreSQL (a server started here): `floe-bench --metadata`. Arguments go
# to floe-bench, e.g. `bench/metadata.sh --metadata-clients 1,8,32`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --all-targets
target="${CARGO_TARGET_DIR:-target}"
read -r url dir < <(scripts/postgres.sh start)
trap 'scripts/postgres.sh stop "$dir"' EXIT
psql "$url" -XAtqc "CREATE DATABASE floe_bench_metadata"
"$target/release/floe-bench" --metadata --metadata-postgres "${url%/*}/floe_bench_metadata" "$@"
