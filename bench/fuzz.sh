#!/usr/bin/env bash
# Fuzzes every decoder that takes client bytes (cargo-fuzz, libFuzzer with
# AddressSanitizer) for a number of executions per target, and prints, per
# target, executions, time, executions per second and coverage.
#
#   bench/fuzz.sh                         # 10 000 000 executions of each target
#   bench/fuzz.sh 100000 frame typed      # fewer, some targets
#   FUZZ_SANITIZER=none bench/fuzz.sh     # without AddressSanitizer (faster;
#                                         # panics, aborts, leaks of time and
#                                         # memory are still found)
#
# Targets: frame (Kafka request frames, every API version floe serves),
# record_batches (v2 batches, every codec), prefix (Confluent wire prefix),
# validate (wire plan + protovalidate), typed (typed columns, with the
# round-trip property), compile (schema text or descriptor: compilation,
# columns, validation plans). A crash leaves its input in fuzz/artifacts/<target>/;
# keep it in fuzz/regressions/<target>/ once fixed (tests/tests/
# fuzz_regressions.rs replays that folder).
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10000000}"
shift || true
targets=("$@")
((${#targets[@]})) || targets=(frame record_batches prefix validate typed compile)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
.venv/bin/python fuzz/seeds.py
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    cp -n fuzz/regressions/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
done

target_dir="${FUZZ_TARGET_DIR:-$HOME/.cache/floe-fuzz-target}"
failed=0
printf '%-16s %12s %9s %10s %8s %s\n' target executions seconds "execs/s" cov result
for t in "${targets[@]}"; do
    log="$(mktemp)"
    # No backtraces: the decoders' errors (anyhow) would capture one per
    # refused input, which is most of the fuzzer's time.
    RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 RUSTC_BOOTSTRAP=1 cargo fuzz run --release --sanitizer "${FUZZ_SANITIZER:-address}" \
        --target-dir "$target_dir" "$t" -- \
        -runs="$runs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 \
        -timeout=10 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    done_line="$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1)"
    execs="$(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1)"
    cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')"
    secs="$(echo "$done_line" | awk '{print $5}')"
    rate="-"
    [ -n "$secs" ] && [ "$secs" -gt 0 ] && rate=$((execs / secs))
    result=ok
    if [ "$rc" != 0 ]; then
        result="FAILED (exit $rc): $(grep -E 'ERROR|panicked|Test unit written' "$log" | head -3 | tr '\n' ' ')"
        failed=1
        cp "$log" "fuzz/artifacts/$t.log" 2>/dev/null || true
    fi
    printf '%-16s %12s %9s %10s %8s %s\n' "$t" "${execs:--}" "${secs:--}" "$rate" "${cov:--}" "$result"
    rm -f "$log"
done
exit "$failed"
