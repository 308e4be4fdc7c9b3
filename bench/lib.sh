# Sourced by the benchmark scripts: from the repository root, builds as the
# test command does (so a test run's artifacts are reused), makes the
# Python environment of the tests, and sets FLOE to the built binary's
# absolute path.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --workspace --all-targets
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
FLOE="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/floe"
