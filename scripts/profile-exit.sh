#!/usr/bin/env bash
# Where the instructions of one guest exit go: boots guests/bench as dom0 on our hypervisor
# under QEMU's gdb stub, stops at the Nth `syscall` into the hypervisor with hypercall number
# NR in rax (default: the 60th xen_version, inside the null_hypercall benchmark loop), then
# single-steps until the return to the guest (`return_to_guest_iretq`) and prints how many
# instructions ran in each function, in the order they ran (consecutive steps in the same
# function are counted together).
#
#   scripts/profile-exit.sh [NR [N]]
#
# Needs gdb. A tool for working on the hot paths (docs/PERFORMANCE.md); not a test.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
nr=${1:-17}
skip=${2:-60}
command -v gdb >/dev/null || { echo "profile-exit: needs gdb (apt-get install gdb)" >&2; exit 1; }
cargo build -q --release -p hypervisor -p bench --target x86_64-unknown-none
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
hv=$target_dir/x86_64-unknown-none/release/hypervisor
bench=$target_dir/x86_64-unknown-none/release/bench
entry=$(nm "$hv" | awk '$3 == "syscall_entry" { print $1 }')
exit_pc=$(nm "$hv" | awk '$3 == "return_to_guest_iretq" { print $1 }')
work=$(mktemp -d)
trap 'rm -rf "$work"; kill "$qemu_pid" 2>/dev/null || true' EXIT

cat > "$work/trace.gdb" <<GDB
set pagination off
set confirm off
target remote :1234
hbreak *0x$entry if \$rax == $nr
set \$n = 0
while \$n < $skip
  continue
  set \$n = \$n + 1
end
delete
set logging file $work/pcs
set logging overwrite on
set logging redirect on
set logging enabled on
set \$count = 0
while \$pc != 0x$exit_pc && \$count < 100000
  printf "%lx\n", \$pc
  stepi
  set \$count = \$count + 1
end
set logging enabled off
kill
quit
GDB
BOOT_NO_BUILD=1 BOOT_TIMEOUT=600 BOOT_LOG="$work/boot.log" QEMU_EXTRA="-s -S" \
    scripts/boot.sh "$bench" >/dev/null 2>&1 &
qemu_pid=$!
sleep 2
timeout 500 gdb -q -batch -x "$work/trace.gdb" >/dev/null 2>&1 || true
grep -E '^[0-9a-f]+$' "$work/pcs" > "$work/pcs.hex" || { echo "profile-exit: no trace" >&2; exit 1; }
echo "profile-exit: hypercall $nr, call $skip: $(wc -l < "$work/pcs.hex") instructions from syscall_entry to the iretq"
sed 's/^/0x/' "$work/pcs.hex" | addr2line -f -C -e "$hv" | awk 'NR % 2 == 1' |
    sed -e 's/<.*//' -e 's/^$/(unknown)/' | uniq -c
