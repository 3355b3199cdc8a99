//! CPU identification, port I/O and model-specific registers.

use raw_cpuid::CpuId;
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

/// Features the hypervisor cares about, read once from CPUID.
#[derive(Clone, Copy, Debug)]
pub struct Features {
    /// x2APIC mode is available.
    pub x2apic: bool,
    /// The LAPIC timer has TSC-deadline mode.
    pub tsc_deadline: bool,
    /// 1 GiB pages are supported.
    pub gib_pages: bool,
    /// No-execute page protection.
    pub nx: bool,
    /// The TSC runs at a constant rate in all P/C-states.
    pub invariant_tsc: bool,
}

impl Features {
    /// Reads the features of the running CPU.
    pub fn detect() -> Self {
        let cpuid = CpuId::new();
        let basic = cpuid.get_feature_info();
        let ext = cpuid.get_extended_processor_and_feature_identifiers();
        let apm = cpuid.get_advanced_power_mgmt_info();
        Self {
            x2apic: basic.as_ref().is_some_and(|f| f.has_x2apic()),
            tsc_deadline: basic.as_ref().is_some_and(|f| f.has_tsc_deadline()),
            gib_pages: ext.as_ref().is_some_and(|e| e.has_1gib_pages()),
            nx: ext.as_ref().is_some_and(|e| e.has_execute_disable()),
            invariant_tsc: apm.is_some_and(|a| a.has_invariant_tsc()),
        }
    }
}

/// Writes a byte to an I/O port.
///
/// # Safety
/// The port must be one the hypervisor owns and the write must not break memory safety.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller vouches for the port.
    unsafe { Port::new(port).write(value) }
}

/// Writes a 16-bit word to an I/O port.
///
/// # Safety
/// As for [`outb`].
pub unsafe fn outw(port: u16, value: u16) {
    // SAFETY: the caller vouches for the port.
    unsafe { Port::new(port).write(value) }
}

/// Writes a 32-bit word to an I/O port.
///
/// # Safety
/// As for [`outb`].
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller vouches for the port.
    unsafe { Port::new(port).write(value) }
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// The port must be one the hypervisor owns; reads of some devices have side effects.
pub unsafe fn inb(port: u16) -> u8 {
    // SAFETY: the caller vouches for the port.
    unsafe { Port::new(port).read() }
}

/// Reads an MSR.
///
/// # Safety
/// The MSR must exist on this CPU (otherwise #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    // SAFETY: the caller vouches that the MSR exists.
    unsafe { Msr::new(msr).read() }
}

/// Writes an MSR.
///
/// # Safety
/// The MSR must exist and the value must not break the hypervisor's invariants.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller vouches for the MSR and the value.
    unsafe { Msr::new(msr).write(value) }
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is available on every x86-64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Halts the CPU forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Executes CPUID.
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Ports the hypervisor drives itself and never grants: the PICs, the PIT and port B, the RTC,
/// COM1, the keyboard controller, the VGA cursor registers, QEMU's debug-exit, PCI
/// configuration and reset, and the ACPI PM block. (The hardware domain's PCI configuration
/// accesses are emulated: `pv::io_ports`.)
const HYPERVISOR_PORTS: [(u16, u16); 12] = [
    (0x20, 0x22),
    (0xa0, 0xa2),
    (0x40, 0x44),
    (0x60, 0x61),
    (0x61, 0x62),
    (0x64, 0x65),
    (0x70, 0x72),
    (0x3f8, 0x400),
    (0x3d4, 0x3d6),
    (0xf4, 0xf8),
    (0xcf8, 0xd00),
    (0x600, 0x640),
];

/// Whether any port of `[port, port + size)` belongs to the hypervisor.
pub fn hypervisor_owns_ports(port: u16, size: u8) -> bool {
    let (start, end) = (u32::from(port), u32::from(port) + u32::from(size));
    HYPERVISOR_PORTS
        .iter()
        .any(|&(s, e)| start < u32::from(e) && u32::from(s) < end)
}

/// Reads a port of `size` bytes.
///
/// # Safety
/// As for [`inb`].
pub unsafe fn port_in(port: u16, size: u8) -> u32 {
    // SAFETY: the caller vouches for the port.
    unsafe {
        match size {
            1 => u32::from(Port::<u8>::new(port).read()),
            2 => u32::from(Port::<u16>::new(port).read()),
            _ => Port::<u32>::new(port).read(),
        }
    }
}

/// Writes a port of `size` bytes.
///
/// # Safety
/// As for [`outb`].
pub unsafe fn port_out(port: u16, size: u8, value: u32) {
    // SAFETY: the caller vouches for the port.
    unsafe {
        match size {
            1 => Port::<u8>::new(port).write(value as u8),
            2 => Port::<u16>::new(port).write(value as u16),
            _ => Port::<u32>::new(port).write(value),
        }
    }
}

/// Reads a port of `size` bytes on a guest's behalf; a port the hypervisor uses reads as
/// all-ones instead.
pub fn guest_port_in(port: u16, size: u8) -> u32 {
    if hypervisor_owns_ports(port, size) {
        return u32::MAX;
    }
    // SAFETY: the port is not one the hypervisor drives; a device behind it is the guest's.
    unsafe { port_in(port, size) }
}

/// Writes a port of `size` bytes on a guest's behalf; a port the hypervisor uses is left
/// alone.
pub fn guest_port_out(port: u16, size: u8, value: u32) {
    if !hypervisor_owns_ports(port, size) {
        // SAFETY: as for `guest_port_in`.
        unsafe { port_out(port, size, value) }
    }
}

/// Writes back and invalidates the caches (`wbinvd`).
pub fn wbinvd() {
    // SAFETY: flushes the caches; no memory or register the compiler tracks changes.
    unsafe { core::arch::asm!("wbinvd", options(nostack)) };
}

/// Flushes this CPU's TLB, global entries included, by toggling CR4.PGE.
pub fn flush_tlb_global() {
    use x86_64::registers::control::{Cr4, Cr4Flags};
    // SAFETY: clearing and setting CR4.PGE again flushes the TLB and changes nothing else.
    unsafe {
        Cr4::update(|f| f.remove(Cr4Flags::PAGE_GLOBAL));
        Cr4::update(|f| f.insert(Cr4Flags::PAGE_GLOBAL));
    }
}

/// The frame-pointer register (`rbp`), for backtraces.
pub fn frame_pointer() -> u64 {
    let rbp: u64;
    // SAFETY: reads a register; no memory is touched.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack)) };
    rbp
}

/// The XCR0 bits this CPU supports (x87, SSE, AVX, ... from CPUID leaf 0xd).
pub fn xcr0_supported() -> u64 {
    let [a, _, _, d] = cpuid(0xd, 0);
    (u64::from(d) << 32) | u64::from(a)
}

/// Loads XCR0.
pub fn set_xcr0(value: u64) {
    // SAFETY: callers pass only supported bit combinations with x87 set (checked by the
    // emulator or taken from CPUID), and CR4.OSXSAVE is on when XSAVE exists.
    unsafe {
        core::arch::asm!("xsetbv", in("ecx") 0, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nomem, nostack));
    }
}

const MSR_PAT: u32 = 0x277;
const MSR_PLATFORM_INFO: u32 = 0xce;
const MSR_MISC_FEATURES_ENABLES: u32 = 0x140;

/// Turns on what guests rely on: SSE (OSFXSR/OSXMMEXCPT), XSAVE with every state the CPU has,
/// SMEP, Xen's PAT layout (guest cache attributes reach the hardware unchanged), and CPUID
/// faulting where the CPU offers it, so that a plain `cpuid` in a guest traps and sees the
/// guest's CPUID policy. Returns whether CPUID faulting is on.
pub fn setup_for_guests() -> bool {
    use x86_64::registers::control::{Cr4, Cr4Flags};
    let [_, _, c1, _] = cpuid(1, 0);
    let [_, b7, _, _] = cpuid(7, 0);
    let xsave = c1 & (1 << 26) != 0;
    let smep = b7 & (1 << 7) != 0;
    // SAFETY: each bit is enabled only when CPUID reports the feature; none changes how the
    // hypervisor's own (soft-float, SMAP-free) code runs.
    unsafe {
        Cr4::update(|f| {
            f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
            f.set(Cr4Flags::OSXSAVE, xsave);
            f.set(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION, smep);
        });
        wrmsr(MSR_PAT, crate::pv::emulate::XEN_PAT);
    }
    if xsave {
        set_xcr0(xcr0_supported() & 0x7);
    }
    // SAFETY: reading PLATFORM_INFO has no side effects; where it does not exist the read
    // faults and is recovered.
    let faulting = unsafe { rdmsr_safe(MSR_PLATFORM_INFO) }.is_some_and(|v| v & (1 << 31) != 0);
    if faulting {
        // SAFETY: PLATFORM_INFO said CPUID faulting is supported.
        unsafe {
            wrmsr(
                MSR_MISC_FEATURES_ENABLES,
                rdmsr(MSR_MISC_FEATURES_ENABLES) | 1,
            )
        };
    }
    faulting
}

core::arch::global_asm!(
    r#"
.section .text.rdmsr_safe, "ax"
/* rdmsr_safe_raw(msr, *out) -> 0 on success, 1 if the read faulted */
.global rdmsr_safe_raw
rdmsr_safe_raw:
    mov %edi, %ecx
.global rdmsr_safe_insn
rdmsr_safe_insn:
    rdmsr
    mov %eax, (%rsi)
    mov %edx, 4(%rsi)
    xor %eax, %eax
    ret
.global rdmsr_safe_fixup
rdmsr_safe_fixup:
    mov $1, %eax
    ret
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn rdmsr_safe_raw(msr: u32, out: *mut u64) -> u32;
    /// The `rdmsr` that may fault; the fault handler resumes at `rdmsr_safe_fixup`.
    pub fn rdmsr_safe_insn();
    /// Where a faulting `rdmsr_safe_insn` resumes.
    pub fn rdmsr_safe_fixup();
}

/// Reads an MSR that may not exist: `None` if the read raised #GP.
///
/// # Safety
/// Reading the MSR, if it exists, must have no side effects.
unsafe fn rdmsr_safe(msr: u32) -> Option<u64> {
    let mut value = 0u64;
    // SAFETY: `value` is a valid out-pointer; a #GP on the read is recovered by the trap
    // handler's fixup table; the caller vouches for side effects.
    let failed = unsafe { rdmsr_safe_raw(msr, &mut value) };
    (failed == 0).then_some(value)
}

/// Reads an address no page table maps, to test the fault path (`panic-test=fault`): never
/// returns normally.
pub fn read_unmapped_for_test() -> u64 {
    let v: u64;
    // SAFETY: the load is done by the instruction itself, not through a Rust pointer: it
    // faults, and the fault handler stops the machine (the point of the test).
    unsafe {
        core::arch::asm!(
            "mov {v}, qword ptr [{a}]",
            a = in(reg) 0xffff_8100_dead_0000u64,
            v = out(reg) v,
            options(nostack, readonly)
        )
    };
    v
}
