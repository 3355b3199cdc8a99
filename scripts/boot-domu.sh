#!/usr/bin/env bash
# Boots a Xen PV64 kernel as an unprivileged domain: the hypervisor starts dom0 (the
# toolstack), which creates the domain from KERNEL (an ELF file or a Linux bzImage) and
# shows its console as `[domu] ...`. For kernels that need a domU's devices (a console
# ring, a grant table, a xenstore ring), such as GRUB's Xen port (scripts/grub-pv.sh) or a
# distribution's Linux kernel (scripts/linux-tests.sh).
#
#   scripts/boot-domu.sh [--ramdisk FILE] [--memory MIB] [--vcpus N] [--wait-for TEXT]
#                        [--then COMMAND] KERNEL [ARGS...]
#
# ARGS are the domain's command line. --memory defaults to DOMU_MEMORY or 32, --vcpus to 1.
# dom0 waits DOMU_SECONDS (default 10), or with --wait-for (which may be repeated) until the
# domain printed each TEXT in turn (at most 60 s each: dom0's wait-for; a domain the
# toolstack restarted is waited for afresh), running each --then COMMAND (a dom0 prompt
# command, e.g. `shutdown -w domu`) where it stands among them, then 2 s more, then lists the
# domains and powers off. dom0 gets 64 MiB plus room for the images it carries
# (its ramdisk, and a bzImage's decompressed kernel), the machine that plus the domain and
# 128 MiB (at least 512 MiB); HV_ARGS and BOOT_MEM override.
# Environment: scripts/boot.sh's (BOOT_LOG, BOOT_TIMEOUT, ...).
# Exit status: 0 when the domain powered itself off, 1 when it crashed, 2 when it was still
# running or stopped otherwise, 4 for a QEMU or script error.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib/bzimage.sh
source scripts/lib/bzimage.sh
usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 4; }
ramdisk='' memory=${DOMU_MEMORY:-32} vcpus=1 wait_texts=() steps=()
while [ $# -gt 0 ]; do
    case $1 in
        --ramdisk) ramdisk=${2:?}; shift 2 ;;
        --memory) memory=${2:?}; shift 2 ;;
        --vcpus) vcpus=${2:?}; shift 2 ;;
        --wait-for)
            wait_texts+=("${2:?}")
            steps+=("$(printf 'wait-for domu "%s"' "$2")")
            shift 2
            ;;
        --then) steps+=("${2:?}"); shift 2 ;;
        -*) usage ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || usage
kernel=$1
shift
[ -f "$kernel" ] || { echo "boot-domu.sh: no such kernel: $kernel" >&2; exit 4; }
[ -z "$ramdisk" ] || [ -f "$ramdisk" ] || { echo "boot-domu.sh: no such ramdisk: $ramdisk" >&2; exit 4; }

# The decompressed size of a bzImage's kernel in MiB (0 for any other file): the setup
# header's payload ends with it (u32); an xz or lzma payload also needs its dictionary
# (64 MiB at most, 96 MiB while it grows), a zstd one the decoder's buffer (up to three times
# the kernel).
unpacked_mib() {
    local f=$1 start size dict=0
    bz_is_bzimage "$f" || { echo 0; return; }
    start=$(bz_payload_start "$f")
    size=$(bz_uint "$f" $((start + $(bz_payload_length "$f") - 4)) 4)
    case $(od -An -t x1 -j "$start" -N 2 "$f" | tr -d ' ') in
        fd37 | 5d00) dict=96 ;; # at its peak, the dictionary grows from 32 to 64 MiB
        28b5) dict=$((3 * (size >> 20) + 3)) ;;
    esac
    echo $(((size >> 20) + 1 + dict))
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
    printf 'name = "domu"\nkernel = "/boot/domu"\nmemory = %s\nvcpus = %s\ncmdline = "%s"\n' \
        "$memory" "$vcpus" "$*"
    [ -z "$ramdisk" ] || printf 'ramdisk = "/boot/domu-ramdisk"\n'
} > "$work/domu.cfg"
seconds=${DOMU_SECONDS:-10}
{
    echo "create /etc/xen/domu.cfg"
    if [ ${#steps[@]} -gt 0 ]; then
        # One wait-for per text: a wait-for for a domain that is gone (powered off and
        # destroyed) would wait its whole 60 s.
        printf '%s\n' "${steps[@]}"
        echo "sleep 2"
    else
        echo "sleep $seconds"
    fi
    echo "list"
} > "$work/script"
files=(script="$work/script" etc/xen/domu.cfg="$work/domu.cfg" boot/domu="$kernel")
[ -z "$ramdisk" ] || files+=(boot/domu-ramdisk="$ramdisk")
scripts/dom0-ramdisk.sh "$work/ramdisk.cpio" "${files[@]}"
cargo build -q --release -p dom0-tools --bin dom0 --target x86_64-unknown-none
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
dom0_mib=$((64 + ($(stat -c %s "$work/ramdisk.cpio") >> 20) + $(unpacked_mib "$kernel")))
log=${BOOT_LOG:-$work/serial.log}
status=0
machine_mib=$((dom0_mib + memory + 128))
[ "$machine_mib" -ge 512 ] || machine_mib=512
HV_ARGS=${HV_ARGS:-dom0_mem=${dom0_mib}M} BOOT_MEM=${BOOT_MEM:-$machine_mib} \
    BOOT_TIMEOUT=${BOOT_TIMEOUT:-$((seconds + 60 * ${#wait_texts[@]} + 60))} \
    BOOT_LOG=$log scripts/boot.sh "$target_dir/x86_64-unknown-none/release/dom0" script \
    -- "$work/ramdisk.cpio" || status=$?
[ "$status" -eq 0 ] || exit 4
if grep -q '^Domain [0-9]* (domu) has shut down, reason code 0 (poweroff)' "$log"; then
    exit 0
elif grep -q '^Domain [0-9]* (domu) has shut down, reason code 3 (crash)' "$log"; then
    exit 1
fi
exit 2
