#!/usr/bin/env bash
# The consistency checker's long run: Jepsen's queue workload against a
# real floe under faults, then the whole history checked
# (tests/e2e/queue_checker.py says what). Prints the figures as JSON, then
# PASS, or FAIL with examples (exit 1).
#
#   bench/checker.sh                      # 100 kill -9 cycles
#   bench/checker.sh --cycles 30 --ops kill9,term,store-errors,store-stalls,heal
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export FLOE_BIN="$FLOE"
exec .venv/bin/python tests/e2e/queue_checker.py "$@"
