#!/usr/bin/env bash
# Builds a Linux guest that lives on a disk, from Debian's packages (fetched at test time,
# cached in TARGET_DIR/linux; nothing is committed, no root needed):
#
#   OUTDIR/vmlinuz      Debian's cloud kernel (linux-image-cloud-amd64), the bzImage as shipped
#   OUTDIR/initrd.cpio  busybox and the kernel's own disk modules (xen-blkfront for a Xen PV
#                       domU; virtio_pci and virtio_blk for the same kernel run directly on
#                       QEMU); its /init loads them, waits for the root device named by
#                       root= (default /dev/xvda), mounts it and switches to it
#   OUTDIR/root.img     an ext4 root filesystem (mkfs.ext4 -d) holding busybox, /sbin/init and
#                       diskbench (scripts/lib/diskbench.c, built static with the host's gcc)
#
#   scripts/linux-disk.sh [--size MIB] OUTDIR
#
# The root's /sbin/init runs the jobs named on the kernel command line, in order, then powers
# off (jobs=check,write; none: stay up until dom0 shuts the domain down through the store).
# Every line it prints starts with "linux-disk: ".
#   write      writes /data/file (1 MiB from /dev/urandom) and its SHA-256 in /data/file.sum,
#              syncs: "linux-disk: wrote SUM"
#   check      checks /data/file against /data/file.sum: "linux-disk: PASS check SUM", or FAIL
#   pattern    writes jobmib= MiB (default 64) of a random pattern to the raw device jobdev=
#              (default /dev/xvdb), syncs, drops the page cache, reads it back and compares
#              the SHA-256s: "linux-disk: PASS pattern N MiB SUM", or FAIL
#   readonly   checks that jobdev= refuses a write: "linux-disk: PASS readonly DEV", or FAIL
#   bench      scripts/lib/diskbench.c on jobdev=: jobmib= MiB written then read sequentially
#              in 1 MiB requests, then jobops= (default 2000) random 4 KiB reads, all O_DIRECT:
#              "diskbench: MODE BYTES B in USEC us" per measure
# After the guest powered off, `e2fsck -fn OUTDIR/root.img` tells whether the filesystem is
# clean. Size defaults to 64 MiB.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib/debian_linux.sh
source scripts/lib/debian_linux.sh
usage() { sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
size=64
while [ $# -gt 0 ]; do
    case $1 in
        --size) size=${2:?}; shift 2 ;;
        -*) usage ;;
        *) break ;;
    esac
done
[ $# -eq 1 ] || usage
out=$1
export PATH=$PATH:/usr/sbin:/sbin
debian_linux_need cpio mkfs.ext4:e2fsprogs gcc || exit 1

target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
debian_linux_fetch "$target_dir/linux"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
busybox=$linux_root/bin/busybox

# Busybox with a link per applet, under DIR.
busybox_tree() {
    mkdir -p "$1/bin" "$1/sbin" "$1/proc" "$1/sys" "$1/dev" "$1/tmp"
    cp "$busybox" "$1/bin/busybox"
    local applet
    for applet in $("$busybox" --list); do
        [ -e "$1/bin/$applet" ] || ln -s busybox "$1/bin/$applet"
    done
}

# The initramfs: the modules in load order (each after the ones it depends on).
busybox_tree "$work/initrd"
mkdir -p "$work/initrd/lib/modules" "$work/initrd/newroot"
n=0
modules=$(debian_linux_with_deps xen-blkfront virtio_pci virtio_blk)
for m in $modules; do
    n=$((n + 1))
    cp "$m" "$work/initrd/lib/modules/$(printf %02d $n)-$(basename "$m")"
done
cat > "$work/initrd/init" <<'INIT'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo "linux-disk: $*"; }
die() { say "FAIL $*"; poweroff -f; }
for m in /lib/modules/*.ko; do insmod "$m" 2>/dev/null; done
dev=/dev/xvda
for word in $(cat /proc/cmdline); do
    case $word in root=/dev/*) dev=${word#root=} ;; esac
done
tries=0
while [ ! -b "$dev" ]; do
    tries=$((tries + 1))
    [ $tries -le 200 ] || die "no root device $dev after 20 s"
    sleep 0.1
done
mount -t ext4 "$dev" /newroot || die "cannot mount $dev"
say "root $dev mounted"
umount /sys /proc
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
INIT
chmod 755 "$work/initrd/init"
(cd "$work/initrd" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$out/initrd.cpio"

# The root filesystem.
busybox_tree "$work/rootfs"
mkdir -p "$work/rootfs/data" "$work/rootfs/etc"
cat > "$work/rootfs/sbin/init" <<'INIT'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
say() { echo "linux-disk: $*"; }
fail() { say "FAIL $*"; }
arg() { # NAME DEFAULT: NAME= from the kernel command line
    local word
    for word in $(cat /proc/cmdline); do
        case $word in "$1"=*) echo "${word#*=}"; return ;; esac
    done
    echo "$2"
}
sum_of() { sha256sum | cut -d' ' -f1; }
dev=$(arg jobdev /dev/xvdb)
mib=$(arg jobmib 64)

job_write() {
    dd if=/dev/urandom of=/data/file bs=64k count=16 2>/dev/null || { fail "write /data/file"; return; }
    sha256sum /data/file > /data/file.sum && sync || { fail "sync"; return; }
    say "wrote $(cut -d' ' -f1 /data/file.sum)"
}
job_check() {
    [ -f /data/file.sum ] || { fail "check: no /data/file.sum"; return; }
    if sha256sum -c /data/file.sum >/dev/null 2>&1; then
        say "PASS check $(cut -d' ' -f1 /data/file.sum)"
    else
        fail "check: /data/file does not match /data/file.sum"
    fi
}
job_pattern() {
    local wrote read
    [ -b "$dev" ] || { fail "pattern: no block device $dev"; return; }
    wrote=$(head -c $((mib * 1048576)) /dev/urandom | tee "$dev" | sum_of)
    sync
    echo 3 > /proc/sys/vm/drop_caches
    read=$(head -c $((mib * 1048576)) "$dev" | sum_of)
    if [ "$wrote" = "$read" ]; then
        say "PASS pattern $mib MiB $read"
    else
        fail "pattern: wrote $wrote, read back $read"
    fi
}
job_readonly() {
    [ -b "$dev" ] || { fail "readonly: no block device $dev"; return; }
    if dd if=/dev/zero of="$dev" bs=4k count=1 oflag=direct 2>/dev/null; then
        fail "readonly: a write to $dev succeeded"
    else
        say "PASS readonly $dev"
    fi
}
job_bench() {
    [ -b "$dev" ] || { fail "bench: no block device $dev"; return; }
    diskbench seqwrite "$dev" "$mib" && diskbench seqread "$dev" "$mib" &&
        diskbench randread "$dev" "$(arg jobops 2000)" || fail "bench on $dev"
}

mount -o remount,rw / || fail "cannot remount / read-write"
jobs=$(arg jobs '')
say "init running on $(grep ' / ' /proc/mounts | cut -d' ' -f1), jobs: ${jobs:-none}"
if [ -z "$jobs" ]; then
    while true; do sleep 1; done
fi
for job in $(echo "$jobs" | tr , ' '); do
    case $job in
        write | check | pattern | readonly | bench) "job_$job" ;;
        *) fail "unknown job $job" ;;
    esac
done
mount -o remount,ro / || fail "cannot remount / read-only"
say "done"
poweroff -f
INIT
# What the kernel runs when the store asks it to power off or reboot (orderly_poweroff).
cat > "$work/rootfs/sbin/poweroff" <<'POWEROFF'
#!/bin/sh
sync
/bin/mount -o remount,ro /
/bin/poweroff -f
POWEROFF
chmod 755 "$work/rootfs/sbin/init" "$work/rootfs/sbin/poweroff"
gcc -static -O2 -Wall -Werror -o "$work/rootfs/bin/diskbench" scripts/lib/diskbench.c
rm -f "$out/root.img"
mkfs.ext4 -q -F -L root -d "$work/rootfs" "$out/root.img" "${size}M" >/dev/null
cp "$shipped" "$out/vmlinuz"
echo "linux-disk: built $out (kernel $kpkg, root ${size} MiB)" >&2
