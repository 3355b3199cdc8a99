//! The COM1 serial console. What it prints is mirrored on the VGA text screen when that
//! console is on (`console=vga`, [`super::vga`]); input comes from COM1 only.

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550Tty};
use x86_64::instructions::interrupts;

const COM1: u16 = 0x3f8;

static CONSOLE: Mutex<Option<Uart16550Tty<PioBackend>>> = Mutex::new(None);

/// Initialises COM1 at 115200 8N1. Output is dropped if the UART does not answer.
pub fn init() {
    // SAFETY: COM1's eight ports belong to the hypervisor for its whole lifetime.
    let uart = unsafe { Uart16550Tty::new_port(COM1, Config::default()) }.ok();
    *CONSOLE.lock() = uart;
}

/// Turns on COM1's receive interrupt (IRQ 4; `OUT2` gates the line to the PIC on PCs).
pub fn enable_rx_interrupt() {
    const IER: u16 = COM1 + 1;
    const MCR: u16 = COM1 + 4;
    const IER_RX_AVAILABLE: u8 = 1;
    const MCR_OUT2: u8 = 1 << 3;
    // SAFETY: COM1 belongs to the hypervisor; these writes only enable its receive interrupt.
    unsafe {
        super::cpu::outb(IER, IER_RX_AVAILABLE);
        super::cpu::outb(MCR, super::cpu::inb(MCR) | MCR_OUT2);
    }
}

/// Stops all console output (`console=none`).
pub fn disable() {
    *CONSOLE.lock() = None;
}

/// Writes formatted text; interrupts are off while the console lock is held so that an
/// interrupt handler that logs cannot deadlock against the code it interrupted.
pub fn print(args: fmt::Arguments<'_>) {
    interrupts::without_interrupts(|| {
        if let Some(uart) = CONSOLE.lock().as_mut() {
            let _ = uart.write_fmt(args);
        }
    });
    super::vga::print(args);
}

/// Writes formatted text on the crash path, even if the lock is held by the code that faulted.
pub fn print_emergency(args: fmt::Arguments<'_>) {
    if CONSOLE.is_locked() {
        // SAFETY: we are on the crash path with interrupts off on the only CPU; whoever held
        // the lock was interrupted by the fault and will never run again.
        unsafe { CONSOLE.force_unlock() };
    }
    super::vga::unlock_for_emergency();
    print(args);
}

/// Waits (boundedly) until the UART has sent every byte, so that output written just before the
/// machine stops is not lost.
pub fn flush() {
    const LINE_STATUS: u16 = COM1 + 5;
    const TRANSMITTER_EMPTY: u8 = 1 << 6;
    for _ in 0..100_000 {
        // SAFETY: reading COM1's line status register has no side effects.
        if unsafe { super::cpu::inb(LINE_STATUS) } & TRANSMITTER_EMPTY != 0 {
            break;
        }
        core::hint::spin_loop();
    }
}

/// Writes raw bytes (guest console output), turning `\n` into `\r\n`.
pub fn write_bytes(bytes: &[u8]) {
    interrupts::without_interrupts(|| {
        if let Some(uart) = CONSOLE.lock().as_mut() {
            for &b in bytes {
                if b == b'\n' {
                    uart.inner_mut().send_bytes_exact(b"\r");
                }
                uart.inner_mut().send_bytes_exact(&[b]);
            }
        }
    });
    super::vga::write_bytes(bytes);
}

/// Reads whatever input is waiting, without blocking.
pub fn read_bytes(buf: &mut [u8]) -> usize {
    interrupts::without_interrupts(|| {
        let mut n = 0;
        if let Some(uart) = CONSOLE.lock().as_mut() {
            while n < buf.len() {
                match uart.inner_mut().try_receive_byte() {
                    Ok(b) => {
                        buf[n] = b;
                        n += 1;
                    }
                    Err(_) => break,
                }
            }
        }
        n
    })
}
