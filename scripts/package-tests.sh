#!/usr/bin/env bash
# The Debian package on a machine of its own (scripts/package-deb.sh):
#   package-install  installs it with dpkg into a throwaway root (its own dpkg database,
#                    maintainer scripts run with DPKG_ROOT, as for any installation into
#                    another root): the files land, and the postinst built dom0's ramdisk
#                    from /etc/xen
#   package-grub     runs grub-mkconfig on that root (its /etc/grub.d: Debian's 00_header and
#                    the package's snippet, its /etc/default/rust-pv-hypervisor asking dom0
#                    to run the demo script) and checks the entry it made
#   package-boot     boots QEMU from a disk, not an ISO: an MBR disk image whose ext2
#                    partition holds the installed /boot and that grub.cfg, with GRUB's
#                    i386-pc boot sector and core image written in front of it; the
#                    hypervisor starts from the entry (console=com1,vga), dom0 runs the demo
#                    and powers off; its output is on the serial line and on the VGA screen,
#                    and keys typed on the keyboard (QEMU's sendkey) reach the debug keys
# Prints PASS/FAIL per case and "N passed, N failed"; exits non-zero on failure. Logs in
# TARGET_DIR/package/.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_all >&2 || exit 1
set +e # deps.sh sets -e; each case collects all its failures
export PATH=$PATH:/usr/sbin:/sbin
for t in dpkg grub-mkconfig grub-mkimage mke2fs; do
    command -v "$t" >/dev/null || { echo "FAIL package: need $t (grub-common, grub-pc-bin, e2fsprogs)"; exit 1; }
done

target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])') || exit 1
logs=$target_dir/package
mkdir -p "$logs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
errors=()
fail() { errors+=("$1"); }
verdict() { # NAME WHAT
    if [ ${#errors[@]} -eq 0 ]; then
        echo "PASS $1: $2"
        passed=$((passed + 1))
    else
        local IFS=';'
        echo "FAIL $1: ${errors[*]}"
        failed=$((failed + 1))
    fi
    errors=()
}

deb=$(scripts/package-deb.sh "$work/deb") || { echo "FAIL package: scripts/package-deb.sh failed"; exit 1; }

# package-install: dpkg into a root of its own.
sys=$work/root
mkdir -p "$sys/var/lib/dpkg/info" "$sys/var/lib/dpkg/updates" "$sys/boot/grub"
touch "$sys/var/lib/dpkg/status"
if ! dpkg --root="$sys" --force-script-chrootless --force-depends --force-not-root \
    --log="$logs/dpkg.log" -i "$deb" > "$logs/install.log" 2>&1; then
    fail "dpkg -i failed (log: $logs/install.log)"
fi
for f in boot/rust-pv-hypervisor boot/rust-pv-dom0 boot/rust-pv-dom0.cpio etc/xen/hello.cfg \
    etc/grub.d/20_rust_pv_hypervisor etc/default/rust-pv-hypervisor usr/sbin/update-rust-pv-dom0; do
    [ -s "$sys/$f" ] || fail "/$f not installed"
done
dpkg --root="$sys" -s rust-pv-hypervisor 2>/dev/null | grep -q '^Status: install ok installed' ||
    fail "dpkg does not list the package as installed"
cpio -t < "$sys/boot/rust-pv-dom0.cpio" 2>/dev/null | grep -qx 'etc/xen/hello.cfg' ||
    fail "the postinst's dom0 ramdisk has no etc/xen/hello.cfg"
verdict package-install "dpkg -i into a throwaway root; the postinst built dom0's ramdisk from /etc/xen"

# package-grub: grub-mkconfig with that root's /etc (a copy of the script with its sysconfdir
# moved there; it still probes the build machine's own devices, which the entry never uses).
cp /etc/grub.d/00_header "$sys/etc/grub.d/" 2>/dev/null ||
    cp "$(dpkg -L grub-common | grep '/etc/grub.d/00_header$')" "$sys/etc/grub.d/"
printf 'GRUB_DEFAULT=0\nGRUB_TIMEOUT=0\nGRUB_TERMINAL=serial\nGRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"\n' \
    > "$sys/etc/default/grub"
# dom0 runs the demo, then waits 5 s before it powers off: time to read the VGA screen.
{ cat "$sys/usr/lib/rust-pv-hypervisor/ramdisk/demo.script"; echo "sleep 5"; } > "$sys/etc/xen/test.script"
"$sys/usr/sbin/update-rust-pv-dom0" "$sys" > /dev/null || fail "update-rust-pv-dom0 failed"
sed -i 's|^GRUB_CMDLINE_RUST_PV_DOM0=.*|GRUB_CMDLINE_RUST_PV_DOM0="script=/etc/xen/test.script"|' \
    "$sys/etc/default/rust-pv-hypervisor"
sed "s|^sysconfdir=.*|sysconfdir=\"$sys/etc\"|" "$(command -v grub-mkconfig)" > "$work/grub-mkconfig"
cfg=$sys/boot/grub/grub.cfg
if ! RUST_PV_ROOT=$sys bash "$work/grub-mkconfig" -o "$cfg" > "$logs/grub-mkconfig.log" 2>&1; then
    fail "grub-mkconfig failed (log: $logs/grub-mkconfig.log)"
fi
cp "$cfg" "$logs/grub.cfg" 2>/dev/null
grep -q "^menuentry 'Rust PV hypervisor" "$cfg" || fail "no menu entry for the hypervisor"
grep -qE '^\s+multiboot2 /boot/rust-pv-hypervisor console=com1,vga dom0_mem=64M$' "$cfg" ||
    fail "no multiboot2 line with the default hypervisor options"
grep -qE '^\s+module2 /boot/rust-pv-dom0 script=/etc/xen/test.script$' "$cfg" || fail "no module2 line for dom0"
grep -qE '^\s+module2 /boot/rust-pv-dom0.cpio$' "$cfg" || fail "no module2 line for dom0's ramdisk"
grep -q 'Found the Rust PV hypervisor' "$logs/grub-mkconfig.log" || fail "the snippet did not report itself"
verdict package-grub "grub-mkconfig on the installed root makes the hypervisor's entry"

# package-boot: an MBR disk, one ext2 partition from sector 2048 holding /boot, GRUB's boot
# sector in front (its kernel sector is 1, where the core image goes) and the core image in
# the gap before the partition (grub-mkimage sets the core's own block list).
disk=$work/disk.img part=$work/part.img
mkdir -p "$work/fs/boot/grub/i386-pc"
cp -R "$sys/boot/." "$work/fs/boot/"
cp /usr/lib/grub/i386-pc/*.mod /usr/lib/grub/i386-pc/*.lst "$work/fs/boot/grub/i386-pc/"
sectors=$((64 * 2048))
if mke2fs -q -t ext2 -d "$work/fs" "$part" $(((sectors - 2048) / 2))k >/dev/null 2>&1 &&
    grub-mkimage -O i386-pc -o "$work/core.img" -p '(hd0,msdos1)/boot/grub' \
        biosdisk part_msdos ext2 2> "$logs/grub-mkimage.log" &&
    [ "$(stat -c %s "$work/core.img")" -lt $((2047 * 512)) ]; then
    truncate -s $((sectors * 512)) "$disk"
    dd if=/usr/lib/grub/i386-pc/boot.img of="$disk" bs=440 count=1 conv=notrunc status=none
    dd if="$work/core.img" of="$disk" bs=512 seek=1 conv=notrunc status=none
    dd if="$part" of="$disk" bs=512 seek=2048 conv=notrunc status=none
    python3 - "$disk" "$sectors" <<'MBR'
import struct, sys
path, sectors = sys.argv[1], int(sys.argv[2])
# One bootable Linux (0x83) partition from LBA 2048 to the end; CHS fields left as LBA-only.
entry = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff", 2048, sectors - 2048)
with open(path, "r+b") as f:
    f.seek(446)
    f.write(entry + bytes(48) + b"\x55\xaa")
MBR
    log=$logs/boot.log
    # QEMU in the background; once dom0 sleeps before powering off, its monitor saves the
    # VGA text buffer (80x25 cells of character and attribute) for the screen checks.
    timeout --foreground -k 5 180 qemu-system-x86_64 -accel tcg -cpu max -m 512 -smp 1 \
        -display none -monitor unix:"$work/monitor",server=on,wait=off -serial stdio -no-reboot \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
        -drive file="$disk",format=raw,if=ide < /dev/null > "$log.raw" 2>&1 &
    qemu=$!
    for _ in $(seq 1500); do
        grep -q '^xl> sleep 5' "$log.raw" 2>/dev/null && break
        kill -0 "$qemu" 2>/dev/null || break
        sleep 0.1
    done
    python3 - "$work/monitor" "$logs/vga.bin" <<'MONITOR' || fail "cannot save the VGA text buffer"
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"pmemsave 0xb8000 4000 \"%s\"\n" % sys.argv[2].encode())
for _ in range(50):
    time.sleep(0.1)
    try:
        if len(open(sys.argv[2], "rb").read()) == 4000:
            break
    except OSError:
        pass
# On the keyboard: Ctrl-A three times hands console input to the hypervisor, then the
# debug key h lists the debug keys.
for key in [b"ctrl-a"] * 3 + [b"h"]:
    s.sendall(b"sendkey %s\n" % key)
    time.sleep(0.2)
MONITOR
    wait "$qemu"
    status=$?
    tr -d '\r' < "$log.raw" > "$log"
    python3 -c 'import sys; b = open(sys.argv[1], "rb").read(); print("\n".join(bytes(b[r*160:(r+1)*160:2]).decode("cp437").rstrip() for r in range(25)))' \
        "$logs/vga.bin" > "$logs/vga.txt" 2>/dev/null
    grep -q "^(HV) 'h' pressed -> showing installed handlers" "$log" ||
        fail "keys typed on the keyboard did not reach the hypervisor's debug keys (log: $log)"
    grep -q '^xl> sleep 5$' "$logs/vga.txt" || fail "the VGA screen does not show dom0's last command (screen: $logs/vga.txt)"
    grep -qE '^Domain [0-9]+ \(sleeper2\)|^\[hello\]|^xl> info$' "$logs/vga.txt" ||
        fail "the VGA screen does not show the demo (screen: $logs/vga.txt)"
    [ "$status" -eq 33 ] || [ "$status" -eq 0 ] || fail "QEMU exit status $status, want a power off (log: $log)"
    grep -q '(HV) Powering off' "$log" || fail "no power off (log: $log)"
    grep -qE 'Domain [0-9]+ \(hello\)|\[hello\]' "$log" || fail "the demo's hello guest did not run (log: $log)"
    grep -q "Booting \`Rust PV hypervisor" "$log" || fail "GRUB did not boot the package's entry (log: $log)"
    # The demo's crash guest crashes on purpose; anything else the hypervisor calls an error fails.
    bad=$(grep -E '^\(HV\) (ERROR|PANIC|FATAL)' "$log" | grep -vE '^\(HV\) ERROR: d[0-9]+v0 crashed: unhandled #PF$' | head -n1 || true)
    [ -z "$bad" ] || fail "an error in the log: $bad"
else
    fail "cannot build the disk image (logs: $logs/grub-mkimage.log)"
fi
verdict package-boot "QEMU boots the installed entry from a GRUB disk; dom0 runs the demo on the serial line and the VGA screen, the keyboard types debug keys, power off"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
