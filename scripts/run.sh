#!/usr/bin/env bash
# The demo: boots the hypervisor in QEMU with the dom0 kernel (dom0-tools' `dom0` binary,
# the toolstack on the console) and its ramdisk (scripts/dom0-ramdisk.sh: xl configs in
# /etc/xen, guests/hello and guests/crash in /boot), and shows the serial console.
#
#   scripts/run.sh                 on a terminal: the `xl> ` prompt (`help` lists the
#                                  commands, `poweroff` ends); with stdin not a terminal:
#                                  runs the ramdisk's /demo.script and powers off
#   scripts/run.sh --script FILE   runs the commands in FILE and powers off
#   --disk FILE (repeatable), --share DIR, before or after --script: disks for dom0, as
#                                  scripts/boot.sh takes them (docs/DEVICES.md)
#
# Environment: as for scripts/boot.sh (HV_ARGS, default dom0_mem=64M; BOOT_TIMEOUT,
# default 300 s for a script, a day on a terminal; BOOT_MEM; BOOT_LOG; QEMU_EXTRA;
# BOOT_DISKS; BOOT_SHARE).
# Exit status: scripts/boot.sh's (0 = powered off).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 4; }

script=""
disk_opts=()
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case $1 in
        --script)
            [ -f "$2" ] || { echo "run.sh: no such script: $2" >&2; exit 4; }
            script=$2 ;;
        --disk | --share) disk_opts+=("$1" "$2") ;;
        *) usage ;;
    esac
    shift 2
done

# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_all >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build -q --release -p dom0-tools --bin dom0 --target x86_64-unknown-none
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
dom0=$target_dir/x86_64-unknown-none/release/dom0

if [ -n "$script" ]; then
    scripts/dom0-ramdisk.sh "$work/ramdisk.cpio" script="$script"
    args=(script)
elif [ -t 0 ]; then
    scripts/dom0-ramdisk.sh "$work/ramdisk.cpio"
    args=()
    export BOOT_STDIN=1 BOOT_TIMEOUT=${BOOT_TIMEOUT:-86400}
    echo "run.sh: type 'help' at the xl> prompt; 'poweroff' ends (Ctrl-C stops QEMU)" >&2
else
    scripts/dom0-ramdisk.sh "$work/ramdisk.cpio"
    args=(script=/demo.script)
fi
export HV_ARGS=${HV_ARGS:-dom0_mem=64M} BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
status=0
scripts/boot.sh "${disk_opts[@]}" "$dom0" "${args[@]}" -- "$work/ramdisk.cpio" || status=$?
exit "$status"
