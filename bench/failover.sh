#!/usr/bin/env bash
# Failover benchmark: three brokers on PostgreSQL, the leader of one topic
# after another killed with SIGKILL; prints the time until producing
# resumes (p50/p99/max) and checks every acknowledged record is read back
# once. Arguments go to bench/failover.py, e.g. `bench/failover.sh --kills 5`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
read -r url dir < <(scripts/postgres.sh start)
trap 'scripts/postgres.sh stop "$dir"' EXIT
.venv/bin/python bench/failover.py --floe "$FLOE" --postgres "$url" "$@"
