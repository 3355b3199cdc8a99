#!/usr/bin/env bash
# Benchmarks our hypervisor against Xen 4.17: boots guests/bench as dom0 on both under the
# same QEMU with `-icount shift=0,sleep=off -cpu max,-x2apic` (the guest's TSC then counts
# executed instructions, so the figures repeat exactly), prints one table with both columns
# and the ratio ours/Xen, and writes it into docs/PERFORMANCE.md with the commands, the
# versions, the hypervisor's size, lines of code per crate and the boot time to dom0.
#
#   scripts/bench.sh [--worktree] [--no-doc]
#
# By default it benchmarks the committed HEAD (exported with `git archive` into a temporary
# directory), so that the figures belong to a commit; --worktree takes the working tree as it
# is (the doc then says so). --no-doc only prints.
#
# docs/PERFORMANCE.md: only the part between the "bench.sh: generated" markers is replaced;
# the analysis after it is kept. Every metric where ours is slower than Xen should have a
# line "- `name`: ..." there; the script warns about those that do not.
#
# Environment:
#   BENCH_TIMEOUT     seconds per benchmark boot (default 900)
#   BOOT_RUNS         boots per hypervisor for the boot-time figure (default 5)
#   CARGO_TARGET_DIR  where to build (default target-bench)
#
# Not a test: nothing here asserts on time. Exit status 0 when both runs finished (even with
# failed metrics, which the table shows), 1 otherwise.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
worktree=0
write_doc=1
for arg in "$@"; do
    case $arg in
        --worktree) worktree=1 ;;
        --no-doc) write_doc=0 ;;
        *) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 64 ;;
    esac
done

ICOUNT="-icount shift=0,sleep=off -cpu max,-x2apic"
timeout_s=${BENCH_TIMEOUT:-900}
boot_runs=${BOOT_RUNS:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target-bench}
export XEN_BUILD_DIR=${XEN_BUILD_DIR:-$root/build/xen}
doc=$root/docs/PERFORMANCE.md

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { echo "bench: $*" >&2; }

# The tree to benchmark.
commit=$(git -C "$root" rev-parse HEAD)
if [ $worktree -eq 1 ]; then
    src=$root
    dirty=$(git -C "$root" status --porcelain -- hypervisor guest-abi guests/bench | wc -l)
    tree_note="the working tree at $commit ($dirty changed or new files under hypervisor/, guest-abi/, guests/bench/)"
else
    # A fixed place and its own target directory: cargo keys a path package's build-script
    # output (the linker script's absolute path) by package, not by where it lies, so two
    # trees must not share one. Touched so that cargo rebuilds what came from the archive.
    src=$CARGO_TARGET_DIR/head-src
    rm -rf "$src"
    mkdir -p "$src"
    git -C "$root" archive HEAD | tar -x -C "$src"
    find "$src" -type f -exec touch {} +
    export CARGO_TARGET_DIR=$CARGO_TARGET_DIR/head
    tree_note="commit $commit (exported with git archive)"
fi
say "benchmarking $tree_note"

# Build: the guest, then the hypervisor exactly as boot.sh builds it (separately, so that
# cargo does not unify guest-abi's features between them).
(cd "$src" && cargo build -q --release -p bench --target x86_64-unknown-none) || exit 1
(cd "$src" && cargo build -q --release -p hypervisor --target x86_64-unknown-none) || exit 1
bench_bin=$CARGO_TARGET_DIR/x86_64-unknown-none/release/bench
hv_bin=$CARGO_TARGET_DIR/x86_64-unknown-none/release/hypervisor
boot_ours() { BOOT_NO_BUILD=1 "$src/scripts/boot.sh" "$@"; }
boot_xen() { "$src/scripts/boot-xen.sh" "$@"; }

# The benchmark runs, one per hypervisor.
status=0
ours_status=ok
xen_status=ok
say "our hypervisor under icount (timeout ${timeout_s}s)"
BOOT_TIMEOUT=$timeout_s BOOT_LOG=$work/ours.log QEMU_EXTRA=$ICOUNT \
    boot_ours "$bench_bin" >/dev/null 2>"$work/ours.err" || {
    rc=$?; status=1; ours_status="exit $rc: $(tail -n1 "$work/ours.err")"; say "our run failed: $ours_status"; }
say "Xen 4.17 under icount (timeout ${timeout_s}s)"
BOOT_TIMEOUT=$timeout_s BOOT_LOG=$work/xen.log QEMU_EXTRA=$ICOUNT \
    boot_xen "$bench_bin" >/dev/null 2>"$work/xen.err" || {
    rc=$?; status=1; xen_status="exit $rc: $(tail -n1 "$work/xen.err")"; say "Xen run failed: $xen_status"; }

# Boot time under plain TCG (as the tests boot): wall clock from starting the boot script
# to the first time each pattern shows in its log, in ms ("-" if it never showed).
time_to() { # LOG PID START_NS PATTERN...
    local log=$1 pid=$2 start=$3 seen=() i now
    shift 3
    for i in $(seq 1 $#); do seen[i]="-"; done
    while :; do
        now=$(date +%s%N)
        for i in $(seq 1 $#); do
            if [ "${seen[i]}" = "-" ] && grep -qF -- "${!i}" "$log" 2>/dev/null; then
                seen[i]=$(( (now - start) / 1000000 ))
            fi
        done
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    wait "$pid" 2>/dev/null || true
    echo "${seen[*]}"
}
# ours|xen RUN: ms to the hypervisor's first line, to "entering the kernel" (ours only, "-"
# for Xen), to the guest's first line.
boot_time() {
    local log=$work/boot-$1-$2.log start
    : > "$log"
    start=$(date +%s%N)
    if [ "$1" = ours ]; then
        BOOT_TIMEOUT=300 BOOT_LOG=$log boot_ours "$bench_bin" boot-only >/dev/null 2>&1 &
        time_to "$log" $! "$start" "(HV)" "dom0: entering the kernel" "bench: start"
    else
        BOOT_TIMEOUT=300 BOOT_LOG=$log boot_xen "$bench_bin" boot-only >/dev/null 2>&1 &
        time_to "$log" $! "$start" "(XEN)" "(never)" "bench: start"
    fi
}
: > "$work/boot.txt"
for run in $(seq 1 "$boot_runs"); do
    say "boot time, run $run of $boot_runs"
    echo "ours $(boot_time ours "$run")" >> "$work/boot.txt"
    echo "xen $(boot_time xen "$run")" >> "$work/boot.txt"
done

# Sizes, lines of code, versions.
strip_copy=$work/hypervisor.stripped
objcopy --strip-all "$hv_bin" "$strip_copy"
read -r hv_text hv_data hv_bss _ < <(size "$hv_bin" | tail -n1)
{
    echo "hv_file $(stat -c %s "$hv_bin")"
    echo "hv_stripped $(stat -c %s "$strip_copy")"
    echo "hv_sections $hv_text $hv_data $hv_bss"
    echo "xen_file $(stat -c %s "$XEN_BUILD_DIR/xen")"
} > "$work/sizes.txt"

# Lines of Rust per workspace crate, without test files (tests/ directories, tests.rs,
# testing.rs) and without top-level `#[cfg(test)] mod ... { ... }` blocks.
loc() {
    find "$1" -name '*.rs' -not -path '*/tests/*' -not -name tests.rs -not -name testing.rs \
        -print0 | xargs -0 -r awk '
        FNR == 1 { skip = 0; pending = 0 }
        skip { if ($0 ~ /^}/) skip = 0; next }
        pending && /^(pub )?mod [A-Za-z_0-9]+ \{/ { skip = 1; pending = 0; next }
        { pending = ($0 ~ /^#\[cfg\(test\)\]/) }
        pending { next }
        { lines++; if ($0 !~ /^[[:space:]]*$/ && $0 !~ /^[[:space:]]*\/\//) code++ }
        END { printf "%d %d\n", lines, code }'
}
members=$(sed -n 's/^members *= *\[\(.*\)\]/\1/p' "$src/Cargo.toml" | tr -d '",')
: > "$work/loc.txt"
for m in $members; do
    [ -d "$src/$m/src" ] && echo "$m $(loc "$src/$m/src")" >> "$work/loc.txt"
done

xen_deb=$(ls "$XEN_BUILD_DIR"/xen-hypervisor-4.17-amd64_*.deb 2>/dev/null | head -n1)
{
    echo "qemu $(qemu-system-x86_64 --version | head -n1)"
    echo "xen_pkg xen-hypervisor-4.17-amd64 $( [ -n "$xen_deb" ] && dpkg-deb -f "$xen_deb" Version || echo unknown)"
    echo "rustc $(cd "$src" && rustc -V)"
    echo "commit $commit"
    echo "tree $tree_note"
    echo "host $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(nproc) CPUs"
    echo "date $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "icount $ICOUNT"
    echo "ours_status $ours_status"
    echo "xen_status $xen_status"
    echo "bench_bin ${bench_bin#"$root"/}"
} > "$work/versions.txt"

# The table and the doc.
python3 - "$work" "$doc" "$write_doc" "$timeout_s" "$boot_runs" <<'PY'
import os, re, statistics, sys

work, doc, write_doc, timeout_s, boot_runs = sys.argv[1:6]
BEGIN = "<!-- bench.sh: generated from here (edit the text after the end marker) -->"
END = "<!-- bench.sh: generated up to here -->"
WHAT = {
    "loop_empty": "the harness's empty loop (its own cost per iteration)",
    "null_hypercall": "`xen_version(XENVER_version)` through the hypercall page",
    "multicall_32_null": "`multicall` of 32 `xen_version` calls",
    "sched_yield": "`sched_op(SCHEDOP_yield)`, nothing else to run",
    "tlb_flush_local": "`mmuext_op(MMUEXT_TLB_FLUSH_LOCAL)`",
    "evtchn_send_masked": "`evtchn_send` on a loopback channel, receiving port masked (stays pending)",
    "evtchn_upcall_roundtrip": "`evtchn_send` on the loopback, unmasked: upcall, handler clears the port, `iret`",
    "fpu_taskswitch_nm": "`fpu_taskswitch(1)`, then an x87 instruction: `#NM` bounced to the guest, `iret`",
    "mmu_update_1": "`mmu_update` of one L1 entry (alternating between two data frames)",
    "update_va_mapping_invlpg": "`update_va_mapping(UVMF_INVLPG)` (alternating between two data frames)",
    "mmu_update_512": "`mmu_update` of all 512 entries of an L1 (alternating frames), per hypercall",
    "pin_unpin_l4": "`PIN_L4_TABLE` + `UNPIN_TABLE` of a fresh L4→L3→L2→L1 with 512 mappings",
    "new_baseptr": "`MMUEXT_NEW_BASEPTR` between the bootstrap L4 and a pinned copy, per switch",
    "user_syscall_roundtrip": "guest user `syscall` → kernel callback → `iret(VGCF_in_syscall)` back (+1/200 of entering and leaving user mode)",
}

def read(name):
    path = os.path.join(work, name)
    return open(path, errors="replace").read() if os.path.exists(path) else ""

def kv(name):
    return dict(l.split(" ", 1) for l in read(name).splitlines() if " " in l)

def bench_lines(text):
    out, info = {}, ""
    for line in text.splitlines():
        m = re.match(r"^BENCH (\S+) (.*)$", line.strip())
        if m:
            out[m.group(1)] = dict(f.split("=", 1) for f in m.group(2).split() if "=" in f)
        elif line.startswith("BENCH-INFO"):
            info = line.strip()
        elif line.startswith("BENCH-FATAL"):
            out["(fatal)"] = {"error": line.strip()}
    return out, info

ours, ours_info = bench_lines(read("ours.log"))
xen, xen_info = bench_lines(read("xen.log"))
names = list(ours) + [n for n in xen if n not in ours]
versions = kv("versions.txt")

def cell(r):
    if r is None:
        return "missing", "", None
    if "error" in r:
        return "error: `%s`" % r["error"], "", None
    return r["median"], "%s–%s" % (r["min"], r["max"]), int(r["median"])

rows, slower, met, compared = [], [], 0, 0
for n in names:
    o, os_, ov = cell(ours.get(n))
    x, xs, xv = cell(xen.get(n))
    ratio, target = "—", "—"
    if ov is not None and xv:
        q = ov / xv
        ratio = "%.2f" % q
        if n != "loop_empty":
            compared += 1
            target = "yes" if q <= 0.5 else "no"
            met += q <= 0.5
            if q > 1.0:
                slower.append(n)
    rows.append((n, o, os_, x, xs, ratio, target, WHAT.get(n, "")))

head = ("metric", "ours", "ours min–max", "Xen 4.17", "Xen min–max", "ours/Xen", "≤ Xen/2", "what")
table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
table += ["| `%s` | %s | %s | %s | %s | %s | %s | %s |" % r for r in rows]

print("\n".join(table))
print()
print("slower than Xen: %s" % (", ".join(slower) or "none"))
print("at or below half of Xen: %d of %d" % (met, compared))

# Boot times.
boots = {"ours": [], "xen": []}
for line in read("boot.txt").splitlines():
    parts = line.split()
    if parts and parts[0] in boots:
        boots[parts[0]].append(parts[1:])
def median_s(runs, i):
    vals = [int(r[i]) for r in runs if len(r) > i and r[i] != "-"]
    if not vals:
        return "—"
    return "%.1f s" % (statistics.median(vals) / 1000)
def raw(runs, i):
    return ", ".join("%.1f" % (int(r[i]) / 1000) if len(r) > i and r[i] != "-" else "—" for r in runs)

sizes = kv("sizes.txt")
hv_sec = sizes.get("hv_sections", "? ? ?").split()
loc = [l.split() for l in read("loc.txt").splitlines() if len(l.split()) == 3]

def kib(v):
    try:
        return "%d KiB" % round(int(v) / 1024)
    except ValueError:
        return v

out = [BEGIN, "", "## Results", ""]
out += ["Measured %s on %s (QEMU TCG, one vCPU)." % (versions.get("date", "?"), versions.get("host", "?")),
        "Benchmarked: %s." % versions.get("tree", "?"), ""]
if versions.get("ours_status", "ok") != "ok" or versions.get("xen_status", "ok") != "ok":
    out += ["Runs that did not end cleanly: ours: `%s`; Xen: `%s`." % (versions.get("ours_status"), versions.get("xen_status")), ""]
out += ["### Hot paths", "",
        "TSC ticks per operation; under `%s` one tick is one executed guest or hypervisor "
        "instruction. Median, minimum and maximum over the guest's 11 timed repetitions "
        "(after a warm-up); the loop's own cost (`loop_empty`) is included in every figure. "
        "Target: ours ≤ half of Xen's." % versions.get("icount", "?"), ""]
out += table
out += ["", "Slower than Xen (ours/Xen > 1.0): %s. At or below half of Xen: %d of %d metrics."
        % (", ".join("`%s`" % n for n in slower) or "none", met, compared), ""]
out += ["Guest info lines: ours `%s`; Xen `%s`." % (ours_info or "—", xen_info or "—"), ""]
out += ["### Boot to dom0 under TCG", "",
        "Wall clock from starting the boot script to the first time a line shows, plain TCG as "
        "the tests boot (no icount), median of %s boots of `bench boot-only`. Ours starts by "
        "building a GRUB ISO (`grub-mkrescue`) and boots through SeaBIOS and GRUB; Xen's "
        "script hands QEMU the binary directly (`-kernel`), so compare the last column: from "
        "the hypervisor's first line to dom0's. The host is shared with builds, so these vary "
        "by a second or more." % boot_runs, "",
        "| | hypervisor's first line | `dom0: entering the kernel` | dom0's first line | first line → dom0 | runs to dom0 (s) |",
        "|---|---|---|---|---|---|"]
def boot_row(label, runs):
    spans = [int(r[2]) - int(r[0]) for r in runs if len(r) > 2 and "-" not in (r[0], r[2])]
    span = "%.1f s" % (statistics.median(spans) / 1000) if spans else "—"
    return "| %s | %s | %s | %s | %s | %s |" % (label, median_s(runs, 0), median_s(runs, 1),
                                             median_s(runs, 2), span, raw(runs, 2))
out += [boot_row("ours", boots["ours"]), boot_row("Xen 4.17", boots["xen"]), ""]
out += ["### Size", "",
        "| binary | file | stripped | text | data | bss |", "|---|---|---|---|---|---|",
        "| our hypervisor (release, `debug = 1`) | %s | %s | %s | %s | %s |" % (
            kib(sizes.get("hv_file", "?")), kib(sizes.get("hv_stripped", "?")),
            kib(hv_sec[0]), kib(hv_sec[1]), kib(hv_sec[2])),
        "| Xen 4.17 (`xen-4.17-amd64.gz`, gunzipped; no symbols, its sections in one loadable blob) | %s | — | — | — | — |" % (
            kib(sizes.get("xen_file", "?"))), ""]
out += ["### Lines of Rust per crate", "",
        "`*.rs` under each crate's `src/`, without test files (`tests/`, `tests.rs`, "
        "`testing.rs`) and top-level `#[cfg(test)] mod` blocks; code lines are those neither "
        "blank nor `//` comments.", "",
        "| crate | lines | code lines |", "|---|---|---|"]
out += ["| `%s` | %s | %s |" % tuple(l) for l in loc]
out += ["| total | %d | %d |" % (sum(int(l[1]) for l in loc), sum(int(l[2]) for l in loc)), ""]
out += ["### Versions and commands", "",
        "- %s" % versions.get("qemu", "?"),
        "- Xen: Debian package `%s`" % versions.get("xen_pkg", "?"),
        "- %s" % versions.get("rustc", "?"),
        "- our commit: `%s`" % versions.get("commit", "?"), "",
        "```sh",
        "scripts/bench.sh            # all of the below, and this file",
        "# the benchmark, on each hypervisor:",
        "CARGO_TARGET_DIR=%s cargo build --release -p bench --target x86_64-unknown-none"
        % versions.get("bench_bin", "?").replace("/x86_64-unknown-none/release/bench", ""),
        "BOOT_NO_BUILD=1 BOOT_TIMEOUT=%s QEMU_EXTRA=\"%s\" \\" % (timeout_s, versions.get("icount", "")),
        "    scripts/boot.sh %s" % versions.get("bench_bin", "?"),
        "BOOT_TIMEOUT=%s QEMU_EXTRA=\"%s\" \\" % (timeout_s, versions.get("icount", "")),
        "    scripts/boot-xen.sh %s" % versions.get("bench_bin", "?"),
        "# the boot time: the same without QEMU_EXTRA, with the guest's command line `boot-only`",
        "```", "", END]
generated = "\n".join(out)

if write_doc == "1":
    text = open(doc).read() if os.path.exists(doc) else (
        "# Performance\n\n" + BEGIN + "\n" + END +
        "\n\n## Where ours is slower than Xen, and the plan\n\n")
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + generated + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + generated + "\n"
    open(doc, "w").write(text)
    after = text[text.index(END):]
    missing = [n for n in slower if ("- `%s`" % n) not in after]
    for n in missing:
        print("bench: %s is slower than Xen and has no '- `%s`: ...' line in the analysis" % (n, n), file=sys.stderr)
    print("bench: wrote %s" % doc, file=sys.stderr)
PY
exit $status
