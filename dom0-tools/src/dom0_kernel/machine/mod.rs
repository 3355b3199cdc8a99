//! The bare-metal half of the kernel: [`main`], the [`Machine`] over the hypervisor
//! console and event channels, and the hypercall-backed pieces below it.

mod events;
mod grant_io;
mod hcall;
mod heap;
mod mapping;
mod slots;
mod spare;
mod xen;

use dom0_tools::Toolstack;
use dom0_tools::cpio::Archive;
use guest_abi::runtime::{console, hypercall};
use guest_abi::xen::{SifFlags, StartInfo};
use guest_abi::{EvtchnPort, println};

use super::session::{self, Machine, Session};
use events::Events;

/// The machine under the session: the hypervisor console and event channels.
struct Console {
    events: Events,
    /// `stamps` on the command line: each line of the session's output starts with
    /// `@NS ` (pvclock system time in ns when its first byte was written), for
    /// `scripts/bench.sh` to time the toolstack's operations.
    stamps: bool,
    /// The next byte written starts a line.
    line_start: bool,
}

impl Machine for Console {
    fn write(&mut self, bytes: &[u8]) {
        if !self.stamps {
            let _ = console::Console.write_bytes(bytes);
            return;
        }
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            if self.line_start {
                let stamp = alloc::format!("@{} ", self.events.now_ns());
                let _ = console::Console.write_bytes(stamp.as_bytes());
            }
            let _ = console::Console.write_bytes(piece);
            self.line_start = piece.ends_with(b"\n");
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> usize {
        hypercall::console_read(buf).map_or(0, |n| (n as usize).min(buf.len()))
    }

    fn wait(&mut self, ports: &[EvtchnPort], millis: u64) -> bool {
        self.events.wait(ports, millis)
    }

    fn now_ms(&mut self) -> u64 {
        self.events.now_ns() / 1_000_000
    }

    fn has_dom_exc(&self) -> bool {
        self.events.dom_exc_port().is_some()
    }

    fn take_dom_exc(&mut self) -> bool {
        self.events.take_dom_exc()
    }
}

/// The ramdisk: where the hypervisor mapped module 1.
fn ramdisk(si: &StartInfo) -> Option<&'static [u8]> {
    if si.mod_start == 0 || si.mod_len == 0 {
        return None;
    }
    if si.sif_flags().contains(SifFlags::MOD_START_PFN) {
        println!("dom0: the ramdisk is given by PFN, which this kernel does not map");
        return None;
    }
    // SAFETY: the hypervisor maps mod_len bytes of ramdisk at mod_start for the
    // domain's life and nothing writes them (module assumptions).
    Some(unsafe { core::slice::from_raw_parts(si.mod_start as *const u8, si.mod_len as usize) })
}

/// The dom0 archive, or an empty one (with a message saying why).
fn archive(si: &StartInfo) -> Archive<'static> {
    let parsed = match ramdisk(si) {
        Some(bytes) => Archive::parse(bytes)
            .inspect(|a| println!("dom0: ramdisk: {} bytes, {} entries", bytes.len(), a.len()))
            .map_err(|e| println!("dom0: the ramdisk is not a newc cpio archive: {e}")),
        None => {
            println!("dom0: no ramdisk: there are no files to create domains from");
            Err(())
        }
    };
    parsed.unwrap_or_default()
}

/// The kernel: runs the session, then returns, and the runtime powers off.
pub fn main(si: &'static StartInfo) {
    heap::init(si);
    println!(
        "dom0: dom0-tools {}: the toolstack",
        env!("CARGO_PKG_VERSION")
    );
    let events = match Events::new(si) {
        Ok(events) => events,
        Err(e) => {
            println!("dom0: cannot map the shared info page: {e}; powering off");
            return;
        }
    };
    let _functions = super::devices::init();
    let files = archive(si);
    let cmdline = core::str::from_utf8(si.cmdline()).unwrap_or("");
    let script = session::script_path(cmdline).map(|path| (path, files.file(path)));
    let stamps = cmdline.split_ascii_whitespace().any(|w| w == "stamps");
    let console = Console {
        events,
        stamps,
        line_start: true,
    };
    let mut s = Session::new(Toolstack::new(xen::Xen, files), console);
    match script {
        Some((path, Ok(bytes))) => {
            println!("dom0: running the commands in {path}");
            s.run_script(&alloc::string::String::from_utf8_lossy(bytes));
            println!("dom0: end of {path}");
        }
        Some((path, Err(e))) => println!("dom0: cannot read the script {path}: {e}"),
        None => {
            println!("dom0: type 'help' for the commands; Ctrl-] leaves a console");
            s.interact();
        }
    }
    println!("dom0: powering off");
}
