#!/usr/bin/env bash
# The QEMU tests that need real Xen 4.17 (scripts/boot-xen.sh): builds guests/hello, checks
# its Xen ELF notes, boots it as dom0 on Xen and checks the lines it must print, how the
# machine stops, and that guest-abi's start-of-day layout is the one Xen's builder chose;
# then boots guests/selftest and checks that all its checks pass.
# Prints PASS/FAIL lines and "N passed, N failed"; exits non-zero if anything failed.
# Serial logs are kept in TARGET_DIR/xen-tests/.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
# shellcheck source=scripts/type-when.sh
source scripts/type-when.sh

passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
# expect NAME WHY COMMAND...: PASS if COMMAND succeeds, else FAIL with WHY.
expect() {
    local name=$1 why=$2
    shift 2
    if "$@"; then pass "$name"; else fail "$name" "$why"; fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') || exit 1
logs=$target_dir/xen-tests
mkdir -p "$logs"
hello=$target_dir/x86_64-unknown-none/release/hello

if cargo build -q -p hello --target x86_64-unknown-none --release; then
    pass "hello builds"
else
    fail "hello builds" "cargo build failed"
    finish
fi

# The notes, as binutils sees them: owner "Xen", one per type we set.
notes=$(readelf -nW "$hello" 2>&1)
note_types=$(grep -cE '^ +Xen +0x' <<<"$notes")
expect "readelf -n shows the Xen notes" "found $note_types Xen notes, want 10" [ "$note_types" -eq 10 ]
expect "readelf -n shows GUEST_OS hello" "no 'hello' note data" grep -q "68 65 6c 6c 6f 00" <<<"$notes"

# boot NAME [BOOT ARGS...]: boots on Xen, keeps the log in $logs/NAME.log, sets $status.
boot() {
    local name=$1
    shift
    BOOT_LOG=$logs/$name.log scripts/boot-xen.sh "$@" > /dev/null 2>&1
    status=$?
    tr -d '\r' < "$logs/$name.log" > "$logs/$name.txt"
}
# has NAME REGEX: the log of boot NAME has a line matching REGEX.
has() { grep -qE "$2" "$logs/$1.txt"; }
# value NAME KEY: the rest of hello's line "hello: KEY ...".
value() { sed -n "s/^hello: $2 //p" "$logs/$1.txt" | head -n1; }

# Xen's dom0 builder log ("VIRTUAL MEMORY ARRANGEMENT"), in kernel_info's terms.
xen_layout() {
    sed -n -E '/VIRTUAL MEMORY ARRANGEMENT/,/ENTRY ADDRESS/{
        s/^\(XEN\) +Loaded kernel: +([0-9a-f]+)->.*/kernel_start \1/p
        s/^\(XEN\) +Init\. ramdisk: +([0-9a-f]+)->.*/ramdisk_start \1/p
        s/^\(XEN\) +Phys-Mach map: +([0-9a-f]+)->.*/p2m_start \1/p
        s/^\(XEN\) +Start info: +([0-9a-f]+)->.*/start_info_start \1/p
        s/^\(XEN\) +Page tables: +([0-9a-f]+)->([0-9a-f]+)/page_tables \1 \2/p
        s/^\(XEN\) +Boot stack: +([0-9a-f]+)->([0-9a-f]+)/boot_stack \1 \2/p
        s/^\(XEN\) +TOTAL: +([0-9a-f]+)->([0-9a-f]+)/total \1 \2/p
        s/^\(XEN\) +ENTRY ADDRESS: +([0-9a-f]+)/entry \1/p
    }' "$logs/$1.txt"
}
# Our layout for the same kernel, page count and ramdisk.
our_layout() {
    cargo run -q -p guest-abi --example kernel_info -- "$hello" "$1" "$2" |
        grep -E '^(kernel_start|ramdisk_start|p2m_start|start_info_start|page_tables|boot_stack|total|entry) '
}
# same_layout NAME RAMDISK_LEN: Xen's layout for boot NAME is ours.
same_layout() {
    local pages xen ours
    pages=$(value "$1" nr_pages)
    xen=$(xen_layout "$1")
    ours=$(our_layout "${pages:-0}" "$2") || return 1
    [ -n "$xen" ] && [ "$xen" = "$ours" ] || {
        diff <(echo "$xen") <(echo "$ours") | sed 's/^/    xen< ours> /' >&2
        return 1
    }
}

# 1. Power off, with a command line.
boot poweroff "$hello" xen-tests cmdline-check
expect "poweroff: boot-xen exits 0" "status $status" [ "$status" -eq 0 ]
expect "poweroff: Xen halts dom0" "no 'Hardware Dom0 halted'" has poweroff 'Hardware Dom0 halted'
expect "poweroff: magic" "got '$(value poweroff magic)'" [ "$(value poweroff magic)" = "xen-3.0-x86_64" ]
flags=$(value poweroff flags | cut -d' ' -f1)
expect "poweroff: flags PRIVILEGED|INITDOMAIN" "got '$flags'" [ $((${flags:-0} & 3)) -eq 3 ]
expect "poweroff: command line" "got '$(value poweroff cmdline)'" \
    [ "$(value poweroff cmdline)" = '"xen-tests cmdline-check"' ]
expect "poweroff: nr_pages from dom0_mem=64M" "got '$(value poweroff nr_pages)'" \
    [ "$(value poweroff nr_pages)" = 16384 ]
expect "poweroff: no ramdisk" "got '$(value poweroff mod_start)'" [ "$(value poweroff mod_start)" = "0x0 mod_len 0" ]
expect "poweroff: hello's checks pass" "see $logs/poweroff.txt" has poweroff '^[1-9][0-9]* passed, 0 failed$'
expect "poweroff: no FAIL line" "see $logs/poweroff.txt" bash -c "! grep -q '^FAIL' '$logs/poweroff.txt'"
expect "poweroff: our layout is Xen's" "see above" same_layout poweroff 0

# 2. With a ramdisk module.
ramdisk=$logs/ramdisk.bin
head -c 12345 /dev/urandom > "$ramdisk"
boot ramdisk "$hello" with-ramdisk -- "$ramdisk"
expect "ramdisk: boot-xen exits 0" "status $status" [ "$status" -eq 0 ]
expect "ramdisk: mod_len" "got '$(value ramdisk mod_start)'" has ramdisk '^hello: mod_start 0xffffffff[0-9a-f]+ mod_len 12345$'
expect "ramdisk: our layout is Xen's" "see above" same_layout ramdisk 12345

# 3. A panicking guest crashes the domain.
boot panic "$hello" panic
expect "panic: boot-xen exits 1" "status $status" [ "$status" -eq 1 ]
expect "panic: message printed" "no PANIC line" has panic '^PANIC: panicked at .*'
expect "panic: Xen sees a crash" "no 'Hardware Dom0 crashed'" has panic 'Hardware Dom0 crashed'

# 4. Reboot is not a clean power-off.
boot reboot "$hello" reboot
expect "reboot: boot-xen exits 2" "status $status" [ "$status" -eq 2 ]

# 5. A timeout.
BOOT_TIMEOUT=1 boot timeout "$hello"
expect "timeout: boot-xen exits 124" "status $status" [ "$status" -eq 124 ]

# 6. guests/selftest: every check passes on Xen, the oracle it is written against.
selftest=$target_dir/x86_64-unknown-none/release/selftest
if cargo build -q -p selftest --target x86_64-unknown-none --release; then
    pass "selftest builds"
    boot selftest "$selftest"
    expect "selftest: boot-xen exits 0" "status $status" [ "$status" -eq 0 ]
    expect "selftest: 0 failed" "see $logs/selftest.txt" has selftest '^[1-9][0-9]* passed, 0 failed$'
    expect "selftest: no FAIL line" "see $logs/selftest.txt" bash -c "! grep -q '^FAIL' '$logs/selftest.txt'"
    for check in 'hypercall.console_io write' 'hypercall.callback_op unregister event' \
        'hypercall.vcpu_op is_up 1' 'fault.console_io write from hypervisor range' \
        'trap.#PF read of unmapped address' 'trap.int 0x80 through the virtual IDT (DPL 3)' \
        'privop.cpuid forced emulation: leaf 0x40000000 signature' 'privop.rdmsr PAT' \
        'fpu.xmm0 survives the #NM' 'multicall.iret inside a multicall' \
        'user.syscall from user mode: callback frame' 'user.second syscall, back in the kernel' \
        'mmu.pin L4 of a new address space' 'mmu.NEW_BASEPTR to the new L4, read through it' \
        'mmu.update_va_mapping UVMF_INVLPG: new page visible' \
        'mmu.mmu_update batch failing at request 2: error and done count' \
        'mmu.L4 read-only self-map: accepted on Xen (ours refuses, EINVAL)' \
        'event.send on the loopback port: upcall with the other port' \
        'event.EVTCHNOP_unmask redelivers the pending port' \
        'time.VCPUOP_set_singleshot_timer fires VIRQ_TIMER (SCHEDOP_block)' \
        'time.periodic timer 10 ms: 4 to 7 ticks in 55 ms, at most 20 ms apart' \
        'vcpu.register_runstate_memory_area written at once' \
        'vcpu.register_vcpu_info events land there' \
        'memory.exchange 2 frames for an order-1 extent below 4 GiB' \
        'memory.machine_memory_map: RAM, and the MSI window reserved'; do
        expect "selftest: PASS $check" "no such line" grep -qxF "PASS $check" "$logs/selftest.txt"
    done
    # Serial input on Xen: VIRQ_CONSOLE with the line typed, VIRQ_DEBUG from the 'q' key.
    BOOT_STDIN=1 boot serial-input "$selftest" serial-input \
        < <(type_when "$logs/serial-input.log" "selftest: waiting for serial input" 'ping' \
            "selftest: waiting for debug key" '\001\001\001q\001\001\001')
    expect "serial-input: boot-xen exits 0" "status $status" [ "$status" -eq 0 ]
    expect "serial-input: 0 failed" "see $logs/serial-input.txt" \
        has serial-input '^[1-9][0-9]* passed, 0 failed$'
    expect "serial-input: PASS input.VIRQ_DEBUG" "see $logs/serial-input.txt" \
        grep -qxF "PASS input.VIRQ_DEBUG on the 'q' debug key" "$logs/serial-input.txt"
    # dom0's devices on Xen: PCI configuration through 0xcf8/0xcfc, a virtio-blk BAR mapped.
    truncate -s 16M "$logs/virtio-disk.img"
    QEMU_EXTRA="-device virtio-blk-pci,drive=d0 -drive if=none,id=d0,file=$logs/virtio-disk.img,format=raw" \
        boot devices "$selftest"
    expect "devices: boot-xen exits 0" "status $status" [ "$status" -eq 0 ]
    expect "devices: 0 failed" "see $logs/devices.txt" has devices '^[1-9][0-9]* passed, 0 failed$'
    expect "devices: PASS pci.virtio-blk BAR mapped" "see $logs/devices.txt" \
        grep -qxF "PASS pci.virtio-blk BAR mapped: VERSION_1 offered" "$logs/devices.txt"
else
    fail "selftest builds" "cargo build failed"
fi

finish
