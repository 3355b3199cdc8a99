#!/usr/bin/env bash
# Installs what the scripts need: QEMU >= 8, GRUB's BIOS image tools and its Xen PV port
# (grub-xen-bin, the third-party test kernel), xorriso, mtools, Xen's public headers
# (libxen-dev), C and C++ compilers (the ABI probe, libFuzzer), the Rust target from
# rust-toolchain.toml, and for the fuzz targets cargo-fuzz (deps_install_fuzz).
# Sourced by the other scripts; safe to run again (does nothing when all is present).
# Run directly, it installs all of it.
set -euo pipefail

DEPS_PACKAGES=(grub-pc-bin grub-xen-bin grub-common xorriso mtools libxen-dev gcc g++)
# cargo-fuzz, built from crates.io with the pinned toolchain (no nightly needed: the
# targets run without a sanitizer, scripts/fuzz.sh).
DEPS_CARGO_FUZZ_VERSION=0.13.2
QEMU_MIN_MAJOR=8

deps_have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

deps_qemu_major() {
    command -v qemu-system-x86_64 >/dev/null || { echo 0; return; }
    qemu-system-x86_64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n1
}

# Adds Debian's bookworm-backports suite, reusing the URIs of the existing Debian source,
# so that QEMU >= 8 can be installed on Debian 12.
deps_add_backports() {
    local list=/etc/apt/sources.list.d/bookworm-backports.sources uris
    [ -f "$list" ] && return 0
    uris=$(grep -hs '^URIs:.*debian/\?$' /etc/apt/sources.list.d/*.sources | head -n1 | sed 's/^URIs:[[:space:]]*//')
    if [ -z "$uris" ]; then
        uris=$(grep -hsE '^deb[[:space:]]+[^ ]*debian/?[[:space:]]+bookworm[[:space:]]' /etc/apt/sources.list | awk '{print $2}' | head -n1)
    fi
    [ -n "$uris" ] || { echo "deps: no Debian apt source found to derive bookworm-backports from" >&2; return 1; }
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$uris" > "$list"
}

deps_install_system() {
    local missing=() need_qemu=0
    for p in "${DEPS_PACKAGES[@]}"; do deps_have_pkg "$p" || missing+=("$p"); done
    [ "$(deps_qemu_major)" -ge "$QEMU_MIN_MAJOR" ] || need_qemu=1
    [ ${#missing[@]} -eq 0 ] && [ $need_qemu -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: missing packages: ${missing[*]} $([ $need_qemu -eq 1 ] && echo "qemu-system-x86 (>= $QEMU_MIN_MAJOR, from bookworm-backports on Debian 12)")" >&2
        echo "deps: run this script as root, or install them with apt-get" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [ $need_qemu -eq 1 ] && grep -qs 'VERSION_CODENAME=bookworm' /etc/os-release; then
        deps_add_backports
    fi
    apt-get update -qq
    [ ${#missing[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${missing[@]}"
    if [ $need_qemu -eq 1 ]; then
        if grep -qs 'VERSION_CODENAME=bookworm' /etc/os-release; then
            apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86
        else
            apt-get install -y -qq --no-install-recommends qemu-system-x86
        fi
    fi
    if [ "$(deps_qemu_major)" -lt "$QEMU_MIN_MAJOR" ]; then
        echo "deps: qemu-system-x86_64 $(qemu-system-x86_64 --version | head -n1) is too old; need >= $QEMU_MIN_MAJOR" >&2
        echo "deps: QEMU 7.2 corrupts the error code of a faulting 'int \$n' in 64-bit mode" >&2
        return 1
    fi
}

deps_install_rust() {
    # rustup reads rust-toolchain.toml: install the pinned toolchain if missing, then make sure
    # its bare-metal target and lint/format components are there (an existing toolchain may
    # lack them).
    local top
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    (
        cd "$top"
        command -v rustup >/dev/null || { echo "deps: rustup is required" >&2; exit 1; }
        rustup toolchain list | grep -q "^$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)" \
            || rustup toolchain install
        rustup target list --installed | grep -q '^x86_64-unknown-none$' \
            || rustup target add x86_64-unknown-none
        local c
        for c in rustfmt clippy; do
            rustup component list --installed | grep -q "^$c" || rustup component add "$c"
        done
    )
}

# cargo-fuzz, unless some version is there already: `cargo install` puts it in
# ~/.cargo/bin (CARGO_HOME), where later runs find it.
deps_install_fuzz() {
    local top
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    (
        cd "$top"
        cargo fuzz --version >/dev/null 2>&1 && exit 0
        echo "deps: installing cargo-fuzz $DEPS_CARGO_FUZZ_VERSION (cargo install)" >&2
        cargo install --locked --quiet cargo-fuzz --version "$DEPS_CARGO_FUZZ_VERSION"
    )
}

deps_all() { deps_install_system && deps_install_rust; }

if [ "${BASH_SOURCE[0]}" = "$0" ]; then deps_all && deps_install_fuzz; fi
