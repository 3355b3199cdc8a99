#!/usr/bin/env bash
# Boots real Xen 4.17 (Debian's xen-hypervisor-4.17-amd64) under QEMU TCG with KERNEL as
# dom0, the serial console on stdout: the reference our own hypervisor is checked against.
#
#   scripts/boot-xen.sh KERNEL [ARGS...] [-- MODULE [ARGS...]]...
#
# KERNEL is the dom0 kernel and ARGS its command line; each MODULE after a `--` is one
# more multiboot module (the first is dom0's ramdisk), with its own command line.
#
# Environment:
#   BOOT_TIMEOUT  seconds before QEMU is stopped (default 120)
#   XEN_ARGS      extra Xen command-line options (e.g. "dom0_mem=128M,max:128M")
#   BOOT_LOG      also keep the serial output in this file
#   BOOT_STDIN    set to 1 to connect stdin to the serial console
#   XEN_BUILD_DIR where the Xen package is unpacked (default build/xen)
#   QEMU_EXTRA    extra QEMU options (a later -cpu replaces -cpu max)
#
# Exit status, from Xen's own messages on the serial console:
#   0    dom0 powered off ("Hardware Dom0 halted")
#   1    dom0 crashed ("Hardware Dom0 crashed")
#   2    dom0 rebooted or shut down otherwise ("Hardware Dom0 shutdown")
#   3    Xen panicked
#   4    QEMU stopped without any of these
#   124  timeout
#   64   usage error, 69 Xen or QEMU unavailable
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
XEN_BUILD_DIR=${XEN_BUILD_DIR:-$root/build/xen}
XEN_PACKAGE=xen-hypervisor-4.17-amd64

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 64
}

# Prints the path of the gunzipped Xen binary, downloading and unpacking the Debian
# package on first use (not installing it: its postinst would touch GRUB).
xen_binary() {
    local xen=$XEN_BUILD_DIR/xen
    if [ ! -s "$xen" ]; then
        mkdir -p "$XEN_BUILD_DIR" || return 1
        if ! ls "$XEN_BUILD_DIR"/"$XEN_PACKAGE"_*.deb >/dev/null 2>&1; then
            (cd "$XEN_BUILD_DIR" && apt-get download "$XEN_PACKAGE" >&2) || {
                echo "boot-xen: cannot download $XEN_PACKAGE (needs Debian 12's apt sources)" >&2
                return 1
            }
        fi
        dpkg-deb -x "$(ls "$XEN_BUILD_DIR"/"$XEN_PACKAGE"_*.deb | head -n1)" "$XEN_BUILD_DIR/root" &&
            gunzip -c "$XEN_BUILD_DIR"/root/boot/xen-4.17-amd64.gz > "$xen.tmp" &&
            mv "$xen.tmp" "$xen" || return 1
    fi
    echo "$xen"
}

# Joins the arguments into QEMU's -initrd list: modules separated by ',', each "PATH ARGS",
# with commas inside a module doubled as QEMU wants.
initrd_list() {
    local list="" module="" arg
    for arg in "$@" --; do
        if [ "$arg" = "--" ]; then
            [ -n "$module" ] || usage
            list="${list:+$list,}${module//,/,,}"
            module=""
        else
            module="${module:+$module }$arg"
        fi
    done
    echo "$list"
}

# The exit status the serial log implies, or nothing.
status_from_log() {
    local log=$1
    if grep -q "Hardware Dom0 halted" "$log"; then echo 0
    elif grep -q "Hardware Dom0 crashed" "$log"; then echo 1
    elif grep -q "Hardware Dom0 shutdown" "$log"; then echo 2
    elif grep -q "Panic on CPU" "$log"; then echo 3
    fi
}

main() {
    [ $# -ge 1 ] && [ "$1" != "--" ] && [ "$1" != "-h" ] && [ "$1" != "--help" ] || usage
    [ -f "$1" ] || { echo "boot-xen: no such kernel: $1" >&2; exit 64; }
    if ! command -v qemu-system-x86_64 >/dev/null; then
        # shellcheck source=deps.sh
        source "$root/scripts/deps.sh" && deps_install_system || exit 69
    fi
    local xen initrd timeout_s log status rc qemu tailer
    xen=$(xen_binary) || exit 69
    initrd=$(initrd_list "$@")
    timeout_s=${BOOT_TIMEOUT:-120}
    log=${BOOT_LOG:-$(mktemp)}
    : > "$log"
    qemu=""
    # Whatever ends this script also ends QEMU; a temporary log goes too.
    trap 'cleanup' EXIT
    trap 'exit 130' INT TERM
    cleanup() {
        [ -z "$qemu" ] || kill "$qemu" 2>/dev/null
        [ -n "${BOOT_LOG:-}" ] || rm -f "$log"
    }

    stdin=/dev/null
    [ "${BOOT_STDIN:-0}" = 1 ] && stdin=/dev/stdin
    # shellcheck disable=SC2086 # QEMU_EXTRA is a list of options
    timeout "$timeout_s" qemu-system-x86_64 -accel tcg -cpu max -m 512 \
        -display none -monitor none -serial stdio -no-reboot \
        -kernel "$xen" -initrd "$initrd" \
        -append "console=com1 com1=115200,8n1 dom0_mem=64M,max:64M noreboot guest_loglvl=all ${XEN_ARGS:-}" \
        ${QEMU_EXTRA:-} < "$stdin" > "$log" 2>&1 &
    qemu=$!
    tail -n +1 -f --pid="$qemu" "$log" &
    tailer=$!

    status=""
    while kill -0 "$qemu" 2>/dev/null; do
        status=$(status_from_log "$log")
        [ -z "$status" ] || break
        sleep 0.2
    done
    if [ -n "$status" ]; then
        sleep 0.5 # let the last lines reach the log
        kill "$qemu" 2>/dev/null
        wait "$qemu" 2>/dev/null
    else
        wait "$qemu"
        rc=$?
        status=$(status_from_log "$log")
        if [ -z "$status" ]; then
            if [ "$rc" -eq 124 ]; then status=124; else status=4; fi
        fi
    fi
    wait "$tailer" 2>/dev/null
    case $status in
        124) echo "boot-xen: timeout after ${timeout_s}s" >&2 ;;
        0) ;;
        *) echo "boot-xen: dom0 did not power off cleanly (status $status)" >&2 ;;
    esac
    exit "$status"
}

main "$@"
