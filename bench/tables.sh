#!/usr/bin/env bash
# Table benchmark: freshness (produce -> row visible to PyIceberg) at the
# default cadence, PyIceberg full and time-range scans, bytes on disk.
# Arguments go to bench/tables.py, e.g. `bench/tables.sh --gb 5`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
exec .venv/bin/python bench/tables.py --floe "$FLOE" "$@"
