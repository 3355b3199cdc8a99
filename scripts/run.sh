#!/usr/bin/env bash
# The demo: boots the hypervisor in QEMU with guests/hello as dom0 and shows the serial console.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_all

cargo build -q --release -p hypervisor -p hello --target x86_64-unknown-none
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$root/scripts/boot.sh" "$target_dir/x86_64-unknown-none/release/hello" demo=1 "$@"
