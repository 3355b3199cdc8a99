//! The 8254 PIT, used once at boot as the reference clock for TSC calibration, and the legacy
//! 8259 PICs, which are remapped away from the exception vectors and masked.

use super::cpu::{inb, outb, rdtsc};

const PIT_HZ: u64 = 1_193_182;
const PIT_CHANNEL2: u16 = 0x42;
const PIT_COMMAND: u16 = 0x43;
const PORT_B: u16 = 0x61;

/// Measures the TSC frequency against PIT channel 2 over `ms` milliseconds.
pub fn measure_tsc_hz(ms: u64) -> u64 {
    let count = (PIT_HZ * ms / 1000).clamp(1, 0xffff) as u16;
    // SAFETY: the PIT and port B (speaker gate) are legacy devices the hypervisor owns; the
    // sequence only programs channel 2, which nothing else uses.
    let ticks = unsafe {
        let b = inb(PORT_B);
        outb(PORT_B, (b & !0x02) | 0x01); // speaker off, gate on
        outb(PIT_COMMAND, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0
        outb(PIT_CHANNEL2, count as u8);
        outb(PIT_CHANNEL2, (count >> 8) as u8);
        let b = inb(PORT_B) & !0x01;
        outb(PORT_B, b); // restart the count with a rising gate edge
        outb(PORT_B, b | 0x01);
        let start = rdtsc();
        while inb(PORT_B) & 0x20 == 0 {}
        rdtsc() - start
    };
    ticks * PIT_HZ / u64::from(count)
}

/// The legacy IRQ of COM1.
pub const SERIAL_IRQ: u8 = 4;
/// Vector of the master PIC's first line (see [`disable_legacy_pic`]).
const MASTER_BASE: u8 = 0x20;
/// Vector COM1's receive interrupt arrives on.
pub const SERIAL_VECTOR: u8 = MASTER_BASE + SERIAL_IRQ;
/// Vector the keyboard's interrupt arrives on.
pub const KEYBOARD_VECTOR: u8 = MASTER_BASE + super::keyboard::IRQ;
/// Vector of the master PIC's spurious interrupts (line 7).
pub const SPURIOUS_VECTOR: u8 = MASTER_BASE + 7;

/// Unmasks line `irq` (0–7) of the master PIC.
pub fn unmask_irq(irq: u8) {
    // SAFETY: the PIC's mask register belongs to the hypervisor; clearing one bit only lets
    // that line's interrupt through, on a vector the trap handler expects.
    unsafe { outb(0x21, inb(0x21) & !(1 << (irq & 7))) };
}

/// Acknowledges line `irq` of the master PIC (a specific EOI).
pub fn eoi(irq: u8) {
    // SAFETY: a specific end-of-interrupt command to the master PIC the hypervisor owns.
    unsafe { outb(0x20, 0x60 | (irq & 7)) };
}

/// Remaps the two 8259 PICs to vectors 0x20–0x2f and masks every line: the hypervisor uses the
/// local APIC, and a stray legacy interrupt must not look like an exception.
pub fn disable_legacy_pic() {
    // SAFETY: the standard ICW1–ICW4 initialisation of the PICs, which the hypervisor owns.
    unsafe {
        outb(0x20, 0x11);
        outb(0xa0, 0x11);
        outb(0x21, 0x20);
        outb(0xa1, 0x28);
        outb(0x21, 0x04);
        outb(0xa1, 0x02);
        outb(0x21, 0x01);
        outb(0xa1, 0x01);
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
    }
}
