#!/usr/bin/env bash
# QEMU integration tests: boot the real hypervisor through scripts/boot.sh and assert on what
# the serial console prints and on how the machine stopped. Prints PASS/FAIL per case and
# "N passed, N failed"; exits non-zero if any case failed.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/type-when.sh
source scripts/type-when.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
case_name=""
case_log=""
case_errors=()

# boot_case NAME WANT_STATUS HV_ARGS BOOT_ARGS...: boots and checks the exit status.
boot_case() {
    case_name=$1
    local want=$2 hv_args=$3
    shift 3
    case_log="$work/$case_name.log"
    case_errors=()
    HV_ARGS="$hv_args" BOOT_NO_BUILD=1 BOOT_TIMEOUT="${BOOT_TIMEOUT:-60}" BOOT_LOG="$case_log" \
        scripts/boot.sh "$@" >/dev/null 2>"$work/$case_name.err"
    local status=$?
    [ -f "$case_log" ] || : > "$case_log"
    if [ "$status" != "$want" ]; then
        case_errors+=("exit status $status, want $want ($(tail -n1 "$work/$case_name.err"))")
    fi
}

# expect TEXT: the serial output contains TEXT (fixed string).
expect() {
    grep -qF -- "$1" "$case_log" || case_errors+=("missing '$1'")
}

# reject TEXT: the serial output does not contain TEXT.
reject() {
    if grep -qF -- "$1" "$case_log"; then case_errors+=("unexpected '$1'"); fi
}

end_case() {
    if [ ${#case_errors[@]} -eq 0 ]; then
        echo "PASS $case_name"
        passed=$((passed + 1))
    else
        local IFS=';'
        echo "FAIL $case_name: ${case_errors[*]}"
        failed=$((failed + 1))
        sed 's/^/    | /' "$case_log" | tail -n 40
    fi
}

cargo build -q --release -p hypervisor -p hello -p crash -p selftest --target x86_64-unknown-none || { echo "FAIL build"; exit 1; }
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
hello="$target_dir/x86_64-unknown-none/release/hello"
selftest="$target_dir/x86_64-unknown-none/release/selftest"
placeholder="$work/not-a-kernel.bin"
printf 'placeholder dom0 kernel\n' > "$placeholder"
ramdisk="$work/ramdisk.bin"
head -c 10000 /dev/zero > "$ramdisk"

boot_case banner 0 "loglvl=info frobnicate=7" "$hello" root=/dev/null quiet -- "$ramdisk"
expect "(HV) Xen-compatible PV hypervisor 0.1.0"
expect "Command line: console=com1 loglvl=info frobnicate=7"
expect "WARNING: unknown command-line option 'frobnicate=7' ignored"
expect "MiB usable"
expect "bytes) 'root=/dev/null quiet'"
expect "Module 1:"
expect "(10000 bytes)"
expect "ACPI: PM1a_CNT 0x"
expect "I/O APIC: 24 pins masked"
expect "Local APIC: x2APIC"
expect "ms one-shot fired after"
expect "GDT: 0xe033 is ring-3 64-bit code, 0xe02b is ring-3 data"
expect "dom0: 65536 pages"
expect "(HV) Powering off."
reject "FATAL"
reject "PANIC"
reject "ERROR"
end_case

# Several CPUs: QEMU gives four, maxcpus=3 starts two of the three others (they park; guests
# run on the boot CPU), in x2APIC and in xAPIC mode; the guest runs as on one CPU.
for apic in x2apic xapic; do
    qemu_cpu=""
    [ "$apic" = xapic ] && qemu_cpu="-cpu max,-x2apic"
    QEMU_EXTRA="-smp 4 $qemu_cpu" boot_case "smp-$apic" 0 "maxcpus=3" "$hello"
    expect "ACPI: 4 CPUs (APIC ids [0, 1, 2, 3])"
    expect "SMP: 3 of 4 CPUs online (boot CPU APIC id 0)"
    expect " passed, 0 failed"
    reject "did not come online"
    reject "PANIC"
    reject "ERROR"
    end_case
done

boot_case hello-dom0 0 "dom0_mem=64M" "$hello" hello-arg=1 second
expect "dom0: 16384 pages"
expect "hello: magic xen-3.0-x86_64"
expect "hello: nr_pages 16384"
expect "hello: flags 0x3"
expect 'hello: cmdline "hello-arg=1 second"'
expect "hello: xen 4.17"
expect " passed, 0 failed"
expect "Hardware domain 0 shut down: SHUTDOWN_poweroff"
reject "FAIL "
end_case

# The PV feature checks of guests/selftest; the same binary passes on Xen 4.17 (xen-tests.sh).
boot_case selftest-dom0 0 "dom0_mem=64M" "$selftest"
expect "PASS hypercall.console_io write"
expect "PASS trap.#PF read of unmapped address"
expect "PASS user.syscall from user mode: callback frame"
expect "PASS fpu.#NM after fpu_taskswitch(1)"
expect "PASS privop.cpuid forced emulation: leaf 0x40000000 signature"
expect " passed, 0 failed"
reject "FAIL "
reject "(HV) ERROR"
end_case

# dom0's devices: PCI configuration through 0xcf8/0xcfc and a virtio-blk BAR mapped and read
# (the device's modern common configuration), the MSI/local APIC window refused.
disk="$work/virtio-disk.img"
truncate -s 16M "$disk"
QEMU_EXTRA="-device virtio-blk-pci,drive=d0 -drive if=none,id=d0,file=$disk,format=raw" \
    boot_case selftest-devices 0 "dom0_mem=64M" "$selftest"
expect "PASS pci.config address latched and read back"
expect "PASS pci.host bridge vendor id readable"
expect "PASS pci.mapping the MSI/local APIC window refused"
expect "PASS pci.virtio-blk BAR mapped: VERSION_1 offered"
expect "PASS memory.exchange 2 frames for an order-1 extent below 4 GiB"
expect "PASS memory.machine_memory_map: RAM, and the MSI window reserved"
expect " passed, 0 failed"
reject "FAIL "
reject "(HV) ERROR"
end_case

# Serial input: a line for dom0 raises VIRQ_CONSOLE and is read back; Ctrl-A three times
# switches to the hypervisor, whose 'q' key dumps the domains and raises VIRQ_DEBUG.
BOOT_STDIN=1 boot_case serial-input 0 "dom0_mem=64M" "$selftest" serial-input \
    < <(type_when "$work/serial-input.log" "selftest: waiting for serial input" 'ping' \
        "selftest: waiting for debug key" '\001\001\001q\001\001\001')
expect "PASS input.VIRQ_CONSOLE on serial input"
expect "PASS input.console_io read returns the line"
expect "*** Serial input to Xen (type 'CTRL-a' three times to switch input)"
expect "'q' pressed -> dumping domain info"
expect "Notifying guest 0:0 (virq 1, port"
expect "PASS input.VIRQ_DEBUG on the 'q' debug key"
expect "*** Serial input to DOM0"
expect " passed, 0 failed"
reject "FAIL "
end_case

boot_case hello-with-ramdisk 0 "" "$hello" -- "$ramdisk"
expect "hello: mod_start 0xffffffff"
expect "mod_len 10000"
expect " passed, 0 failed"
end_case

boot_case bad-dom0-kernel 5 "" "$placeholder"
expect "ERROR: dom0: bad kernel image"
reject "entering the kernel"
end_case

BOOT_MEM=5120 boot_case memory-above-4g 0 "" "$hello"
expect "0000000100000000 - 0000000180000000 usable"
expect "Direct map: 6144 MiB"
expect " passed, 0 failed"
reject "ERROR"
end_case

boot_case no-dom0-module 0 "" none
expect "dom0: no kernel module given"
expect "(HV) Powering off."
end_case

boot_case loglvl-warning 0 "loglvl=warning" "$hello"
reject "Physical memory map"
reject "Xen-compatible PV hypervisor"
expect "hello: magic xen-3.0-x86_64"
expect "(HV) Powering off."
end_case

boot_case bad-option-values 0 "loglvl=loud dom0_mem=12Q noreboot=yes" "$hello"
expect "bad value 'loud' for option 'loglvl' ignored"
expect "bad value '12Q' for option 'dom0_mem' ignored"
expect "bad value 'yes' for option 'noreboot' ignored"
expect "(HV) Powering off."
end_case

boot_case panic-test-fault 1 "panic-test" "$hello"
expect "FATAL: unexpected exception 14 (#PF page fault), error code 0x0"
expect "RIP e008:ffff8280"
expect "CR2 ffff8100dead0000"
expect " rax "
expect " r15 "
expect "(HV) backtrace:"
reject "should have faulted"
end_case

boot_case panic-test-panic 1 "panic-test=panic noreboot" "$hello"
expect "(HV) PANIC: panic-test requested on the command line at hypervisor/src/boot/start.rs"
expect "(HV) backtrace:"
end_case

boot_case panic-test-stack-overflow 1 "panic-test=stack" "$hello"
expect "FATAL: unexpected exception 8 (#DF double fault)"
expect "same address"
reject "should have faulted"
end_case

# scripts/boot-domu.sh: a kernel as a domU under dom0's toolstack; its exit status is the
# domain's verdict (0 powered off, 1 crashed).
for domu in "hello 0" "crash 1"; do
    set -- $domu
    case_name=boot-domu-$1
    case_log="$work/$case_name.log"
    case_errors=()
    BOOT_NO_BUILD=1 DOMU_SECONDS=3 BOOT_LOG="$case_log" \
        scripts/boot-domu.sh "$target_dir/x86_64-unknown-none/release/$1" >/dev/null 2>&1
    domu_status=$?
    [ -f "$case_log" ] || : > "$case_log"
    [ "$domu_status" -eq "$2" ] || case_errors+=("exit status $domu_status, want $2")
    expect "Started domain domu (id="
    expect "Hardware domain 0 shut down: SHUTDOWN_poweroff"
    end_case
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
