#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (libFuzzer), each for SECONDS.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      # default: 60 seconds, every target
#
# Short mode (scripts/test.sh, CI): 20 seconds a target. Long mode, run by hand before a
# release or after a change to the code a target reaches, at least 10 minutes a target,
# niced so the machine stays usable, results recorded in docs/SECURITY.md ("Fuzzing"):
#
#   nice -n 19 scripts/fuzz.sh 600 pv_mmu hypercall ptwr emulate console_ring xenstore_ring
#   nice -n 19 scripts/fuzz.sh 600 kernel_file kernel_image    # the builder's kernel files
#
# Environment:
#   FUZZ_SANITIZER  none (default): the pinned stable toolchain (rust-toolchain.toml) builds
#                 the targets with libFuzzer's coverage instrumentation and no sanitizer, so
#                 no nightly is needed (scripts/test.sh runs it this way); address (or any
#                 other cargo-fuzz sanitizer): `cargo +nightly`, as `-Zsanitizer` needs
#   FUZZ_JOBS     targets run at the same time (default 1)
#   FUZZ_WORK     where the growing corpora, logs and crash artifacts go
#                 (default target-attack/fuzz-work); the seed corpus fuzz/corpus/TARGET is
#                 read, never written
#   FUZZ_ARGS     extra libFuzzer options
#
# Each run starts by running the seeds and the reproducers of crashes found before
# (fuzz/regressions/TARGET/). Prints, per target, the executions, the coverage (edges) and
# the corpus size libFuzzer reports, and ends with "N passed, N failed" (a target fails when
# it finds a crash; the reproducer is in FUZZ_WORK/artifacts/TARGET/, to replay with the
# `cargo fuzz run` command printed). Exit status 0 when no target crashed, 1 otherwise, 4
# when cargo-fuzz (scripts/deps.sh installs it) or, for a sanitizer, the nightly toolchain
# is missing, or a target does not build.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-60}
[ $# -gt 0 ] && shift
work=${FUZZ_WORK:-$root/target-attack/fuzz-work}
jobs=${FUZZ_JOBS:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target-attack}

sanitizer=${FUZZ_SANITIZER:-none}
# How to call cargo-fuzz: the pinned toolchain without a sanitizer, nightly with one.
fuzz=(cargo fuzz)
[ "$sanitizer" = none ] || fuzz=(cargo +nightly fuzz)

cd "$root/fuzz" || exit 4
if ! "${fuzz[@]}" --version >/dev/null 2>&1; then
    echo "fuzz.sh: needs cargo-fuzz (scripts/deps.sh installs it)$([ "$sanitizer" = none ] ||
        echo " and, for FUZZ_SANITIZER=$sanitizer, the nightly toolchain")" >&2
    exit 4
fi
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${fuzz[@]}" list)
fi
"${fuzz[@]}" build -O -s "$sanitizer" >&2 || exit 4
mkdir -p "$work"

# Runs one target; its log is $work/TARGET.log.
run_one() {
    local t=$1 corpus="$work/corpus/$t" art="$work/artifacts/$t/" seeds
    mkdir -p "$corpus" "$art" "$root/fuzz/corpus/$t"
    # libFuzzer adds to the first directory and only reads the others.
    seeds=("$root/fuzz/corpus/$t")
    [ -d "$root/fuzz/regressions/$t" ] && seeds+=("$root/fuzz/regressions/$t")
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of options
    "${fuzz[@]}" run -O -s "$sanitizer" "$t" "$corpus" "${seeds[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 \
        -artifact_prefix="$art" ${FUZZ_ARGS:-} >"$work/$t.log" 2>&1
}

pids=()
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
    echo "fuzz.sh: $t for ${seconds}s" >&2
    run_one "$t" &
    pids+=($!)
done
passed=0 failed=0
for i in "${!targets[@]}"; do
    t=${targets[$i]}
    if wait "${pids[$i]}"; then status=ok; else status=CRASH; fi
    log="$work/$t.log"
    # The last status line: "#N  DONE  cov: E ft: F corp: C/S ..."
    stats=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$stats")
    corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$stats")
    if [ "$status" = ok ]; then
        passed=$((passed + 1))
        echo "PASS fuzz.$t: ${seconds}s, ${execs:-?} runs, ${cov:-?} edges, corpus ${corp:-?}"
    else
        failed=$((failed + 1))
        echo "FAIL fuzz.$t: crash after ${execs:-?} runs; reproducer in $work/artifacts/$t/, log $log;" \
            "replay: (cd fuzz && ${fuzz[*]} run -O -s $sanitizer $t FILE)"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
