# Which QEMU accelerator boot.sh uses: KVM when /dev/kvm works, TCG otherwise. A PV hypervisor
# needs no hardware virtualisation of its own, so under KVM it runs at native speed without
# nested virtualisation. Sourced by scripts/boot.sh.
#
#   accel_choose CACHE_DIR   prints "kvm" or "tcg"; says on stderr why, once per probe
#
# ACCEL=kvm|tcg forces the choice (ACCEL=kvm fails when the probe does). The probe boots a
# 512-byte boot sector under `-accel kvm -cpu host` that writes to QEMU's debug-exit port:
# KVM works when QEMU exits with that value within 10 s. Its result is cached in CACHE_DIR,
# keyed by the QEMU version, the running kernel and /dev/kvm, so only the first boot pays.

accel_probe() {
    local dir=$1 img status
    [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "no usable /dev/kvm"; return 1; }
    img=$dir/kvm-probe.img
    # mov al, 0x2a; out 0xf4, al; hlt; jmp $ -- then the boot signature.
    python3 -c 'import sys; b = bytes([0xb0, 0x2a, 0xe6, 0xf4, 0xf4, 0xeb, 0xfe]); sys.stdout.buffer.write(b + bytes(503) + b"\x55\xaa")' > "$img"
    timeout -k 2 10 qemu-system-x86_64 -accel kvm -cpu host -m 32 -nodefaults -display none \
        -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
        -drive file="$img",format=raw,if=ide > "$dir/kvm-probe.log" 2>&1
    status=$?
    [ "$status" -eq 85 ] && return 0
    case $status in
        124 | 137) echo "a boot sector under KVM did not finish in 10 s" ;;
        *) echo "QEMU with KVM failed (status $status: $(grep -m1 . "$dir/kvm-probe.log" | cut -c1-100))" ;;
    esac
    return 1
}

accel_choose() {
    local dir=$1 key cached why
    case ${ACCEL:-auto} in
        tcg) echo tcg; return 0 ;;
        kvm | auto) ;;
        *) echo "boot.sh: ACCEL must be kvm, tcg or auto, not '$ACCEL'" >&2; return 1 ;;
    esac
    mkdir -p "$dir"
    key="$(qemu-system-x86_64 --version | head -n1) $(uname -r) $(stat -c '%i %Y' /dev/kvm 2>/dev/null)"
    if [ -f "$dir/accel" ] && [ "$(sed -n 1p "$dir/accel")" = "$key" ]; then
        cached=$(sed -n 2p "$dir/accel")
    else
        if why=$(accel_probe "$dir"); then cached=kvm; else cached="tcg $why"; fi
        printf '%s\n%s\n' "$key" "$cached" > "$dir/accel"
        echo "boot.sh: accelerator probe: ${cached/#tcg /TCG: } (cached in $dir/accel)" >&2
    fi
    if [ "${cached%% *}" = kvm ]; then
        echo kvm
    elif [ "${ACCEL:-auto}" = kvm ]; then
        echo "boot.sh: ACCEL=kvm, but KVM does not work here: ${cached#tcg }" >&2
        return 1
    else
        echo tcg
    fi
}
