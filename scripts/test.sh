#!/usr/bin/env bash
# Installs what the tests need, builds floe, and runs the whole suite:
# Rust unit and integration tests, then the end-to-end tests that drive the
# real binary with real Kafka clients (confluent-kafka, kafka-python, kcat).
#
# Needs: a Debian machine with Rust installed. Run as root or with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: kcat (a client under test), cmake (builds the vendored
# librdkafka used by the Rust tests and the benchmark; its build wants
# curl headers: libcurl4-openssl-dev), protobuf-compiler
# (protoc, for crates that compile .proto files), postgresql (the
# metadata store of several brokers; a throwaway server runs the tests),
# openssl (the TLS tests make their certificates with it).
missing=()
for pkg in kcat cmake pkg-config protobuf-compiler libcurl4-openssl-dev python3-venv postgresql openssl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    sudo_cmd=""
    [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
    echo "==> installing Debian packages: ${missing[*]}"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# An S3-compatible server (s3rver, from npm) for the s3:// object store tests.
if ! command -v npm >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -x tests/.s3rver/node_modules/.bin/s3rver ]; then
    npm install --silent --no-audit --no-fund --prefix tests/.s3rver s3rver@3.7.1 >/dev/null
fi
export FLOE_S3RVER="$(pwd)/tests/.s3rver/node_modules/.bin/s3rver"

# Garage, the S3 store the cluster tests run on (built from crates.io
# once, kept outside the clone).
scripts/garage.sh install >/dev/null

# Python clients in a virtual environment.
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt

# A PostgreSQL server for the whole run (a database per test), stopped
# whatever happens; FLOE_TEST_REQUIRE_SERVERS makes a test that finds no
# server fail instead of skipping its PostgreSQL half.
read -r pg_url pg_dir < <(scripts/postgres.sh start) || true
[ -n "${pg_dir:-}" ] || { echo "the test PostgreSQL server did not start" >&2; exit 1; }
trap 'scripts/postgres.sh stop "$pg_dir"' EXIT
export FLOE_TEST_POSTGRES="$pg_url" FLOE_TEST_REQUIRE_SERVERS=1

# One cargo profile for everything: release, so tests and binary share artifacts.
echo "==> cargo build --release"
cargo build --release --workspace --all-targets
echo "==> cargo test --release"
cargo test --release --workspace

target="${CARGO_TARGET_DIR:-target}"
export FLOE_BIN="$(cd "$target" && pwd)/release/floe"
echo "==> end-to-end tests against $FLOE_BIN"
set +e
.venv/bin/python -m pytest tests/e2e -p no:cacheprovider -q -rfE "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$rc"
