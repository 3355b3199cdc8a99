# Debian's Linux kernel for PV guests, fetched from Debian's archive at test time (nothing is
# committed): linux-image-cloud-amd64's current kernel package and busybox-static, unpacked
# once into CACHE/root (CACHE/KPKG.ok marks a complete download). Sourced by the scripts
# that boot Linux guests.
#
#   debian_linux_fetch CACHE    sets kpkg (the package), linux_root (the unpacked tree),
#                               shipped (its bzImage) and linux_modules (its modules folder)
#   debian_linux_module NAME    the path of module NAME.ko (e.g. xen-blkfront) under it
#
# Needs current apt lists (apt-get update) for apt-cache to name the package.

debian_linux_fetch() {
    local cache=$1
    kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
    [ -n "$kpkg" ] || { echo "no linux-image-cloud-amd64 in the apt lists (apt-get update?)" >&2; return 1; }
    mkdir -p "$cache"
    if [ ! -f "$cache/$kpkg.ok" ]; then
        (cd "$cache" && rm -rf pkgs root && mkdir pkgs && cd pkgs &&
            apt-get download "$kpkg" busybox-static >/dev/null 2>&1 &&
            for d in ./*.deb; do dpkg -x "$d" ../root; done) ||
            { echo "cannot download $kpkg and busybox-static" >&2; return 1; }
        touch "$cache/$kpkg.ok"
    fi
    linux_root=$cache/root
    shipped=$(ls "$linux_root"/boot/vmlinuz-* | head -n1)
    linux_modules=$(ls -d "$linux_root"/lib/modules/*/kernel)
}

debian_linux_module() {
    local found
    found=$(find "$linux_modules" -name "$1.ko" -print -quit)
    [ -n "$found" ] || { echo "module $1 not in $kpkg" >&2; return 1; }
    echo "$found"
}

# debian_linux_need PROGRAM[:PACKAGE]...: installs the packages of the programs that are
# missing, and refreshes the apt lists when they do not name Debian's cloud kernel, as root;
# otherwise says what to run. PACKAGE defaults to PROGRAM.
debian_linux_need() {
    local spec missing=()
    for spec in "$@"; do
        command -v "${spec%%:*}" >/dev/null || [ -x "/usr/sbin/${spec%%:*}" ] || missing+=("${spec#*:}")
    done
    if [ ${#missing[@]} -eq 0 ] && apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "need ${missing[*]:-nothing more} and current apt lists: run as root, or apt-get update && apt-get install ${missing[*]}" >&2
        return 1
    fi
    apt-get update -qq || return 1
    [ ${#missing[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# debian_linux_with_deps NAME...: the paths of the modules NAME and of every module they
# depend on (their .modinfo's depends=), each after its dependencies: an insmod order.
debian_linux_with_deps() {
    local name path dep seen=" " order=()
    visit() {
        case $seen in *" $1 "*) return 0 ;; esac
        seen="$seen$1 "
        path=$(debian_linux_module "$1") || return 1
        for dep in $(strings "$path" | sed -n 's/^depends=//p' | tr , ' '); do
            visit "$dep" || return 1
        done
        order+=("$(debian_linux_module "$1")")
    }
    for name in "$@"; do visit "$name" || return 1; done
    printf '%s\n' "${order[@]}"
}
