//! The PC keyboard behind the i8042 controller, as console input next to COM1 (on with the
//! VGA console: a machine with a screen has a keyboard). Its interrupt (legacy IRQ 1) runs the
//! same console-input handler as COM1's; the scan codes become terminal bytes in
//! [`crate::console::keyboard`].
//!
//! # Safety
//! Ports `0x60` (data) and `0x64` (status/command) are the hypervisor's. A machine without the
//! controller reads all-ones from them; that is taken as "no keyboard", and each read is
//! bounded, so a missing or babbling controller cannot hold the CPU.

use spin::Mutex;

use super::cpu::inb;
use crate::console::keyboard::Keyboard;

/// Legacy IRQ of the keyboard.
pub const IRQ: u8 = 1;
const DATA: u16 = 0x60;
const STATUS: u16 = 0x64;
const OUTPUT_FULL: u8 = 1 << 0;
/// The byte waiting is from the mouse (auxiliary device), not the keyboard.
const FROM_AUX: u8 = 1 << 5;
/// Most scan codes taken per call.
const MAX_CODES: usize = 32;

static KEYBOARD: Mutex<Option<Keyboard>> = Mutex::new(None);

/// Turns keyboard input on; false when no controller answers.
pub fn init() -> bool {
    // SAFETY: reading the i8042 status port has no side effect (module rules).
    if unsafe { inb(STATUS) } == 0xff {
        return false;
    }
    drain_stale();
    *KEYBOARD.lock() = Some(Keyboard::new());
    true
}

/// Drops what the firmware left in the output buffer.
fn drain_stale() {
    for _ in 0..MAX_CODES {
        // SAFETY: as in `init`; reading the data port takes the waiting byte.
        unsafe {
            if inb(STATUS) & OUTPUT_FULL == 0 {
                break;
            }
            inb(DATA);
        }
    }
}

/// Reads the keys pressed since the last call into `buf`, as terminal bytes; returns how many.
/// A press whose bytes do not fit whole in what is left of `buf` is dropped.
pub fn read_bytes(buf: &mut [u8]) -> usize {
    let mut guard = KEYBOARD.lock();
    let Some(keyboard) = guard.as_mut() else {
        return 0;
    };
    let mut n = 0;
    for _ in 0..MAX_CODES {
        // SAFETY: as in `init` and `drain_stale`.
        let (status, code) = unsafe {
            let status = inb(STATUS);
            if status == 0xff || status & OUTPUT_FULL == 0 {
                break;
            }
            (status, inb(DATA))
        };
        if status & FROM_AUX != 0 {
            continue;
        }
        if let Some(key) = keyboard.feed(code) {
            let bytes = key.as_slice();
            if let Some(dst) = buf.get_mut(n..n + bytes.len()) {
                dst.copy_from_slice(bytes);
                n += bytes.len();
            }
        }
    }
    n
}
