//! Console output: `console_io` for dom0, the console ring plus its event channel for a
//! domU (found through `start_info.console.domU`).

use core::fmt;
use core::sync::atomic::{Ordering, fence};

use super::{hypercall, start_info, virt_base};
use crate::arch::MACH2PHYS_VIRT_START;
use crate::console::XenconsInterface;
use crate::xen::SifFlags;
use crate::{PAGE_SHIFT, XenError};

/// The guest's console; writes go straight out (no buffering, no lock: one vCPU).
#[derive(Clone, Copy, Debug, Default)]
pub struct Console;

impl Console {
    /// Writes `bytes` to the domain's console.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<(), XenError> {
        let si = start_info();
        if si.sif_flags().contains(SifFlags::INITDOMAIN) {
            for chunk in bytes.chunks(512) {
                hypercall::console_write(chunk)?;
            }
            Ok(())
        } else {
            ring_write(si.console.mfn, si.console.evtchn, bytes)
        }
    }
}

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes()).map_err(|_| fmt::Error)
    }
}

/// The virtual address of machine frame `mfn`, if it is in the bootstrap region: its PFN
/// from the machine-to-phys table, then `VIRT_BASE + pfn * 4096`.
fn mfn_to_virt(mfn: u64) -> u64 {
    let m2p = MACH2PHYS_VIRT_START as *const u64;
    // SAFETY: Xen maps the read-only M2P table at MACH2PHYS_VIRT_START in every PV guest
    // and the console frame is one of the domain's own, so its entry exists (module
    // assumptions); a volatile read because Xen updates the table.
    let pfn = unsafe { m2p.add(mfn as usize).read_volatile() };
    virt_base() + (pfn << PAGE_SHIFT)
}

/// Puts `bytes` into the console ring's output half and notifies the backend.
fn ring_write(mfn: u64, port: u32, mut bytes: &[u8]) -> Result<(), XenError> {
    let ring = mfn_to_virt(mfn) as *mut XenconsInterface;
    // SAFETY: for the whole loop, `ring` points to the console page of this domain, mapped
    // in the bootstrap region; the backend (another domain) accesses it concurrently, so
    // every access is a volatile read or write of one field through raw pointers, never a
    // reference; the fences order the data before the index as the ring protocol needs.
    unsafe {
        let out = &raw mut (*ring).out;
        let prod_ptr = &raw mut (*ring).out_prod;
        let cons_ptr = &raw const (*ring).out_cons;
        while !bytes.is_empty() {
            let cons = cons_ptr.read_volatile();
            let prod = prod_ptr.read_volatile();
            fence(Ordering::Acquire);
            let space = XenconsInterface::out_space(prod, cons) as usize;
            if space == 0 {
                hypercall::evtchn_send(port)?;
                hypercall::sched_yield()?;
                continue;
            }
            let n = space.min(bytes.len());
            for (i, &b) in bytes[..n].iter().enumerate() {
                let at = XenconsInterface::out_index(prod.wrapping_add(i as u32));
                (out as *mut u8).add(at).write_volatile(b);
            }
            fence(Ordering::Release);
            prod_ptr.write_volatile(prod.wrapping_add(n as u32));
            hypercall::evtchn_send(port)?;
            bytes = &bytes[n..];
        }
    }
    Ok(())
}

/// Prints to the domain's console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::runtime::console::Console, format_args!($($arg)*));
    }};
}

/// Prints a line to the domain's console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{
        $crate::print!("{}\n", format_args!($($arg)*));
    }};
}
