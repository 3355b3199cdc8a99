#!/usr/bin/env bash
# The demo: boots the hypervisor in QEMU with the demo dom0 kernel and shows the serial console.
# Today the hypervisor reports the dom0 kernel it was given and powers off.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_all

kernel=$(mktemp)
trap 'rm -f "$kernel"' EXIT
printf 'demo dom0 kernel placeholder\n' > "$kernel"
exec "$root/scripts/boot.sh" "$kernel" demo=1 "$@"
