#!/usr/bin/env bash
# Table benchmark: freshness (produce -> row visible to PyIceberg) at the
# default cadence, PyIceberg full and time-range scans, bytes on disk.
# Arguments go to bench/tables.py, e.g. `bench/tables.sh --gb 5`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --all-targets
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
target="${CARGO_TARGET_DIR:-target}"
exec .venv/bin/python bench/tables.py --floe "$(cd "$target" && pwd)/release/floe" "$@"
