#!/usr/bin/env bash
# Transactions benchmark: transactional produce throughput (transactions of
# 100 and of 10 000 records) against idempotent produce, and the end-to-end
# latency of a read_committed consumer (produce in a transaction -> commit
# -> record read). Arguments go to bench/transactions.py, e.g.
# `bench/transactions.sh --runs 5 --records 50000`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
exec .venv/bin/python bench/transactions.py --floe "$FLOE" "$@"
