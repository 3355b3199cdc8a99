#!/usr/bin/env bash
# Benchmarks our hypervisor against Xen 4.17: boots guests/bench as dom0 on both under the
# same QEMU with `-icount shift=0,sleep=off -cpu max,-x2apic` (the guest's TSC then counts
# executed instructions, so the figures repeat exactly), prints one table with both columns
# and the ratio ours/Xen, and writes it into docs/PERFORMANCE.md with the commands, the
# versions, the toolstack figures, the footprint, lines of code per crate and the boot time.
#
#   scripts/bench.sh [--worktree] [--no-doc] [--only PART[,PART...]]
#   scripts/bench.sh --check      # the regression guard (scripts/test.sh runs it)
#
# --check runs only our hot paths, on the working tree, and compares each metric counted in
# instructions with the figure committed in docs/PERFORMANCE.md (its "ours" column): a metric
# more than 2% worse fails the check and is named. Instruction counts under icount are exact,
# so this compares counts, not times; the metrics in ns (timer and poll wake-ups) are left
# out. About half a minute.
#
# By default it benchmarks the committed HEAD (exported with `git archive` into a temporary
# directory), so that the figures belong to a commit; --worktree takes the working tree as it
# is (the doc then says so). --no-doc only prints. --only runs some of the parts `hot` (the
# hot paths, guests/bench as dom0), `toolstack` (the dom0 toolstack under icount: create,
# destroy, memory per domain, the domain switch, boot to the prompt), `boot` (wall-clock
# boot time) and `disk` (Debian's kernel reading and writing a disk through dom0's block
# backend, and the same directly on QEMU's virtio-blk); it implies --no-doc.
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
# Not a test: nothing here asserts on time. Exit status 0 when every run finished (even with
# failed metrics, which the table shows), 1 otherwise.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
worktree=0
write_doc=1
check=0
parts=hot,toolstack,boot,disk
usage() { sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 64; }
while [ $# -gt 0 ]; do
    case $1 in
        --worktree) worktree=1 ;;
        --no-doc) write_doc=0 ;;
        --only) [ $# -ge 2 ] || usage; parts=$2; write_doc=0; shift ;;
        --check) check=1; worktree=1; write_doc=0; parts=hot ;;
        *) usage ;;
    esac
    shift
done
want() { [[ ",$parts," == *",$1,"* ]]; }

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
    dirty=$(git -C "$root" status --porcelain -- hypervisor guest-abi guests dom0-tools | wc -l)
    tree_note="the working tree at $commit ($dirty changed or new files under hypervisor/, guest-abi/, guests/, dom0-tools/)"
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
ours_status=skipped
xen_status=skipped
if want hot; then
    ours_status=ok
    xen_status=ok
    say "our hypervisor under icount (timeout ${timeout_s}s)"
    BOOT_TIMEOUT=$timeout_s BOOT_LOG=$work/ours.log QEMU_EXTRA=$ICOUNT \
        boot_ours "$bench_bin" >/dev/null 2>"$work/ours.err" || {
        rc=$?; status=1; ours_status="exit $rc: $(tail -n1 "$work/ours.err")"; say "our run failed: $ours_status"; }
    if [ $check -eq 0 ]; then
        say "Xen 4.17 under icount (timeout ${timeout_s}s)"
        BOOT_TIMEOUT=$timeout_s BOOT_LOG=$work/xen.log QEMU_EXTRA=$ICOUNT \
            boot_xen "$bench_bin" >/dev/null 2>"$work/xen.err" || {
            rc=$?; status=1; xen_status="exit $rc: $(tail -n1 "$work/xen.err")"; say "Xen run failed: $xen_status"; }
    fi
fi

# The regression guard: our hot paths against the figures committed in the doc.
if [ $check -eq 1 ]; then
    [ "$ours_status" = ok ] || { echo "FAIL bench.check: our benchmark run failed ($ours_status)"; exit 1; }
    python3 - "$work/ours.log" "$doc" <<'PY'
import re, sys
log, doc = sys.argv[1:3]
TOLERANCE = 1.02
now = {}
for line in open(log, errors="replace"):
    m = re.match(r"^BENCH (\S+) (.*)$", line.strip())
    if m:
        f = dict(x.split("=", 1) for x in m.group(2).split() if "=" in x)
        if f.get("unit") != "ns" and "median" in f:
            now[m.group(1)] = int(f["median"])
committed = {}
for line in open(doc):
    # The hot-path table: "| `name` | ours | min–max | ...", counts without a unit.
    m = re.match(r"^\| `(\w+)` \| (\d+) \| \d+–\d+ \| ", line)
    if m:
        committed.setdefault(m.group(1), int(m.group(2)))
worse, checked = [], 0
for name, was in sorted(committed.items()):
    if name not in now:
        continue
    checked += 1
    print("bench.check: %-26s %9d (docs: %d, %+.1f%%)" % (name, now[name], was, 100.0 * (now[name] - was) / was))
    if now[name] > was * TOLERANCE:
        worse.append("%s %d -> %d (+%.1f%%)" % (name, was, now[name], 100.0 * (now[name] - was) / was))
missing = sorted(n for n in committed if n not in now and not n.startswith("domu_") and n != "domain_switch_roundtrip")
if missing:
    print("FAIL bench.check: no figure from this run for %s" % ", ".join(missing))
    sys.exit(1)
if worse:
    print("FAIL bench.check: worse than docs/PERFORMANCE.md by more than 2%%: %s" % "; ".join(worse))
    sys.exit(1)
print("PASS bench.check: %d hot-path metrics within 2%% of docs/PERFORMANCE.md" % checked)
PY
    exit $?
fi

# The toolstack under icount: dom0-tools' dom0 kernel runs a script with `stamps` (each
# line of its output starts with `@NS `, pvclock ns), on both hypervisors with dom0 at
# 64 MiB. guests/bench runs as the domU of the domain-switch measurement.
ts_ours_status=skipped
ts_xen_status=skipped
if want toolstack; then
    ts_ours_status=ok
    ts_xen_status=ok
    (cd "$src" && cargo build -q --release -p dom0-tools --bin dom0 --target x86_64-unknown-none) || exit 1
    dom0_bin=$CARGO_TARGET_DIR/x86_64-unknown-none/release/dom0
    mkdir -p "$work/ts"
    printf 'name = "h"\nkernel = "/boot/hello"\nmemory = 8\ncmdline = "wait"\n' > "$work/ts/hello.cfg"
    printf 'name = "b"\nkernel = "/boot/bench"\nmemory = 16\n' > "$work/ts/bench.cfg"
    # The parser below relies on the order of the `info`s: before, with the 8 MiB domain,
    # after it, with the 64 MiB domain, after it, at the end.
    cat > "$work/ts/toolstack.script" <<'EOF'
info
list
create /bench/hello.cfg name=small memory=8
wait-for small "hello: waiting to be destroyed"
info
destroy small
sleep 1
info
create /bench/hello.cfg name=large memory=64
wait-for large "hello: waiting to be destroyed"
info
destroy large
sleep 1
info
create /bench/bench.cfg name=alone cmdline=yield-alone
wait-for alone BENCH-DONE
destroy alone
create /bench/bench.cfg name=peer cmdline=yield-peer
wait-for peer BENCH-INFO
create /bench/bench.cfg name=switch cmdline=yield-switch
wait-for switch BENCH-DONE
destroy switch
destroy peer
sleep 1
list
info
EOF
    (cd "$src" && scripts/dom0-ramdisk.sh "$work/ts.cpio" bench="$work/ts" boot/bench="$bench_bin") || exit 1
    ts_args=("$dom0_bin" script=/bench/toolstack.script stamps -- "$work/ts.cpio")
    say "the toolstack on our hypervisor under icount"
    HV_ARGS=dom0_mem=64M BOOT_TIMEOUT=$timeout_s BOOT_LOG=$work/ts-ours.log QEMU_EXTRA=$ICOUNT \
        boot_ours "${ts_args[@]}" >/dev/null 2>"$work/ts-ours.err" || {
        rc=$?; status=1; ts_ours_status="exit $rc: $(tail -n1 "$work/ts-ours.err")"; say "our toolstack run failed: $ts_ours_status"; }
    say "the toolstack on Xen 4.17 under icount"
    BOOT_TIMEOUT=$timeout_s BOOT_LOG=$work/ts-xen.log QEMU_EXTRA=$ICOUNT \
        boot_xen "${ts_args[@]}" >/dev/null 2>"$work/ts-xen.err" || {
        rc=$?; status=1; ts_xen_status="exit $rc: $(tail -n1 "$work/ts-xen.err")"; say "Xen toolstack run failed: $ts_xen_status"; }
fi

# Disks, under plain TCG (wall clock): Debian's kernel (scripts/linux-disk.sh) runs diskbench (sequential
# write and read of 32 MiB in 1 MiB requests, 500 random 4 KiB reads, all O_DIRECT) on a
# second disk: as a domU through blkfront, grant copies and dom0's block backend onto a dom0
# memory disk (mkdisk), and as the only kernel on QEMU's virtio-blk (the host file,
# cache=none), the ceiling under this emulator. Not under icount: a guest waiting for a host
# I/O idles, and icount's clock then jumps to the next timer, which measures the guest's
# timers, not the disk.
disk_status=skipped
disk_job="jobs=bench jobdev=DEV jobmib=32 jobops=500"
if want disk; then
    disk_status=ok
    (cd "$src" && scripts/linux-disk.sh --size 16 "$work/disk") >&2 || { status=1; disk_status="cannot build the guest"; }
    head -c $((64 << 20)) /dev/zero > "$work/disk/blank.img"
    say "Linux on QEMU's virtio-blk"
    timeout -k 5 "$timeout_s" qemu-system-x86_64 -accel tcg -cpu max -m 512 -smp 1 \
        -display none -monitor none -serial stdio -no-reboot \
        -kernel "$work/disk/vmlinuz" -initrd "$work/disk/initrd.cpio" \
        -append "root=/dev/vda console=ttyS0 quiet ${disk_job/DEV//dev/vdb}" \
        -drive file="$work/disk/root.img",if=virtio,format=raw \
        -drive file="$work/disk/blank.img",if=virtio,format=raw,cache=none \
        < /dev/null > "$work/disk-direct.log" 2>&1 || { status=1; disk_status="direct run failed"; }
    printf '%s\n' 'name = "dbench"' 'kernel = "/boot/vmlinuz"' 'ramdisk = "/boot/initrd"' \
        'memory = 256' "disk = [ 'phy:/dev/ram0,xvda,w', 'phy:/dev/ram1,xvdb,w' ]" \
        "cmdline = \"console=hvc0 root=/dev/xvda quiet ${disk_job/DEV//dev/xvdb}\"" > "$work/disk/dbench.cfg"
    printf '%s\n' 'mkdisk /dev/ram0 /images/root.img' 'mkdisk /dev/ram1 /images/blank.img' \
        'create /etc/xen/dbench.cfg' 'wait-for dbench "linux-disk: done"' 'sleep 2' > "$work/disk/script"
    (cd "$src" && cargo build -q --release -p dom0-tools --bin dom0 --target x86_64-unknown-none &&
        scripts/dom0-ramdisk.sh "$work/disk.cpio" script="$work/disk/script" \
            etc/xen/dbench.cfg="$work/disk/dbench.cfg" boot/vmlinuz="$work/disk/vmlinuz" \
            boot/initrd="$work/disk/initrd.cpio" images/root.img="$work/disk/root.img" \
            images/blank.img="$work/disk/blank.img") >&2 || exit 1
    say "Linux on our hypervisor's block backend"
    dom0_mib=$((128 + 2 * ($(stat -c %s "$work/disk.cpio") >> 20)))
    HV_ARGS="dom0_mem=${dom0_mib}M" BOOT_MEM=$((dom0_mib + 512)) BOOT_TIMEOUT=$timeout_s \
        BOOT_LOG=$work/disk-ours.log ACCEL=tcg \
        boot_ours "$CARGO_TARGET_DIR/x86_64-unknown-none/release/dom0" script -- "$work/disk.cpio" \
        > /dev/null 2> "$work/disk-ours.err" || { status=1; disk_status="our run failed: $(tail -n1 "$work/disk-ours.err")"; }
    say "disks: $disk_status"
fi

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
want boot || boot_runs=0
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
    echo "ts_ours_status $ts_ours_status"
    echo "ts_xen_status $ts_xen_status"
    echo "disk_status $disk_status"
    echo "disk_job $disk_job"
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
    "grant_copy_page": "`GNTTABOP_copy` of a whole page from a granted frame (our own grant to ourselves) into an own frame",
    "grant_map_unmap": "`GNTTABOP_map_grant_ref` of our own grant over a page of ours, then `unmap_grant_ref`",
    "user_syscall_roundtrip": "guest user `syscall` → kernel callback → `iret(VGCF_in_syscall)` back (+1/200 of entering and leaving user mode)",
    "poll_send_pending": "loopback `evtchn_send`, then `SCHEDOP_poll` on the receiving port (already pending: returns at once)",
    "poll_wake_timer": "one-shot timer 1 ms ahead, `SCHEDOP_poll` on the masked `VIRQ_TIMER` port: deadline → return from the poll",
    "poll_timeout": "`SCHEDOP_poll` with a 1 ms timeout on a port nothing sends to: timeout → return",
    "timer_upcall_lateness": "one-shot timer 1 ms ahead, `SCHEDOP_block`: deadline → entry of the `VIRQ_TIMER` upcall",
    "domu_yield_alone": "domU: `SCHEDOP_yield` with dom0 idle (toolstack run)",
    "domain_switch_roundtrip": "domU: `SCHEDOP_yield` while a second domU loops in `SCHEDOP_yield`: switch there, its yield, switch back (toolstack run)",
}

def read(name):
    path = os.path.join(work, name)
    return open(path, errors="replace").read() if os.path.exists(path) else ""

def kv(name):
    return dict(l.split(" ", 1) for l in read(name).splitlines() if " " in l)

def bench_lines(text):
    out, info = {}, ""
    for line in text.splitlines():
        # A domU's lines come through the toolstack as "@NS [name] BENCH ...".
        line = re.sub(r"^@\d+ \[[^]]*\] ", "", line.strip())
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
ours.update((k, v) for k, v in bench_lines(read("ts-ours.log"))[0].items() if k != "(fatal)")
xen.update((k, v) for k, v in bench_lines(read("ts-xen.log"))[0].items() if k != "(fatal)")
names = list(ours) + [n for n in xen if n not in ours]
versions = kv("versions.txt")

def cell(r):
    if r is None:
        return "missing", "", None
    if "error" in r:
        return "error: `%s`" % r["error"], "", None
    unit = " ns" if r.get("unit") == "ns" else ""
    return (r["median"] + unit, "%s–%s%s" % (r["min"], r["max"], unit), int(r["median"]))

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

def toolstack(text):
    """The toolstack run's figures from its stamped lines ("@NS text")."""
    lines = []
    for raw in text.replace("\r", "").split("\n"):
        m = re.match(r"^@(\d+) (.*)$", raw)
        if m:
            lines.append((int(m.group(1)), m.group(2)))
    res = {}
    prompts = [t for t, l in lines if l.startswith("xl> ")]
    if prompts:
        res["boot"] = prompts[0]
    def after(i, pred):
        return next((t for t, l in lines[i + 1:] if pred(l)), None)
    for i, (t, l) in enumerate(lines):
        if not l.startswith("xl> "):
            continue
        words = l[4:].split()
        if words[:1] == ["create"]:
            name = next((w[5:] for w in words if w.startswith("name=")), "?")
            started = after(i, lambda l: l.startswith("Started domain %s " % name))
            first = after(i, lambda l: l.startswith("[%s] " % name))
            res["create_" + name] = (started and started - t, first and first - t)
        elif words[:1] == ["destroy"] and len(words) > 1:
            nxt = after(i, lambda l: l.startswith("xl> "))
            res["destroy_" + words[1]] = nxt and nxt - t
    res["free"] = [int(l.split(":")[1]) for t, l in lines if re.match(r"^free_pages\s*:", l)]
    info = dict(re.match(r"^(\w+)\s*: (.*)$", l).groups() for t, l in lines
                if re.match(r"^(total_memory|free_memory)\s*: ", l))
    res["info"] = info
    return res

ts = {"ours": toolstack(read("ts-ours.log")), "xen": toolstack(read("ts-xen.log"))}

def ms(ns):
    return "—" if ns is None else "%.2f ms" % (ns / 1e6)

def overhead(r, i, mib):
    f = r.get("free", [])
    return f[i] - f[i + 1] - mib * 256 if len(f) > i + 1 else None

def ts_rows():
    rows = []
    def row(label, get, fmt, ratio=True):
        o, x = get(ts["ours"]), get(ts["xen"])
        q = "%.2f" % (o / x) if ratio and o is not None and x else "—"
        rows.append("| %s | %s | %s | %s |" % (label, fmt(o), fmt(x), q))
    def first(key, idx):
        return lambda r: (r.get(key) or (None, None))[idx]
    row("hypervisor start → dom0's first prompt (system time at the prompt)", lambda r: r.get("boot"), ms)
    for name, mib in (("small", 8), ("large", 64)):
        row("`create` %d MiB: command → `Started domain`" % mib, first("create_" + name, 0), ms)
        row("`create` %d MiB: command → first line of guest output" % mib, first("create_" + name, 1), ms)
        row("`destroy` %d MiB: command → next prompt" % mib, lambda r, n=name: r.get("destroy_" + n), ms)
    num = lambda v: "—" if v is None else str(v)
    row("frames a domain costs beyond its RAM, 8 MiB domain (`free_pages` drop − 2048)", lambda r: overhead(r, 0, 8), num, ratio=False)
    row("the same, 64 MiB domain (− 16384)", lambda r: overhead(r, 2, 64), num, ratio=False)
    def per_gib(r):
        o = overhead(r, 0, 8)
        return None if o is None else 262144 // (2048 + o)
    row("8 MiB guests per GiB of free memory (262144 / (2048 + that))", per_gib, num, ratio=False)
    def back(r):
        f = r.get("free", [])
        return None if len(f) < 5 else "yes" if f[0] == f[2] == f[4] == f[-1] else "no (%s)" % " ".join(map(str, f))
    rows.append("| every destroyed domain's memory back in `free_pages` | %s | %s | — |" % (back(ts["ours"]) or "—", back(ts["xen"]) or "—"))
    def unaccounted(r):
        i = r.get("info", {})
        try:
            return int(i["total_memory"]) - int(i["free_memory"]) - 64
        except (KeyError, ValueError):
            return None
    row("`total_memory` − `free_memory` − dom0's 64 MiB, MiB (what `info` says the hypervisor keeps)", unaccounted, num, ratio=False)
    return rows

hvf = re.search(r"Hypervisor frames: (.*)", read("ours.log") + read("ts-ours.log"))
if read("ts-ours.log") or read("ts-xen.log"):
    print()
    print("\n".join(["| toolstack | ours | Xen 4.17 | ours/Xen |", "|---|---|---|---|"] + ts_rows()))
if hvf:
    print()
    print("our hypervisor's frames: %s" % hvf.group(1))

out = [BEGIN, "", "## Results", ""]
out += ["Measured %s on %s (QEMU TCG, one vCPU)." % (versions.get("date", "?"), versions.get("host", "?")),
        "Benchmarked: %s." % versions.get("tree", "?"), ""]
if versions.get("ours_status", "ok") not in ("ok", "skipped") or versions.get("xen_status", "ok") not in ("ok", "skipped"):
    out += ["Runs that did not end cleanly: ours: `%s`; Xen: `%s`." % (versions.get("ours_status"), versions.get("xen_status")), ""]
out += ["### Hot paths", "",
        "TSC ticks per operation; under `%s` one tick is one executed guest or hypervisor "
        "instruction. Median, minimum and maximum over the guest's 11 timed repetitions "
        "(after a warm-up); the loop's own cost (`loop_empty`) is included in every figure. "
        "Figures in ns are how late a wake-up or timer came after its deadline, one event per "
        "repetition, in pvclock ns (about one instruction each; an idle machine's clock jumps "
        "to the next timer). `domu_yield_alone` and `domain_switch_roundtrip` come from the "
        "toolstack run below (guests/bench as a 16 MiB domU). "
        "Target: ours ≤ half of Xen's." % versions.get("icount", "?"), ""]
out += table
out += ["", "Slower than Xen (ours/Xen > 1.0): %s. At or below half of Xen: %d of %d metrics."
        % (", ".join("`%s`" % n for n in slower) or "none", met, compared), ""]
out += ["Guest info lines: ours `%s`; Xen `%s`." % (ours_info or "—", xen_info or "—"), ""]
out += ["### Toolstack", "",
        "dom0-tools' `dom0` kernel runs a script (in `scripts/bench.sh`) under the same icount "
        "options on both hypervisors, with dom0 at 64 MiB and the command-line word `stamps`: "
        "each line it prints starts with the pvclock system time, so one ns is about one "
        "executed instruction. The same toolstack, builder and guests on both (`guests/hello` "
        "with `wait`; Xen's own xl is not available here). A domain's first output line is "
        "stamped when dom0 reads it from the console ring (dom0 sleeps in `SCHEDOP_poll` on the "
        "console ports with a 10 ms timeout). System time starts when each hypervisor sets up "
        "its clock: ours after its TSC calibration, Xen at its time init.", "",
        "Runs: ours `%s`; Xen `%s`." % (versions.get("ts_ours_status", "?"), versions.get("ts_xen_status", "?")), "",
        "| | ours | Xen 4.17 | ours/Xen |", "|---|---|---|---|"]
out += ts_rows()
out += ["", "`free_pages` counts only what the hypervisors' page allocators hand out. Ours "
        "allocates a domain's structures (vCPUs, event channels, the scheduler's entry) from "
        "its 4 MiB heap, which the per-domain figure does not see; Xen takes them from its "
        "domain heap, so Xen's figure includes them.", ""]
def diskbench(text):
    """diskbench's figures in a log: MB/s for the sequential runs, IOPS for the random reads."""
    got = {}
    for m in re.finditer(r"diskbench: (\S+) (\d+) B in (\d+) us", text):
        mode, nbytes, us = m.group(1), int(m.group(2)), max(int(m.group(3)), 1)
        got[mode] = nbytes / us if mode.startswith("seq") else (nbytes / 4096) / (us / 1e6)
    return got

disk_ours, disk_direct = diskbench(read("disk-ours.log")), diskbench(read("disk-direct.log"))
if disk_ours or disk_direct:
    disk_rows = []
    for mode, what, unit in (("seqwrite", "sequential write, 1 MiB requests", "MB/s"),
                             ("seqread", "sequential read, 1 MiB requests", "MB/s"),
                             ("randread", "random 4 KiB reads", "IOPS")):
        o, d = disk_ours.get(mode), disk_direct.get(mode)
        fmt = (lambda v: "%.0f" % v) if unit == "IOPS" else (lambda v: "%.1f" % v)
        disk_rows.append("| %s | %s | %s | %s | %s |" % (
            what, unit, fmt(o) if o else "missing", fmt(d) if d else "missing",
            "%.2f" % (o / d) if o and d else "—"))
    print()
    print("\n".join(["| disk | unit | ours | direct | ours/direct |", "|---|---|---|---|---|"] + disk_rows))
    out_disk = ["### Disks", "",
        "Debian's cloud kernel (`scripts/linux-disk.sh`) runs `diskbench` "
        "(`scripts/lib/diskbench.c`: `%s`, every transfer `O_DIRECT`) on a second disk, under "
        "plain TCG: **ours** as a 256 MiB domU whose `xen-blkfront` talks to "
        "dom0's block backend (grant copies) over a dom0 memory disk (`mkdisk`: dom0 drives no "
        "virtio disk yet); **direct** as the only kernel on QEMU's virtio-blk (the host file, "
        "`cache=none`), the ceiling under this emulator. Wall-clock figures from the guest's "
        "clock, not under icount (a guest waiting for a host I/O idles, and icount's clock "
        "then jumps to its next timer): they move between runs and with the machine's load, "
        "and no check guards them. The two sides differ in where the data lives (dom0's "
        "memory against the host's file), so the ratio bounds the backend's cost rather than "
        "measuring it. Runs: `%s`. Goal: ours ≥ 0.8 of direct." % (
            versions.get("disk_job", "?").replace("DEV", "/dev/xvdb"), versions.get("disk_status", "?")), "",
        "| | unit | ours | direct | ours/direct |", "|---|---|---|---|---|"] + disk_rows + [""]
else:
    out_disk = []

out += out_disk
out += ["### Footprint: frames the hypervisor keeps", "",
        "Ours logs them at boot (`(HV) Hypervisor frames:`, 512 MiB machine, 131072 frames): "
        "%s." % (hvf.group(1) if hvf else "not found in the log"),
        "The frame table and the M2P grow with RAM (together about 20 bytes per frame); "
        "the rest is fixed. Xen prints no such line; the last row of the toolstack table is the "
        "comparable figure from `info` on both.", ""]
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
        "# the toolstack run: dom0-tools' dom0 with a ramdisk holding the script, guests/hello and guests/bench:",
        "scripts/dom0-ramdisk.sh ts.cpio bench=DIR boot/bench=%s" % versions.get("bench_bin", "?"),
        "HV_ARGS=dom0_mem=64M BOOT_NO_BUILD=1 QEMU_EXTRA=\"%s\" scripts/boot.sh \\" % versions.get("icount", ""),
        "    target/x86_64-unknown-none/release/dom0 script=/bench/toolstack.script stamps -- ts.cpio",
        "QEMU_EXTRA=\"%s\" scripts/boot-xen.sh \\" % versions.get("icount", ""),
        "    target/x86_64-unknown-none/release/dom0 script=/bench/toolstack.script stamps -- ts.cpio",
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
    # "- `a`, `b`: ..." lines cover each name they list before the colon.
    covered = set()
    for line in after.splitlines():
        if line.startswith("- "):
            covered.update(re.findall(r"`([a-z0-9_]+)`", line.split(":")[0]))
    missing = [n for n in slower if n not in covered]
    for n in missing:
        print("bench: %s is slower than Xen and has no '- `%s`: ...' line in the analysis" % (n, n), file=sys.stderr)
    for row in ts_rows():
        cells = [c.strip() for c in row.strip("|").split("|")]
        word = re.search(r"`(\w+)`", cells[0])
        try:
            slow = float(cells[3]) > 1.0
        except ValueError:
            slow = False
        if slow and word and "- `%s`" % word.group(1) not in after:
            print("bench: the toolstack's %s is slower than Xen and has no '- `%s`: ...' line in the analysis"
                  % (cells[0], word.group(1)), file=sys.stderr)
    print("bench: wrote %s" % doc, file=sys.stderr)
PY
exit $status
