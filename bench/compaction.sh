#!/usr/bin/env bash
# Key compaction benchmark: a compacted topic of 1 000 keys x 100 updates
# of unique random values, compacted on request; prints MB/s rewritten and
# the size reduction. Arguments go to bench/compaction.py, e.g.
# `bench/compaction.sh --runs 5 --value-bytes 2048`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
exec .venv/bin/python bench/compaction.py --floe "$FLOE" "$@"
