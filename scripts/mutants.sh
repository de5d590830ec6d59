#!/usr/bin/env bash
# Mutation testing of lhp-codec with cargo-mutants (issue 18; results in docs/testing.md).
#
# Not part of .ci/run: a whole run takes hours on two cores. Usage:
#
#   scripts/mutants.sh [-m MODULE] [-s K/N] [-j JOBS] [-t SECS] [-r REGEX] [-T TESTS] [-b SECS]
#                      [-n NAME] [-l]
#
#   -m MODULE  a file under crates/lhp-codec/src, e.g. decoder.rs, conn/mod.rs, or `conn/*`,
#              or `all` (the default: every module)
#   -s K/N     run only shard K of N (cargo-mutants --shard; K counts from 0)
#   -j JOBS    parallel mutants (default 1; each job is a whole build tree)
#   -t SECS    test timeout per mutant (default 120; the baseline takes about 15 s)
#   -r REGEX   only mutants whose name matches (cargo-mutants --re), e.g. to rerun the ones
#              a new test is meant to kill
#   -b SECS    build timeout per mutant (default 180; a mutant's build takes seconds, but one
#              that turns a const-evaluated loop into one that never ends, `i += 1` -> `i *= 1`,
#              keeps rustc busy until this runs out; counted as a timeout)
#   -T TESTS   the cargo test selection instead of the default below, e.g.
#              -T '--lib --test datagram_vectors' for datagram.rs: fewer test binaries to link
#              per mutant. Only ever narrow it to the tests that can reach the module; a
#              narrower selection can only lower the score, never raise it
#   -n NAME    the results' directory, mutants.out/NAME (default: the module's name, with
#              .shardKofN and .re appended as used), so that two reruns of one module keep both
#   -l         list the mutants that would run, and stop
#
# Test selection (honest but fast): `cargo test -p lhp-codec --tests`, i.e. the codec's unit
# tests (every module, conn/tests.rs included), the vector tests under every split, prefixes,
# snapshots, alloc and the property tests with PROPTEST_CASES (default here 32, instead of
# 400-4000) cases each, and LHP_VECTORS_QUICK=1: vectors_every_single_split gives every cut to
# streams up to 512 octets (instead of 8 KiB) and 47 cuts (instead of 455) to longer ones, whose
# 1 and 16 MiB bodies made it take 3 minutes; every other vector test runs in full. Doctests are left out (38 of them, a compile each: ~1 min per mutant);
# every behaviour they show is also a unit test. For the connection layer (`-m conn/...`) only
# the unit tests run (`--lib`): no test under crates/lhp-codec/tests uses `lhp_codec::conn`,
# so the others cannot catch a mutant there and only cost time.
#
# The run happens in a scratch copy of the repository (MUTANTS_TREE, default
# ${TMPDIR:-/tmp}/lhp-mutants-tree) with `--in-place`: the copy keeps its own target/ between
# runs, so the dependencies build once, not once per run. Debug info is off there
# (CARGO_PROFILE_DEV_DEBUG=0), which halves link time. Results: mutants.out/<name>/ in the
# repository (caught.txt, missed.txt, timeout.txt, unviable.txt, outcomes.json), and a
# one-line summary on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

module=all shard="" jobs=1 timeout=120 re="" list=0 tests="" build_timeout=180 outname=""
while getopts "m:s:j:t:r:T:b:n:lh" opt; do
    case $opt in
        m) module=$OPTARG ;;
        s) shard=$OPTARG ;;
        j) jobs=$OPTARG ;;
        t) timeout=$OPTARG ;;
        r) re=$OPTARG ;;
        T) tests=$OPTARG ;;
        b) build_timeout=$OPTARG ;;
        n) outname=$OPTARG ;;
        l) list=1 ;;
        *) sed -n '2,25p' "$0"; exit 2 ;;
    esac
done

if ! command -v cargo-mutants >/dev/null 2>&1; then
    echo "SKIP: cargo-mutants is not installed (cargo install --locked cargo-mutants)" >&2
    exit 1
fi

test_args=(--tests)
case $module in conn/*) test_args=(--lib) ;; esac
# shellcheck disable=SC2206 # the selection is a list of words on purpose
if [ -n "$tests" ]; then test_args=($tests); fi
args=(-p lhp-codec --timeout "$timeout" --build-timeout "$build_timeout" --cap-lints true)
name=all
if [ "$module" != all ]; then
    args+=(--file "crates/lhp-codec/src/$module")
    name=$(echo "$module" | tr '/*' '-_' | sed 's/\.rs$//')
fi
if [ -n "$shard" ]; then
    args+=(--shard "$shard")
    name="$name.shard$(echo "$shard" | tr / of)"
fi
if [ -n "$re" ]; then
    args+=(--re "$re")
    name="$name.re"
fi

if [ -n "$outname" ]; then
    case $outname in */* | .* | "") echo "-n NAME: a plain directory name" >&2; exit 2 ;; esac
    name=$outname
fi

if [ "$list" = 1 ]; then
    cargo mutants "${args[@]}" --list
    exit 0
fi

# The scratch tree: the committed and uncommitted sources, never target/ or mutants.out/.
tree=${MUTANTS_TREE:-${TMPDIR:-/tmp}/lhp-mutants-tree}
mkdir -p "$tree"
find "$tree" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +
# tar keeps the modification times, so cargo rebuilds only what changed since the last run.
tar -C "$repo" --exclude=./target --exclude=./mutants.out --exclude=./.git \
    --exclude=./fuzz/target -cf - . | tar -C "$tree" -xf -
# An in-place run restores each mutated file after the last mutant's build, so the restored file
# is older than that build: touch the codec's sources so that cargo rebuilds them.
find "$tree/crates/lhp-codec" -name '*.rs' -exec touch {} +

# The commit measured, with "+dirty" when the working tree had uncommitted changes.
rev=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- crates scripts || rev="$rev+dirty"

out="$repo/mutants.out/$name"
rm -rf "$out"
mkdir -p "$repo/mutants.out"
start=$(date +%s)
status=0
(
    cd "$tree"
    export PROPTEST_CASES=${PROPTEST_CASES:-32} CARGO_PROFILE_DEV_DEBUG=0
    export LHP_VECTORS_QUICK=1
    # In-place: one build tree, so one job at a time in it; -j N > 1 uses N copies instead.
    if [ "$jobs" = 1 ]; then
        nice -n 15 cargo mutants "${args[@]}" --in-place -o "$tree/mutants.tmp" -- "${test_args[@]}"
    else
        nice -n 15 cargo mutants "${args[@]}" --jobs "$jobs" -o "$tree/mutants.tmp" -- "${test_args[@]}"
    fi
) || status=$?
rm -rf "$out"
mv "$tree/mutants.tmp/mutants.out" "$out"
rm -rf "$tree/mutants.tmp"
secs=$(( $(date +%s) - start ))
count() { [ -f "$out/$1.txt" ] && wc -l <"$out/$1.txt" || echo 0; }
echo "mutants $name: caught $(count caught) missed $(count missed) timeout $(count timeout)" \
     "unviable $(count unviable) in ${secs}s at $rev $(date -u +%F)"
if [ -s "$out/missed.txt" ]; then
    echo "missed:"
    sed 's/^/  /' "$out/missed.txt"
fi
# cargo-mutants exits 2 when a mutant was missed, 3 on a timeout: pass that on.
exit "$status"
