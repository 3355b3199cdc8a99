#!/usr/bin/env bash
# Builds the dom0 ramdisk: a newc cpio archive (what the dom0 kernel reads its files from)
# holding dom0-tools/ramdisk/ (xl configs in /etc/xen, /demo.script), the guest kernels
# /boot/hello, /boot/crash and /boot/pingpong, and any further DEST=SRC (a host file or
# directory SRC at DEST in the archive).
#
#   scripts/dom0-ramdisk.sh OUT [DEST=SRC ...]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
[ $# -ge 1 ] || { sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
out=$1
shift

cargo build -q --release -p hello -p crash -p pingpong --target x86_64-unknown-none
cargo build -q -p dom0-tools --example mkramdisk
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
guests=$target_dir/x86_64-unknown-none/release
"$target_dir/debug/examples/mkramdisk" "$out" /=dom0-tools/ramdisk \
    boot/hello="$guests/hello" boot/crash="$guests/crash" boot/pingpong="$guests/pingpong" \
    "$@" >&2
