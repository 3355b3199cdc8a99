//! Power off, reboot and the crash stop.
//!
//! Power off uses ACPI S5 through the FADT's PM1 control ports; reboot uses the FADT reset
//! register, then port 0xcf9, then the keyboard controller. Where those do not stop the machine
//! (and always for a crash), QEMU's `isa-debug-exit` device, when present, ends the run with a
//! status that tells the test harness what happened.

use super::cpu::{halt_forever, outb, outl, outw};
use super::{serial, time};
use crate::boot::acpi::PowerControl;
use core::sync::atomic::{AtomicBool, Ordering};

/// I/O port of QEMU's `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Debug-exit code for "powered off" (QEMU exits with status `(code << 1) | 1` = 33).
pub const DEBUG_EXIT_POWEROFF: u32 = 0x10;
/// Debug-exit code for "crashed" (QEMU exit status 35).
pub const DEBUG_EXIT_CRASH: u32 = 0x11;
/// Debug-exit code for "dom0 crashed" (QEMU exit status 37).
pub const DEBUG_EXIT_DOM0_CRASH: u32 = 0x12;

static POWER: spin::Once<PowerControl> = spin::Once::new();
static NOREBOOT: AtomicBool = AtomicBool::new(false);

/// Records the ACPI power controls found at boot.
pub fn set_acpi(pc: PowerControl) {
    POWER.call_once(|| pc);
}

/// `noreboot`: stay halted after a crash instead of rebooting.
pub fn set_noreboot(noreboot: bool) {
    NOREBOOT.store(noreboot, Ordering::Relaxed);
}

fn debug_exit(code: u32) {
    serial::flush();
    // SAFETY: port 0xf4 is unused on PC hardware; under QEMU with isa-debug-exit it ends the
    // process, otherwise the write is ignored.
    unsafe { outl(DEBUG_EXIT_PORT, code) };
}

/// Turns the machine off.
pub fn power_off() -> ! {
    serial::print(format_args!("(HV) Powering off.\n"));
    x86_64::instructions::interrupts::disable();
    if let Some(pc) = POWER.get() {
        // SAFETY: the PM1 control ports come from the FADT; writing SLP_TYP|SLP_EN enters S5.
        unsafe {
            outw(pc.pm1a_cnt, PowerControl::s5_command(pc.s5_sleep_type.0));
            if let Some(pm1b) = pc.pm1b_cnt {
                outw(pm1b, PowerControl::s5_command(pc.s5_sleep_type.1));
            }
        }
        time::spin_for(100_000_000);
    }
    debug_exit(DEBUG_EXIT_POWEROFF);
    serial::print(format_args!("(HV) Power off failed; halting.\n"));
    halt_forever()
}

/// Restarts the machine.
pub fn reboot() -> ! {
    serial::print(format_args!("(HV) Rebooting.\n"));
    x86_64::instructions::interrupts::disable();
    // SAFETY: each write is a documented reset mechanism of the platform; if one is absent
    // the write is ignored and the next is tried.
    unsafe {
        if let Some(reset) = POWER.get().and_then(|pc| pc.reset) {
            outb(reset.port, reset.value);
            time::spin_for(50_000_000);
        }
        outb(0xcf9, 0x02);
        outb(0xcf9, 0x06);
        time::spin_for(50_000_000);
        outb(0x64, 0xfe);
        time::spin_for(50_000_000);
    }
    halt_forever()
}

/// Stops the machine after a fatal error: a failure status under QEMU, otherwise a halt
/// (`noreboot`) or a reboot.
pub fn crash() -> ! {
    debug_exit(DEBUG_EXIT_CRASH);
    if NOREBOOT.load(Ordering::Relaxed) {
        serial::print_emergency(format_args!("(HV) Halting (noreboot).\n"));
        halt_forever()
    }
    serial::print_emergency(format_args!("(HV) Rebooting in 5 seconds.\n"));
    time::spin_for(5_000_000_000);
    reboot()
}

/// Stops the machine because dom0 crashed: a failure status under QEMU, otherwise as Xen
/// does, a halt (`noreboot`) or a reboot.
pub fn dom0_crashed() -> ! {
    debug_exit(DEBUG_EXIT_DOM0_CRASH);
    if NOREBOOT.load(Ordering::Relaxed) {
        serial::print(format_args!("(HV) Halting (noreboot).\n"));
        halt_forever()
    }
    reboot()
}
