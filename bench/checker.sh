#!/usr/bin/env bash
# The consistency checker's long run: Jepsen's queue workload against a
# real floe under faults, then the whole history checked
# (tests/e2e/queue_checker.py says what). Prints the figures as JSON, then
# PASS, or FAIL with examples (exit 1).
#
#   bench/checker.sh                      # 100 kill -9 cycles
#   bench/checker.sh --cycles 30 --ops kill9,term,store-errors,store-stalls,heal
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --all-targets
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
target="${CARGO_TARGET_DIR:-target}"
export FLOE_BIN="$(cd "$target" && pwd)/release/floe"
exec .venv/bin/python tests/e2e/queue_checker.py "$@"
