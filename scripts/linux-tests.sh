#!/usr/bin/env bash
# A stock Linux kernel as a PV domU: Debian's linux-image-cloud-amd64, its bzImage as
# shipped (/boot/vmlinuz-*, LZ4 payload, Xen PV support built in), is created by dom0's
# toolstack, which decompresses it, with a busybox initramfs whose /init prints a verdict
# and powers off. One boot per memory size (default 128 256 512 1024 MiB) with
# scripts/boot-domu.sh; each checks the kernel's own boot lines, that no W+X mapping is
# left ("Checked W+X mappings: passed"), the verdict, the clean power off and that the
# hypervisor logged no error. Then one more boot at 256 MiB that stays up (linux-pv-stay):
# its /init reads the domain's own nodes through the kernel's xenbus (/proc/xen/xenbus, with
# Debian's xenfs module), dom0 reboots it with `reboot -w` and, once it is back, powers it off
# with `shutdown -w`, both through control/shutdown; LINUX_STORE=0 leaves it out. Last, a
# 2-vCPU domU (linux-smp) takes its CPU 1 offline and back; LINUX_SMP=0 leaves it out.
#
#   scripts/linux-tests.sh [MIB...]
#   LINUX_PAYLOADS="xz zstd" scripts/linux-tests.sh 256
#
# LINUX_PAYLOADS names the payloads to boot (default "shipped", the bzImage as shipped); xz,
# zstd, gzip and lzma boot the same kernel recompressed on the host as Linux's build would
# (xz --x86 with a 32 MiB dictionary, zstd -22 --ultra from a pipe, gzip -9, lzma -9), the bzImage's
# payload and payload_length replaced: dom0's other decoders on a real kernel, and its
# memory sizing for them.
# The packages come from Debian's archive (apt-get download, cached in TARGET_DIR/linux;
# nothing is committed). Prints PASS/FAIL per boot and "N passed, N failed"; exits
# non-zero on failure. Serial logs: TARGET_DIR/linux/boot-linux[-PAYLOAD]-MIB.log.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
# shellcheck source=scripts/lib/bzimage.sh
source scripts/lib/bzimage.sh
# shellcheck source=scripts/lib/debian_linux.sh
source scripts/lib/debian_linux.sh
deps_all >&2 || exit 1
# cpio builds the initramfs, lz4, xz-utils and zstd recompress (LINUX_PAYLOADS); apt-get
# download needs current package lists.
tools=(cpio)
[ "${LINUX_PAYLOADS:-shipped}" = shipped ] || tools+=(lz4 xz:xz-utils zstd)
debian_linux_need "${tools[@]}" || exit 1

target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])') || exit 1
cache=$target_dir/linux
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(128 256 512 1024)

# The kernel and busybox, from Debian's archive (once).
debian_linux_fetch "$cache" || { echo "FAIL linux: cannot fetch Debian's kernel and busybox"; exit 1; }

# The shipped bzImage with its payload recompressed as FORMAT (Linux's options; the
# decompressed size appended as Linux's build does, gzip's trailer being that already).
le32() { python3 -c 'import struct,sys; sys.stdout.buffer.write(struct.pack("<I", int(sys.argv[1])))' "$1"; }
recompress() {
    local format=$1 out=$work/vmlinuz-$1 start
    start=$(bz_payload_start "$shipped")
    bz_bytes "$shipped" "$start" $(($(bz_payload_length "$shipped") - 4)) |
        lz4 -d -c > "$work/vmlinux" || return 1
    case $format in
        xz) xz --check=crc32 --x86 --lzma2=,dict=32MiB -T1 -c "$work/vmlinux" ;;
        zstd) cat "$work/vmlinux" | zstd -q -22 --ultra -c ;; # piped: a 128 MiB window
        lzma) lzma -9 -c "$work/vmlinux" ;;
        gzip) gzip -9 -n -c "$work/vmlinux" ;;
        *) return 1 ;;
    esac > "$work/payload" || return 1
    [ "$format" = gzip ] || le32 "$(stat -c %s "$work/vmlinux")" >> "$work/payload"
    {
        bz_bytes "$shipped" 0 588
        le32 "$(stat -c %s "$work/payload")" # payload_length
        bz_bytes "$shipped" 592 $((start - 592))
        cat "$work/payload"
    } > "$out"
    rm -f "$work/vmlinux" "$work/payload"
}

# The initramfs: busybox and an /init that reports and powers off.
mkdir -p "$work/initramfs/bin" "$work/initramfs/sbin" "$work/initramfs/proc" "$work/initramfs/dev" \
    "$work/initramfs/lib"
cp "$linux_root/bin/busybox" "$work/initramfs/bin/busybox"
# xenfs (and xen-privcmd, which it needs) are modules in Debian's kernel: /proc/xen/xenbus
# lets /init read the store.
for m in xen-privcmd xenfs; do
    cp "$(debian_linux_module $m)" "$work/initramfs/lib/" || exit 1
done
cat > "$work/initramfs/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox echo "linux-pv: init running, $(/bin/busybox cat /proc/version)"
/bin/busybox echo "linux-pv: $(/bin/busybox grep -c ^processor /proc/cpuinfo) CPU, $(/bin/busybox grep MemTotal /proc/meminfo)"
if /bin/busybox grep -q linux-pv-smp /proc/cmdline; then
    # Several vCPUs: take CPU 1 offline (VCPUOP_down) and back (VCPUOP_up).
    /bin/busybox mkdir -p /sys
    /bin/busybox mount -t sysfs sysfs /sys
    cpus=/sys/devices/system/cpu
    /bin/busybox echo "linux-pv: online CPUs $(/bin/busybox cat $cpus/online)"
    /bin/busybox echo 0 > $cpus/cpu1/online
    /bin/busybox echo "linux-pv: after unplug $(/bin/busybox cat $cpus/online)"
    /bin/busybox echo 1 > $cpus/cpu1/online
    /bin/busybox echo "linux-pv: after replug $(/bin/busybox cat $cpus/online)"
fi
/bin/busybox echo "linux-pv: PASS"
if ! /bin/busybox grep -q linux-pv-stay /proc/cmdline; then
    /bin/busybox poweroff -f
fi
# Stay up, for dom0 to shut down or reboot through the store. First read our own nodes
# (XS_READ of "name" and "domid", relative to /local/domain/N) through the kernel's xenbus.
/bin/busybox insmod /lib/xen-privcmd.ko
/bin/busybox insmod /lib/xenfs.ko
/bin/busybox mkdir -p /proc/xen
/bin/busybox mount -t xenfs xenfs /proc/xen
exec 3<>/proc/xen/xenbus
read_node() {
    /bin/busybox printf "\002\000\000\000\001\000\000\000\000\000\000\000\\$(/bin/busybox printf %03o $((${#1} + 1)))\000\000\000$1\000" >&3
    /bin/busybox dd bs=256 count=1 <&3 2>/dev/null | /bin/busybox tail -c +17
}
/bin/busybox echo "linux-pv: the store says name=$(read_node name) domid=$(read_node domid)"
exec 3>&-
while true; do /bin/busybox sleep 1; done
INIT
# What the kernel runs when the store asks it to power off (orderly_poweroff; its output
# goes nowhere).
cat > "$work/initramfs/sbin/poweroff" <<'POWEROFF'
#!/bin/busybox sh
/bin/busybox poweroff -f
POWEROFF
chmod 755 "$work/initramfs/init" "$work/initramfs/sbin/poweroff"
(cd "$work/initramfs" && find . | LC_ALL=C sort | cpio -o -H newc --quiet > "$work/initramfs.cpio") || exit 1

# A case collects its errors against its serial log ($log and errors are the caller's
# locals), then says PASS or FAIL in one line.
fail() { errors+=("$1"); }
has() { grep -qE -- "$1" "$log" || fail "missing /$1/"; }
reject() { if grep -qE "$1" "$log"; then fail "an error in the log: $(grep -m1 -E "$1" "$log")"; fi; }
verdict() { # NAME WHAT START
    if [ ${#errors[@]} -eq 0 ]; then
        echo "PASS $1: $2 ($(($(date +%s) - $3)) s)"
        return 0
    fi
    local IFS=';'
    echo "FAIL $1: ${errors[*]} (log: $log)"
    return 1
}
tally() { if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi; }

# One boot of bzImage $1 (payload $2) as a $3 MiB domU; prints PASS or FAIL and the reasons.
boot_one() {
    local bzimage=$1 payload=$2 mib=$3 name=linux log status start errors=()
    [ "$payload" = shipped ] || name=linux-$payload
    log=$cache/boot-$name-$mib.log
    start=$(date +%s)
    # Linux reaches /init within 60 s of its creation, and its verdict right after.
    BOOT_TIMEOUT=${LINUX_TIMEOUT:-300} BOOT_LOG=$log.raw \
        scripts/boot-domu.sh --ramdisk "$work/initramfs.cpio" --memory "$mib" \
        --wait-for "Run /init as init process" --wait-for "linux-pv: PASS" \
        "$bzimage" console=hvc0 > /dev/null 2> "$cache/boot-$name-$mib.err"
    status=$?
    tr -d '\r' < "$log.raw" > "$log"
    [ "$status" -eq 0 ] || fail "boot-domu.sh exit status $status, want 0 (power off)"
    has '^\[domu\] .*Linux version [0-9.]+-[0-9]+-cloud-amd64'
    has '^\[domu\] .*Booting kernel on Xen'
    has '^\[domu\] .*installing Xen timer for CPU 0'
    has '^\[domu\] .*x86/mm: Checked W\+X mappings: passed, no W\+X pages found'
    has '^\[domu\] .*Run /init as init process'
    has '^\[domu\] linux-pv: init running'
    has '^\[domu\] linux-pv: PASS$'
    has '^Domain [0-9]+ \(domu\) has shut down, reason code 0 \(poweroff\); destroying$'
    reject '^\(HV\) (ERROR|PANIC|FATAL)|Kernel panic|BUG:|insecure W\+X|W\+X mappings: FAILED'
    verdict "$name-$mib" "$kpkg's bzImage ($payload payload) as a ${mib} MiB domU, no W+X, busybox init, power off" "$start"
}

passed=0
failed=0
read -r -a payloads <<< "${LINUX_PAYLOADS:-shipped}"
for payload in "${payloads[@]}"; do
    bzimage=$shipped
    if [ "$payload" != shipped ]; then
        bzimage=$work/vmlinuz-$payload
        if ! recompress "$payload"; then
            echo "FAIL linux-$payload: cannot recompress the kernel as $payload"
            failed=$((failed + 1))
            continue
        fi
    fi
    for mib in "${sizes[@]}"; do
        tally boot_one "$bzimage" "$payload" "$mib"
    done
done
# The store: the kernel stays up (linux-pv-stay) and reads its own nodes through xenbus;
# dom0 reboots it through control/shutdown (the toolstack restarts it after its 2 s restart
# delay, so the script sleeps before it waits for the new one), then shuts it down the same
# way; both times the kernel acts on the request itself.
store_case() {
    local log=$cache/boot-linux-store.log status start errors=()
    start=$(date +%s)
    BOOT_TIMEOUT=${LINUX_TIMEOUT:-300} BOOT_LOG=$log.raw \
        scripts/boot-domu.sh --ramdisk "$work/initramfs.cpio" --memory 256 \
        --wait-for "linux-pv: the store says" --then "reboot -w domu" \
        --then "sleep 4" \
        --wait-for "linux-pv: the store says" --then "shutdown -w domu" \
        "$shipped" console=hvc0 linux-pv-stay > /dev/null 2> "$cache/boot-linux-store.err"
    status=$?
    tr -d '\r' < "$log.raw" > "$log"
    [ "$status" -eq 0 ] || fail "boot-domu.sh exit status $status, want 0 (power off)"
    local said
    said=$(grep -cE '^\[domu\] linux-pv: the store says name=domu domid=[0-9]+$' "$log")
    [ "$said" -eq 2 ] || fail "the store read $said times, want 2 (before and after the reboot)"
    has '^Domain [0-9]+ \(domu\) has shut down, reason code 1 \(reboot\)'
    has 'restarted as domain [0-9]+'
    has '^\[domu\] .*reboot: (System halted|Power down)'
    has '^Domain [0-9]+ \(domu\) has shut down, reason code 0 \(poweroff\); destroying$'
    reject '^\(HV\) (ERROR|PANIC|FATAL)|Kernel panic|BUG:|does not act on control/shutdown|did not act on control/shutdown'
    verdict linux-store "xenbus reads its own nodes; reboot and shutdown through control/shutdown, acted on by the kernel" "$start"
}
if [ "${LINUX_PAYLOADS:-shipped}" = shipped ] && [ "${LINUX_STORE:-1}" = 1 ]; then
    tally store_case
fi
# Two vCPUs: the kernel brings CPU 1 up (VCPUOP_register_vcpu_info for a vCPU that is down,
# VCPUOP_initialise, VCPUOP_up), then /init takes it offline (VCPUOP_down from the CPU itself)
# and back online.
smp_case() {
    local log=$cache/boot-linux-smp.log status start errors=()
    start=$(date +%s)
    BOOT_TIMEOUT=${LINUX_TIMEOUT:-300} BOOT_LOG=$log.raw \
        scripts/boot-domu.sh --ramdisk "$work/initramfs.cpio" --memory 256 --vcpus 2 \
        --wait-for "linux-pv: PASS" \
        "$shipped" console=hvc0 linux-pv-smp > /dev/null 2> "$cache/boot-linux-smp.err"
    status=$?
    tr -d '\r' < "$log.raw" > "$log"
    [ "$status" -eq 0 ] || fail "boot-domu.sh exit status $status, want 0 (power off)"
    has '^\[domu\] .*smp: Brought up 1 node, 2 CPUs'
    has '^\[domu\] linux-pv: online CPUs 0-1$'
    has '^\[domu\] linux-pv: after unplug 0$'
    has '^\[domu\] linux-pv: after replug 0-1$'
    has '^\[domu\] linux-pv: PASS$'
    has '^Domain [0-9]+ \(domu\) has shut down, reason code 0 \(poweroff\); destroying$'
    reject '^\(HV\) (ERROR|PANIC|FATAL)|Kernel panic|BUG:|general protection'
    verdict linux-smp "a 2-vCPU domU brings CPU 1 up, takes it offline and back" "$start"
}
if [ "${LINUX_PAYLOADS:-shipped}" = shipped ] && [ "${LINUX_SMP:-1}" = 1 ]; then
    tally smp_case
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
