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
