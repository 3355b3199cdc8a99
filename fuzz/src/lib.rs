//! Shared pieces of the fuzz targets: the driver of the PV MMU fake machine (`mmu`) and a fake
//! guest memory.
//!
//! The fakes themselves (frame store, pool, M2P, the fake hypercall host) and the PV MMU's
//! reference checker are the hypervisor's test doubles, the same code its unit tests use
//! (`hypervisor` with the `test-doubles` feature: `hypervisor::mm::pv::fake`,
//! `hypervisor::testing`). The checker does not share code with what it checks beyond the
//! entry adjustment: it recomputes every reference and type count from the frame contents, the
//! pins and the base pointers, and checks the five invariants of `docs/PV-MMU.md`
//! (`docs/DESIGN.md`, "The PV MMU: five invariants").

pub mod mmu;

use hypervisor::pv::guest_mem::{GuestFault, GuestMemory, check_guest_range};

/// A guest address space with one mapped window `[base, base + bytes.len())`.
#[derive(Debug)]
pub struct Window {
    /// First mapped address.
    pub base: u64,
    /// Its contents.
    pub bytes: Vec<u8>,
}

impl Window {
    fn offset(&self, va: u64, len: usize) -> Result<usize, GuestFault> {
        check_guest_range(va, len)?;
        let off = va.checked_sub(self.base).ok_or(GuestFault { va })?;
        let end = off.checked_add(len as u64).ok_or(GuestFault { va })?;
        if end > self.bytes.len() as u64 {
            return Err(GuestFault { va });
        }
        Ok(off as usize)
    }
}

impl GuestMemory for Window {
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), GuestFault> {
        let off = self.offset(va, buf.len())?;
        buf.copy_from_slice(&self.bytes[off..off + buf.len()]);
        Ok(())
    }

    fn write(&mut self, va: u64, buf: &[u8]) -> Result<(), GuestFault> {
        let off = self.offset(va, buf.len())?;
        self.bytes[off..off + buf.len()].copy_from_slice(buf);
        Ok(())
    }
}
