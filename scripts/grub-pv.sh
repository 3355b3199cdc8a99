#!/usr/bin/env bash
# Builds a third-party Xen PV64 test kernel: GRUB's Xen port (Debian's grub-xen-bin, built
# against Xen's public headers), with an embedded script that reports its verdict on the
# console and powers the domain off. It runs as a domU (it needs a console ring, a grant
# table and a xenstore ring, which dom0's toolstack services):
#
#   scripts/grub-pv.sh OUT        then, in dom0: create a config with kernel = OUT
#
# What it prints: "grub-pv: hello from GRUB on Xen PV" and "grub-pv: PASS", then it powers
# off (SCHEDOP_shutdown). scripts/dom0-tests.sh (case grub) runs it on ours and on Xen.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -eq 1 ] || { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
out=$1
modules=/usr/lib/grub/x86_64-xen
# shellcheck source=scripts/deps.sh
source "$root/scripts/deps.sh"
deps_install_system >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/grub.cfg" <<'CFG'
echo "grub-pv: hello from GRUB on Xen PV"
echo "grub-pv: PASS"
halt
CFG
grub-mkimage -O x86_64-xen -d "$modules" -c "$work/grub.cfg" -p /boot/grub -o "$out" echo halt
