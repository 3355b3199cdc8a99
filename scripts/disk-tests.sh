#!/usr/bin/env bash
# QEMU tests of the block backend with a stock Debian Linux domU (scripts/linux-disk.sh):
#
#   linux-disk-root   dom0 makes a memory disk from the guest's ext4 root image (mkdisk), a
#                     domU boots on it with root=/dev/xvda (xl's disk = [ 'phy:...,xvda,w' ]),
#                     writes a file with its SHA-256, syncs and powers off; a second domU on
#                     the same disk (the first released it at destroy) finds the file intact.
#                     Also: block-list shows the disk, a second writable attach is refused.
#   linux-disk-pattern a domU writes a 64 MiB random pattern to a second disk (xvdb), drops its
#                     page cache, reads it back and compares the SHA-256s (up to 5 minutes:
#                     under TCG most of it is the guest making and hashing the pattern).
#   linux-disk-shared two domUs at once, each on its own root disk, share one disk read-only
#                     (xvdb, access=r): both see it refuse a write.
#
#   scripts/disk-tests.sh
#
# Until dom0 drives virtio disks the disk lives in dom0's memory, so the whole-machine
# restart of the acceptance test is not run here. Prints PASS/FAIL per case and
# "N passed, N failed"; exits non-zero on failure. Serial log: TARGET_DIR/linux/disk-root.log.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])') || exit 1
mkdir -p "$target_dir/linux"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

scripts/linux-disk.sh --size 16 "$work/disk" >&2 || { echo "FAIL linux-disk: cannot build the guest"; exit 1; }

for n in 1 2; do
    jobs=write
    [ $n = 1 ] || jobs=check
    printf '%s\n' "name = \"disk$n\"" 'kernel = "/boot/vmlinuz"' 'ramdisk = "/boot/initrd"' \
        'memory = 256' "disk = [ 'phy:/dev/ram0,xvda,w' ]" \
        "cmdline = \"console=hvc0 root=/dev/xvda jobs=$jobs\"" > "$work/disk$n.cfg"
done
# NAME ROOT-DISK SECOND-DISK-SPEC JOBS: a config on ROOT-DISK with a second disk.
two_disks() {
    printf '%s\n' "name = \"$1\"" 'kernel = "/boot/vmlinuz"' 'ramdisk = "/boot/initrd"' \
        'memory = 192' 'on_poweroff = "preserve"' \
        "disk = [ 'phy:$2,xvda,w', '$3' ]" \
        "cmdline = \"console=hvc0 root=/dev/xvda jobdev=/dev/xvdb jobmib=64 jobs=$4\"" \
        > "$work/$1.cfg"
}
two_disks pattern /dev/ram0 'phy:/dev/ram1,xvdb,w' pattern
two_disks ro1 /dev/ram0 'phy:/dev/ram1,xvdb,r' readonly
two_disks ro2 /dev/ram2 'format=raw, vdev=xvdb, access=ro, target=/dev/ram1' readonly
head -c $((64 << 20)) /dev/zero > "$work/blank.img"
printf '%s\n' "name = \"other\"" 'kernel = "/boot/vmlinuz"' 'ramdisk = "/boot/initrd"' \
    'memory = 64' "disk = [ 'phy:/dev/ram0,xvda,r' ]" > "$work/other.cfg"
cat > "$work/script" <<'SCRIPT'
mkdisk /dev/ram0 /images/root.img
create /etc/xen/disk1.cfg
wait-for disk1 "linux-disk: root /dev/xvda mounted"
block-list disk1
create /etc/xen/other.cfg
wait-for disk1 "linux-disk: wrote"
sleep 6
list
create /etc/xen/disk2.cfg
wait-for disk2 "linux-disk: PASS check"
sleep 6
mkdisk /dev/ram1 /images/blank.img
mkdisk /dev/ram2 /images/root.img
create /etc/xen/pattern.cfg
wait-for pattern "linux-disk: PASS pattern"
wait-for pattern "linux-disk: PASS pattern"
wait-for pattern "linux-disk: PASS pattern"
wait-for pattern "linux-disk: PASS pattern"
wait-for pattern "linux-disk: PASS pattern"
sleep 2
destroy pattern
create /etc/xen/ro1.cfg
create /etc/xen/ro2.cfg
wait-for ro1 "linux-disk: PASS readonly"
wait-for ro2 "linux-disk: PASS readonly"
sleep 4
list
destroy ro1
destroy ro2
list
SCRIPT
scripts/dom0-ramdisk.sh "$work/ramdisk.cpio" script="$work/script" \
    etc/xen/disk1.cfg="$work/disk1.cfg" etc/xen/disk2.cfg="$work/disk2.cfg" \
    etc/xen/other.cfg="$work/other.cfg" etc/xen/pattern.cfg="$work/pattern.cfg" \
    etc/xen/ro1.cfg="$work/ro1.cfg" etc/xen/ro2.cfg="$work/ro2.cfg" \
    images/blank.img="$work/blank.img" boot/vmlinuz="$work/disk/vmlinuz" \
    boot/initrd="$work/disk/initrd.cpio" images/root.img="$work/disk/root.img" >&2 ||
    { echo "FAIL linux-disk-root: cannot build dom0's ramdisk"; exit 1; }
cargo build -q --release -p dom0-tools --bin dom0 --target x86_64-unknown-none || exit 1
log=$target_dir/linux/disk-root.log
dom0_mib=$((128 + 2 * ($(stat -c %s "$work/ramdisk.cpio") >> 20)))
HV_ARGS="dom0_mem=${dom0_mib}M" BOOT_MEM=$((dom0_mib + 768)) BOOT_TIMEOUT=${BOOT_TIMEOUT:-900} \
    BOOT_LOG=$log scripts/boot.sh "$target_dir/x86_64-unknown-none/release/dom0" script \
    -- "$work/ramdisk.cpio" > /dev/null 2>&1
has() { grep -q -- "$1" "$log"; }
case_ok=1
check() { has "$1" || { fail linux-disk-root "no '$1' (log: $log)"; case_ok=0; }; }
check '/dev/ram0: 32768 sectors in memory'
check 'linux-disk: root /dev/xvda mounted'
check '^51712 0 '
check 'ram0 is already in use: attached writable to domain'
check 'linux-disk: wrote'
check 'linux-disk: PASS check'
if has 'linux-disk: FAIL' || has 'cannot connect' || has 'ring indexes are corrupt' ||
    has 'flush op failed'; then
    fail linux-disk-root "an error in the log ($log)"
    case_ok=0
fi
wrote=$(grep -o 'linux-disk: wrote [0-9a-f]*' "$log" | head -1 | awk '{print $3}')
checked=$(grep -o 'linux-disk: PASS check [0-9a-f]*' "$log" | head -1 | awk '{print $4}')
if [ "$case_ok" = 1 ] && [ -n "$wrote" ] && [ "$wrote" = "$checked" ]; then
    pass linux-disk-root
elif [ "$case_ok" = 1 ]; then
    fail linux-disk-root "sums differ: wrote '$wrote', checked '$checked'"
fi
if has 'linux-disk: PASS pattern 64 MiB'; then
    pass linux-disk-pattern
else
    fail linux-disk-pattern "no 'PASS pattern 64 MiB' (log: $log)"
fi
if has '^\[ro1\] linux-disk: PASS readonly' && has '^\[ro2\] linux-disk: PASS readonly'; then
    pass linux-disk-shared
else
    fail linux-disk-shared "not both of ro1 and ro2 passed 'readonly' (log: $log)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
