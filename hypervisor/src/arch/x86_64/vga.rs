//! The VGA text console (`console=vga`): the screen's cells ([`Screen`]) drawn into the text
//! buffer at physical `0xb8000`, and the hardware cursor moved with them, for machines
//! without a serial port. Text mode only: a machine booted by UEFI firmware has a pixel
//! framebuffer instead, and nothing is drawn there.
//!
//! # Safety
//! The text buffer lies in the first 4 GiB, which the direct map always covers (boot and
//! final tables alike); the CRT controller's index/data ports (`0x3d4`/`0x3d5`) are the
//! hypervisor's once this console is on.

use core::fmt::{self, Write};
use spin::Mutex;
use x86_64::instructions::interrupts;

use super::cpu::outb;
use super::paging::phys_to_virt;
use crate::console::screen::{COLS, ROWS, Screen};

/// Physical address of the colour text buffer.
const TEXT_BUFFER: u64 = 0xb8000;
const CRTC_INDEX: u16 = 0x3d4;
const CRTC_DATA: u16 = 0x3d5;
const CURSOR_HIGH: u8 = 0x0e;
const CURSOR_LOW: u8 = 0x0f;

static SCREEN: Mutex<Option<Screen>> = Mutex::new(None);

/// Turns the console on: clears the screen.
pub fn init() {
    let mut screen = Screen::new();
    draw(&mut screen);
    *SCREEN.lock() = Some(screen);
}

/// Writes raw bytes (as a terminal: see [`Screen`]).
pub fn write_bytes(bytes: &[u8]) {
    interrupts::without_interrupts(|| {
        if let Some(screen) = SCREEN.lock().as_mut() {
            screen.write(bytes);
            draw(screen);
        }
    });
}

/// Writes formatted text.
pub fn print(args: fmt::Arguments<'_>) {
    struct Adapter<'a>(&'a mut Screen);
    impl Write for Adapter<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.write(s.as_bytes());
            Ok(())
        }
    }
    interrupts::without_interrupts(|| {
        if let Some(screen) = SCREEN.lock().as_mut() {
            let _ = Adapter(screen).write_fmt(args);
            draw(screen);
        }
    });
}

/// On the crash path: takes the screen even if the code that faulted held it.
pub fn unlock_for_emergency() {
    if SCREEN.is_locked() {
        // SAFETY: the crash path runs with interrupts off on the only CPU; whoever held the
        // lock was interrupted by the fault and never runs again.
        unsafe { SCREEN.force_unlock() };
    }
}

/// Copies the changed cells into the text buffer and moves the hardware cursor.
fn draw(screen: &mut Screen) {
    if let Some((start, end)) = screen.take_dirty() {
        let buffer = phys_to_virt(TEXT_BUFFER) as *mut u16;
        for (i, &cell) in screen.cells()[start..end].iter().enumerate() {
            // SAFETY: the text buffer is direct-mapped (module rules) and holds COLS × ROWS
            // cells; `start + i < end <= COLS * ROWS`.
            unsafe { buffer.add(start + i).write_volatile(cell) };
        }
    }
    let (row, col) = screen.cursor();
    let at = (row * COLS + col).min(COLS * ROWS - 1) as u16;
    // SAFETY: the CRT controller's cursor registers are the hypervisor's (module rules).
    unsafe {
        outb(CRTC_INDEX, CURSOR_HIGH);
        outb(CRTC_DATA, (at >> 8) as u8);
        outb(CRTC_INDEX, CURSOR_LOW);
        outb(CRTC_DATA, at as u8);
    }
}
