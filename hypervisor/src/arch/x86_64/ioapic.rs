//! The I/O APICs the MADT lists. At boot every pin is masked: whatever routing the firmware or
//! the boot loader left must not deliver a device interrupt into the hypervisor (its own legacy
//! lines, COM1 and the keyboard, come through the 8259 PIC and the local APIC's LINT0). Pins are
//! reached through the I/O APIC's index and data registers, in the direct map (the first 4 GiB
//! are always mapped; firmware marks the range uncacheable).

use super::paging::phys_to_virt;
use crate::boot::madt::Madt;
use spin::Mutex;

/// Offset of the index register (IOREGSEL).
const INDEX: u64 = 0x00;
/// Offset of the data window (IOWIN).
const DATA: u64 = 0x10;
/// The version register: the highest redirection entry in bits 16–23.
const VERSION: u32 = 0x01;
/// The first redirection entry's low half; entry `n` is at `0x10 + 2n` (low) and `+ 1` (high).
const REDIRECTION_BASE: u32 = 0x10;
/// A redirection entry's mask bit (in its low half).
const MASKED: u32 = 1 << 16;

/// Serialises index-then-data accesses (an interrupt handler may program pins too, later).
static REGISTERS: Mutex<()> = Mutex::new(());

/// The number of pins an I/O APIC with version register `version` has.
pub const fn pins(version: u32) -> u32 {
    ((version >> 16) & 0xff) + 1
}

fn read(base: u64, reg: u32) -> u32 {
    let virt = phys_to_virt(base);
    // SAFETY: `base` is an I/O APIC the MADT lists, inside the always-mapped first 4 GiB; the
    // index write and the data read are one register access of the device, under REGISTERS.
    unsafe {
        ((virt + INDEX) as *mut u32).write_volatile(reg);
        ((virt + DATA) as *const u32).read_volatile()
    }
}

fn write(base: u64, reg: u32, value: u32) {
    let virt = phys_to_virt(base);
    // SAFETY: as for `read`; the hypervisor owns the I/O APICs.
    unsafe {
        ((virt + INDEX) as *mut u32).write_volatile(reg);
        ((virt + DATA) as *mut u32).write_volatile(value);
    }
}

/// Masks every pin of every I/O APIC below 4 GiB in `madt`; returns how many pins that was.
pub fn mask_all(madt: &Madt) -> u32 {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let _held = REGISTERS.lock();
        let mut masked = 0;
        for io in madt.ioapics.iter().filter(|io| io.address < 1 << 32) {
            let n = pins(read(io.address, VERSION)).min(240);
            for pin in 0..n {
                let reg = REDIRECTION_BASE + 2 * pin;
                write(io.address, reg, read(io.address, reg) | MASKED);
            }
            masked += n;
        }
        masked
    })
}
