#!/usr/bin/env bash
# Produce and fetch throughput over SASL_SSL (SCRAM-SHA-512, TLS), and with
# --acls and 10 000 ACLs, against
# PLAINTEXT on one broker (bench/security.py). Arguments go to
# bench/security.py, e.g. `bench/security.sh --records 500000 --runs 5`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
exec .venv/bin/python bench/security.py --floe "$FLOE" "$@"
