#!/usr/bin/env bash
# Boots the hypervisor under QEMU (TCG) from a GRUB multiboot2 ISO, with KERNEL as dom0's
# kernel (multiboot2 module 0, ARGS its command line) and each further MODULE after a `--`
# (module 1 is dom0's ramdisk). The serial console is on stdout.
#
#   scripts/boot.sh [--disk FILE]... [--share DIR] KERNEL [ARGS...] [-- MODULE [ARGS...]]...
#   scripts/boot.sh none            # no dom0 module at all
#
# --disk FILE  a raw disk image as a virtio-blk-pci device (repeatable; dom0's /dev/vda,
#              /dev/vdb, ... in order); writes reach the file, and a flush dom0 completed is
#              on the host's disk (cache=writeback: QEMU fdatasyncs the file on each flush)
# --share DIR  the host folder DIR as a read-only FAT disk (QEMU's vvfat), after the --disk
#              ones; dom0 reads its files from it
#
# Environment:
#   BOOT_DISKS     disk images as for --disk, separated by spaces (before those given as options)
#   BOOT_SHARE     a folder as for --share (an option overrides it)
#   HV_ARGS        extra hypervisor command-line options (after console=com1)
#   BOOT_TIMEOUT   seconds before QEMU is killed (default 60)
#   BOOT_MEM       guest RAM in MiB (default 512)
#   BOOT_LOG       also write the serial output to this file
#   BOOT_NO_BUILD  set to 1 to use the existing hypervisor build
#   BOOT_STDIN     set to 1 to connect stdin to the serial console (to type on it)
#   QEMU_EXTRA     extra QEMU options
#   ACCEL          kvm, tcg or auto (default): KVM when a probe finds it working (cached in
#                  TARGET_DIR/accel; scripts/lib/accel.sh), else TCG; the choice is printed.
#                  With -icount in QEMU_EXTRA it is always TCG
#
# Exit status: 0 clean power off, 1 hypervisor crash (panic or fatal exception), 2 reboot,
# 3 reset without a message (e.g. triple fault), 4 QEMU or script error, 5 dom0 crashed
# (or could not be built), 124 timeout.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/deps.sh
source "$root/scripts/deps.sh"
# shellcheck source=scripts/lib/accel.sh
source "$root/scripts/lib/accel.sh"

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 4; }

# The disks: --disk and --share come before KERNEL.
# shellcheck disable=SC2206 # BOOT_DISKS is a list of words
disks=(${BOOT_DISKS:-})
share=${BOOT_SHARE:-}
while [ $# -ge 2 ]; do
    case $1 in
        --disk) disks+=("$2"); shift 2 ;;
        --share) share=$2; shift 2 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || usage
drives=()
n=0
for d in "${disks[@]}"; do
    [ -f "$d" ] || { echo "boot.sh: no such disk image: '$d'" >&2; exit 4; }
    drives+=(-drive "file=$d,format=raw,if=none,id=disk$n,cache=writeback"
        -device "virtio-blk-pci,drive=disk$n")
    n=$((n + 1))
done
if [ -n "$share" ]; then
    [ -d "$share" ] || { echo "boot.sh: no such folder to share: '$share'" >&2; exit 4; }
    case $share in *,* | *:*) echo "boot.sh: a shared folder's path cannot hold ',' or ':'" >&2; exit 4 ;; esac
    drives+=(-drive "file=fat:$share,format=raw,if=none,id=share,readonly=on"
        -device "virtio-blk-pci,drive=share")
fi

# Split the arguments into modules: each is "path args...".
modules=()
current=""
for arg in "$@"; do
    if [ "$arg" = "--" ]; then
        modules+=("$current"); current=""
    elif [ -z "$current" ]; then
        current="$arg"
    else
        current="$current $arg"
    fi
done
modules+=("$current")
if [ "${modules[0]}" = "none" ]; then
    [ ${#modules[@]} -eq 1 ] || { echo "boot.sh: 'none' takes no modules after it" >&2; exit 4; }
    modules=()
fi
for m in "${modules[@]}"; do
    path=${m%% *}
    [ -n "$path" ] && [ -f "$path" ] || { echo "boot.sh: no such file: '$path'" >&2; exit 4; }
done

deps_all >&2 || exit 4

target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
hv="$target_dir/x86_64-unknown-none/release/hypervisor"
if [ "${BOOT_NO_BUILD:-0}" != 1 ]; then
    (cd "$root" && cargo build -q --release -p hypervisor --target x86_64-unknown-none) >&2 || exit 4
fi
[ -f "$hv" ] || { echo "boot.sh: hypervisor not built: $hv" >&2; exit 4; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/iso/boot/grub"
cp "$hv" "$work/iso/boot/hypervisor"
{
    echo "set timeout=0"
    echo "set default=0"
    echo "menuentry \"hypervisor\" {"
    echo "    multiboot2 /boot/hypervisor console=com1 ${HV_ARGS:-}"
    i=0
    for m in "${modules[@]}"; do
        path=${m%% *}
        args=""
        [ "$m" != "$path" ] && args=${m#* }
        cp "$path" "$work/iso/boot/mod$i"
        echo "    module2 /boot/mod$i $args"
        i=$((i + 1))
    done
    echo "    boot"
    echo "}"
} > "$work/iso/boot/grub/grub.cfg"
grub-mkrescue -d /usr/lib/grub/i386-pc -o "$work/boot.iso" "$work/iso" >"$work/mkrescue.log" 2>&1 \
    || { cat "$work/mkrescue.log" >&2; echo "boot.sh: grub-mkrescue failed" >&2; exit 4; }

# icount (the benchmarks, the exit-time bound) counts TCG's instructions: no KVM for it.
case " ${QEMU_EXTRA:-} " in *" -icount "*) export ACCEL=tcg ;; esac
accel=$(accel_choose "$target_dir/accel") || exit 4
cpu=max
[ "$accel" = kvm ] && cpu=host
echo "boot.sh: QEMU with ${accel^^} (-cpu $cpu)" >&2
log=${BOOT_LOG:-$work/serial.log}
timeout_s=${BOOT_TIMEOUT:-60}
stdin=/dev/null
[ "${BOOT_STDIN:-0}" = 1 ] && stdin=/dev/stdin
set +e
# shellcheck disable=SC2086
timeout --foreground -k 5 "$timeout_s" qemu-system-x86_64 \
    -accel "$accel" -cpu "$cpu" -m "${BOOT_MEM:-512}" -smp 1 \
    -display none -monitor none -serial stdio -no-reboot \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -cdrom "$work/boot.iso" -boot d "${drives[@]}" ${QEMU_EXTRA:-} < "$stdin" | tee "$log"
rc=${PIPESTATUS[0]}
set -e

case $rc in
    0)
        if grep -q '(HV) Powering off' "$log"; then
            echo "boot.sh: machine powered off" >&2; exit 0
        elif grep -q '(HV) Rebooting' "$log"; then
            echo "boot.sh: machine rebooted" >&2; exit 2
        else
            echo "boot.sh: machine reset without a message (triple fault?)" >&2; exit 3
        fi ;;
    33) echo "boot.sh: machine powered off (debug-exit)" >&2; exit 0 ;;
    35) echo "boot.sh: hypervisor crashed" >&2; exit 1 ;;
    37) echo "boot.sh: dom0 crashed" >&2; exit 5 ;;
    124|137) echo "boot.sh: timeout after ${timeout_s}s" >&2; exit 124 ;;
    *) echo "boot.sh: QEMU failed with status $rc" >&2; exit 4 ;;
esac
