#!/usr/bin/env bash
# Boots a Xen PV64 kernel as an unprivileged domain: the hypervisor starts dom0 (the
# toolstack), which creates the domain from KERNEL and shows its console as `[domu] ...`.
# For kernels that need a domU's devices (a console ring, a grant table, a xenstore ring),
# such as GRUB's Xen port (scripts/grub-pv.sh).
#
#   scripts/boot-domu.sh KERNEL [ARGS...]
#
# Environment: DOMU_MEMORY (MiB, default 32), DOMU_SECONDS (how long dom0 waits before it
# lists the domains and powers off, default 10), and scripts/boot.sh's (BOOT_LOG, ...).
# Exit status: 0 when the domain powered itself off, 1 when it crashed, 2 when it was still
# running or stopped otherwise, 4 for a QEMU or script error.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
[ $# -ge 1 ] || { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 4; }
kernel=$1
shift
[ -f "$kernel" ] || { echo "boot-domu.sh: no such kernel: $kernel" >&2; exit 4; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'name = "domu"\nkernel = "/boot/domu"\nmemory = %s\ncmdline = "%s"\n' \
    "${DOMU_MEMORY:-32}" "$*" > "$work/domu.cfg"
printf 'create /etc/xen/domu.cfg\nsleep %s\nlist\n' "${DOMU_SECONDS:-10}" > "$work/script"
scripts/dom0-ramdisk.sh "$work/ramdisk.cpio" script="$work/script" \
    etc/xen/domu.cfg="$work/domu.cfg" boot/domu="$kernel"
cargo build -q --release -p dom0-tools --bin dom0 --target x86_64-unknown-none
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
log=${BOOT_LOG:-$work/serial.log}
status=0
HV_ARGS=${HV_ARGS:-dom0_mem=64M} BOOT_TIMEOUT=${BOOT_TIMEOUT:-$((${DOMU_SECONDS:-10} + 60))} \
    BOOT_LOG=$log scripts/boot.sh "$target_dir/x86_64-unknown-none/release/dom0" script \
    -- "$work/ramdisk.cpio" || status=$?
[ "$status" -eq 0 ] || exit 4
if grep -q '^Domain [0-9]* (domu) has shut down, reason code 0 (poweroff)' "$log"; then
    exit 0
elif grep -q '^Domain [0-9]* (domu) has shut down, reason code 3 (crash)' "$log"; then
    exit 1
fi
exit 2
