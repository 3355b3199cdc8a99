#!/usr/bin/env bash
# Builds the Debian package that installs the hypervisor on a real machine, as Debian's Xen
# package does: the hypervisor, dom0's kernel and its ramdisk under /boot, a grub-mkconfig
# snippet in /etc/grub.d that adds the boot entry (its settings in
# /etc/default/rust-pv-hypervisor), the example xl configs in /etc/xen, and
# update-rust-pv-dom0, which rebuilds dom0's ramdisk from /etc/xen (the postinst runs it,
# then update-grub). The files besides the builds are in packaging/deb/.
#
#   scripts/package-deb.sh [OUTDIR]     (default TARGET_DIR/deb); prints the .deb's path
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_all >&2
command -v dpkg-deb >/dev/null || { echo "package-deb: need dpkg-deb (Debian's dpkg)" >&2; exit 1; }

target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
out=${1:-$target_dir/deb}
name=rust-pv-hypervisor
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || { echo "package-deb: no version in Cargo.toml" >&2; exit 1; }

cargo build -q --release --target x86_64-unknown-none -p hypervisor -p dom0-tools --bin hypervisor --bin dom0
cargo build -q --release --target x86_64-unknown-none -p hello -p crash -p pingpong
bin=$target_dir/x86_64-unknown-none/release

pkg=$(mktemp -d)
chmod 755 "$pkg"
trap 'rm -rf "$pkg"' EXIT
install -d "$pkg/DEBIAN" "$pkg/boot" "$pkg/etc/grub.d" "$pkg/etc/default" "$pkg/usr/sbin" \
    "$pkg/usr/lib/$name/ramdisk/boot" "$pkg/usr/share/doc/$name"
install -m 644 "$bin/hypervisor" "$pkg/boot/$name"
install -m 644 "$bin/dom0" "$pkg/boot/rust-pv-dom0"
install -m 755 packaging/deb/20_rust_pv_hypervisor "$pkg/etc/grub.d/"
install -m 644 packaging/deb/default "$pkg/etc/default/$name"
install -m 755 packaging/deb/update-rust-pv-dom0 "$pkg/usr/sbin/"
cp -R dom0-tools/ramdisk/etc/xen "$pkg/etc/xen"
install -m 644 dom0-tools/ramdisk/demo.script "$pkg/usr/lib/$name/ramdisk/"
for g in hello crash pingpong; do
    install -m 644 "$bin/$g" "$pkg/usr/lib/$name/ramdisk/boot/$g"
done
install -m 644 README.md "$pkg/usr/share/doc/$name/README.md"
install -m 755 packaging/deb/postinst packaging/deb/postrm "$pkg/DEBIAN/"
# Every file under /etc is a conffile: an upgrade keeps the user's changes.
(cd "$pkg" && find etc -type f | sed 's|^|/|' | LC_ALL=C sort) > "$pkg/DEBIAN/conffiles"
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: amd64
Maintainer: The rust-pv-hypervisor developers <devel@localhost>
Depends: cpio
Recommends: grub-pc | grub-efi-amd64
Section: admin
Priority: optional
Installed-Size: $(du -sk "$pkg" | cut -f1)
Description: Xen-compatible paravirtualization hypervisor written in Rust
 A type-1 hypervisor that boots from GRUB (multiboot2) and runs 64-bit Xen PV guests
 unmodified, managed from a dom0 whose xl-style toolstack creates and destroys guests.
 This package adds a GRUB boot entry for it; the machine's usual entries stay.
CONTROL
mkdir -p "$out"
deb=$out/${name}_${version}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
