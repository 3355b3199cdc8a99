//! The local APIC (x2APIC when the CPU has it) and its timer.

use super::cpu::{Features, rdmsr, wrmsr};
use super::paging::phys_to_virt;
use super::time;
use core::sync::atomic::{AtomicU64, Ordering};

/// Vector of the LAPIC timer interrupt.
pub const TIMER_VECTOR: u8 = 0xf0;
/// Vector of spurious LAPIC interrupts.
pub const SPURIOUS_VECTOR: u8 = 0xff;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_ENABLE: u64 = 1 << 11;
const X2APIC_ENABLE: u64 = 1 << 10;

const REG_ID: u32 = 0x20;
const REG_TPR: u32 = 0x80;
const REG_EOI: u32 = 0xb0;
const REG_SVR: u32 = 0xf0;
const REG_ICR_LOW: u32 = 0x300;
const REG_ICR_HIGH: u32 = 0x310;
const REG_LVT_TIMER: u32 = 0x320;
const REG_TIMER_INITIAL: u32 = 0x380;
const REG_TIMER_CURRENT: u32 = 0x390;
const REG_TIMER_DIVIDE: u32 = 0x3e0;

const LVT_MASKED: u32 = 1 << 16;
const DIVIDE_BY_16: u32 = 0b0011;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    X2apic,
    Xapic { base: u64 },
}

struct Apic {
    mode: Mode,
    /// Timer ticks (after the divider) per millisecond.
    ticks_per_ms: u64,
}

static APIC: spin::Once<Apic> = spin::Once::new();
static TIMER_INTERRUPTS: AtomicU64 = AtomicU64::new(0);

fn mode() -> Mode {
    APIC.get().map_or(Mode::X2apic, |a| a.mode)
}

fn read(mode: Mode, reg: u32) -> u32 {
    match mode {
        // SAFETY: x2APIC mode is enabled, so MSRs 0x800.. map the APIC registers.
        Mode::X2apic => unsafe { rdmsr(0x800 + (reg >> 4)) as u32 },
        // SAFETY: `base` is the APIC's MMIO page, direct-mapped; registers are 32-bit aligned.
        Mode::Xapic { base } => unsafe {
            core::ptr::read_volatile((base + u64::from(reg)) as *const u32)
        },
    }
}

fn write(mode: Mode, reg: u32, value: u32) {
    match mode {
        // SAFETY: as in `read`; writes to the registers used here have no memory effects.
        Mode::X2apic => unsafe { wrmsr(0x800 + (reg >> 4), u64::from(value)) },
        // SAFETY: as in `read`.
        Mode::Xapic { base } => unsafe {
            core::ptr::write_volatile((base + u64::from(reg)) as *mut u32, value)
        },
    }
}

/// Enables the local APIC (x2APIC if available), with the timer masked, and calibrates the
/// timer against the TSC. Returns a description for the boot log.
pub fn init(features: &Features) -> (&'static str, u32, u64) {
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC; setting the enable bits
    // (x2APIC only when CPUID reports it) is the documented way to turn it on.
    let mode = unsafe {
        let base = rdmsr(IA32_APIC_BASE);
        if features.x2apic {
            wrmsr(IA32_APIC_BASE, base | APIC_ENABLE | X2APIC_ENABLE);
            Mode::X2apic
        } else {
            wrmsr(IA32_APIC_BASE, base | APIC_ENABLE);
            Mode::Xapic {
                base: phys_to_virt(base & 0x000f_ffff_ffff_f000),
            }
        }
    };
    write(mode, REG_TPR, 0);
    write(mode, REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(mode, REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write(mode, REG_TIMER_DIVIDE, DIVIDE_BY_16);

    // Count down from the maximum for 10 ms of TSC time.
    write(mode, REG_TIMER_INITIAL, u32::MAX);
    time::spin_for(10_000_000);
    let elapsed = u32::MAX - read(mode, REG_TIMER_CURRENT);
    write(mode, REG_TIMER_INITIAL, 0);
    let ticks_per_ms = (u64::from(elapsed) / 10).max(1);

    APIC.call_once(|| Apic { mode, ticks_per_ms });
    let id = current_id();
    let name = if mode == Mode::X2apic {
        "x2APIC"
    } else {
        "xAPIC"
    };
    (name, id, ticks_per_ms)
}

/// The running CPU's local APIC id.
pub fn current_id() -> u32 {
    let mode = mode();
    match mode {
        Mode::X2apic => read(mode, REG_ID),
        Mode::Xapic { .. } => read(mode, REG_ID) >> 24,
    }
}

/// Turns on a started CPU's local APIC in the boot CPU's mode, timer masked (the boot CPU's
/// calibration holds: every CPU's APIC timer runs from the same bus clock).
pub fn init_secondary() {
    let mode = mode();
    // SAFETY: as in `init`; this CPU's own APIC base MSR.
    unsafe {
        let base = rdmsr(IA32_APIC_BASE);
        let x2 = if mode == Mode::X2apic {
            X2APIC_ENABLE
        } else {
            0
        };
        wrmsr(IA32_APIC_BASE, base | APIC_ENABLE | x2);
    }
    write(mode, REG_TPR, 0);
    write(mode, REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(mode, REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
}

/// Sends an interprocessor interrupt with ICR low word `low` to the CPU with APIC id `dest`,
/// and waits (boundedly) until the APIC has delivered it.
fn send_ipi(dest: u32, low: u32) {
    const DELIVERY_PENDING: u32 = 1 << 12;
    let mode = mode();
    match mode {
        // SAFETY: the x2APIC ICR is one 64-bit MSR; writing it sends the IPI.
        Mode::X2apic => unsafe { wrmsr(0x830, (u64::from(dest) << 32) | u64::from(low)) },
        Mode::Xapic { .. } => {
            write(mode, REG_ICR_HIGH, dest << 24);
            write(mode, REG_ICR_LOW, low);
            for _ in 0..100_000 {
                if read(mode, REG_ICR_LOW) & DELIVERY_PENDING == 0 {
                    break;
                }
                core::hint::spin_loop();
            }
        }
    }
}

/// INIT (level assert) to the CPU with APIC id `dest`: it resets and waits for STARTUP.
pub fn send_init(dest: u32) {
    const INIT_ASSERT: u32 = (0b101 << 8) | (1 << 14);
    send_ipi(dest, INIT_ASSERT);
}

/// STARTUP to the CPU with APIC id `dest`: it starts in real mode at physical `page << 12`.
pub fn send_startup(dest: u32, page: u8) {
    const STARTUP: u32 = (0b110 << 8) | (1 << 14);
    send_ipi(dest, STARTUP | u32::from(page));
}

/// Lets the legacy PIC's interrupts in through LINT0 (virtual-wire mode, as firmware leaves
/// it on PCs): the PIC supplies the vector, and it, not the LAPIC, takes the EOI.
pub fn route_legacy_pic() {
    const REG_LVT_LINT0: u32 = 0x350;
    const DELIVERY_EXTINT: u32 = 0b111 << 8;
    write(mode(), REG_LVT_LINT0, DELIVERY_EXTINT);
}

/// Arms the timer to fire once after `ns` nanoseconds (rounded up to one tick).
pub fn arm_oneshot(ns: u64) {
    let Some(apic) = APIC.get() else { return };
    let ticks = (ns.saturating_mul(apic.ticks_per_ms) / 1_000_000).clamp(1, u64::from(u32::MAX));
    write(apic.mode, REG_LVT_TIMER, u32::from(TIMER_VECTOR));
    write(apic.mode, REG_TIMER_INITIAL, ticks as u32);
}

/// Acknowledges the interrupt being handled.
pub fn eoi() {
    write(mode(), REG_EOI, 0);
}

/// Handles the timer vector.
pub fn timer_interrupt() {
    TIMER_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    (super::handlers::get().timer)();
    eoi();
}

/// How many timer interrupts have been taken.
pub fn timer_interrupts() -> u64 {
    TIMER_INTERRUPTS.load(Ordering::Relaxed)
}
