#!/usr/bin/env bash
# Produce and fetch throughput over SASL_SSL (SCRAM-SHA-512, TLS) against
# PLAINTEXT on one broker (bench/security.py). Arguments go to
# bench/security.py, e.g. `bench/security.sh --records 500000 --runs 5`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --all-targets
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
target="${CARGO_TARGET_DIR:-target}"
exec .venv/bin/python bench/security.py --floe "$(cd "$target" && pwd)/release/floe" "$@"
