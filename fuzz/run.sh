#!/usr/bin/env bash
# Runs every LHP/1 fuzz target for SECONDS each (default 60), one after another.
#
#   fuzz/run.sh [SECONDS] [--require] [--minimize] [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (installed here with `cargo install --locked
# cargo-fuzz` if missing). Without them it prints a SKIP line and exits 0, or 1 with
# --require. New inputs go to fuzz/work/TARGET (ignored by git); --minimize merges them into
# the checked-in fuzz/corpus/TARGET with `cargo fuzz cmin`. Exits 1 if any target crashed
# (the reproducer is in fuzz/artifacts/TARGET/). Prints per-target executions and coverage
# from libFuzzer's final stats.
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here" || exit 2

seconds=60
require=0
minimize=0
targets=()
for arg in "$@"; do
    case "$arg" in
        --require) require=1 ;;
        --minimize) minimize=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        ''|*[!0-9]*) targets+=("$arg") ;;
        *) seconds="$arg" ;;
    esac
done
[ ${#targets[@]} -eq 0 ] && targets=(decode chunked roundtrip header seed_compat)

skip() {
    echo "SKIP: fuzzing needs nightly Rust ($1)"
    [ "$require" -eq 1 ] && exit 1
    exit 0
}

command -v cargo >/dev/null 2>&1 || skip "cargo not found"
cargo +nightly --version >/dev/null 2>&1 \
    || skip "no nightly toolchain; install it with: rustup toolchain install nightly"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (cargo install --locked cargo-fuzz)..."
    cargo install --locked cargo-fuzz >/dev/null 2>&1 || skip "cargo-fuzz is missing and could not be installed"
fi

mkdir -p logs work
# -a: debug assertions (and overflow checks) on, so arithmetic slips are findings too.
if ! cargo +nightly fuzz build -a >logs/build.log 2>&1; then
    tail -n 30 logs/build.log
    echo "FAIL: the fuzz targets do not build (fuzz/logs/build.log)"
    exit 1
fi

# A single allocation over 64 MiB from an input of at most 8 KiB could only come from
# believing a declared length: libFuzzer reports it as a crash.
libfuzzer_args=(
    "-max_total_time=$seconds"
    "-dict=$here/lhp.dict"
    "-max_len=8192"
    "-timeout=10"
    "-malloc_limit_mb=64"
    "-rss_limit_mb=1024"
    "-print_final_stats=1"
)

failed=()
printf '%-12s %8s %14s %10s %8s %s\n' target seconds executions exec/s cov features
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "corpus/$t"
    log="logs/$t.log"
    start=$(date +%s)
    cargo +nightly fuzz run -a "$t" "work/$t" "corpus/$t" -- "${libfuzzer_args[@]}" >"$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    printf '%-12s %8s %14s %10s %8s %s\n' "$t" "$took" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}"
    if [ "$rc" -ne 0 ]; then
        failed+=("$t")
        grep -E 'panicked at|^SUMMARY|Test unit written|ERROR: libFuzzer' "$log" | head -n 8 | sed 's/^/    /'
        echo "    full log: fuzz/$log"
    fi
    if [ "$minimize" -eq 1 ] && [ "$rc" -eq 0 ]; then
        cp -n "work/$t"/* "corpus/$t"/ 2>/dev/null
        # Set cover and 2 KiB inputs keep the checked-in corpus small (well under 5 MB).
        cargo +nightly fuzz cmin -a "$t" "corpus/$t" -- -set_cover_merge=1 \
            "-max_len=${CMIN_MAX_LEN:-2048}" >"logs/$t.cmin.log" 2>&1 \
            || echo "    cmin failed: fuzz/logs/$t.cmin.log"
        echo "    corpus/$t: $(ls "corpus/$t" | wc -l) files, $(du -sh "corpus/$t" | cut -f1)"
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "FAIL: crashes in: ${failed[*]} (reproducers in fuzz/artifacts/)"
    exit 1
fi
echo "OK: ${#targets[@]} target(s), ${seconds}s each, no crash"
