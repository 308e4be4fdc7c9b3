#!/usr/bin/env bash
# Builds floe and the benchmark, then runs it. Arguments go to floe-bench
# (see `--help`), e.g. `bench/run.sh --records 200000 --payload text`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --all-targets
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/floe-bench" "$@"
