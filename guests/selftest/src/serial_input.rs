//! `input.*`, run instead of the other checks when the command line says `serial-input`: the
//! test harness types on the serial line once the guest says it waits, and the checks follow
//! the input through the hypervisor: `VIRQ_CONSOLE` when a line arrives for dom0,
//! `console_io(CONSOLEIO_read)` returning it, and `VIRQ_DEBUG` after the harness switches the
//! input to the hypervisor (Ctrl-A three times) and presses its `q` debug key.

use core::sync::atomic::{Ordering, compiler_fence};

use guest_abi::println;
use guest_abi::runtime::hypercall;
use guest_abi::xen::{StartInfo, Virq};

use crate::check::{Report, Why, ensure, eq};
use crate::{domain, events};

/// How long the harness may take to type (ns of guest time; generous for TCG).
const WAIT_NS: u64 = 30_000_000_000;

/// What the harness types for dom0.
const LINE: &[u8] = b"ping";

pub fn run(r: &mut Report, si: &StartInfo) {
    r.check_eq("input.map shared_info", domain::map_shared_info(si), Ok(0));
    let console = events::bind_virq(Virq::Console as u32, 0);
    let debug = events::bind_virq(Virq::Debug as u32, 0);
    let (Ok(console), Ok(debug)) = (console, debug) else {
        r.check(
            "input.bind VIRQ_CONSOLE and VIRQ_DEBUG",
            Err(Why::Text("refused")),
        );
        return;
    };
    println!("selftest: waiting for serial input");
    r.check("input.VIRQ_CONSOLE on serial input", fires(console.0));
    r.check("input.console_io read returns the line", read_line());
    println!("selftest: waiting for debug key");
    r.check("input.VIRQ_DEBUG on the 'q' debug key", fires(debug.0));
}

/// Polls `port` until it is pending or the wait ends.
fn fires(port: u32) -> Result<(), Why> {
    let deadline = events::time() + WAIT_NS;
    while events::time() < deadline {
        let _ = events::poll(&[port], deadline);
        compiler_fence(Ordering::SeqCst);
        if pending(port) {
            return Ok(());
        }
    }
    Err(Why::Text("not raised"))
}

fn pending(port: u32) -> bool {
    let Some(si) = domain::shared_info() else {
        return false;
    };
    let word = (port / 64) as usize;
    // SAFETY: `si` maps the shared info page; one volatile read of a word the hypervisor
    // writes concurrently.
    let bits = unsafe { (&raw const (*si).evtchn_pending[word]).read_volatile() };
    bits & (1 << (port % 64)) != 0
}

/// Reads what was typed; it may arrive in pieces.
fn read_line() -> Result<(), Why> {
    let mut buf = [0u8; 64];
    let mut got = 0;
    let deadline = events::time() + WAIT_NS;
    while got < LINE.len() && events::time() < deadline {
        match hypercall::console_read(&mut buf[got..]) {
            Ok(n) => got += n as usize,
            Err(err) => {
                return Err(Why::Xen {
                    what: "CONSOLEIO_read",
                    err,
                });
            }
        }
        if got < LINE.len() {
            let _ = hypercall::sched_yield();
        }
    }
    ensure(buf.starts_with(LINE), "not the line typed")?;
    eq("bytes", got.min(LINE.len()) as u64, LINE.len() as u64)
}
