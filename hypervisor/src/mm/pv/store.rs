//! What the PV MMU needs from the machine: frame contents and records, free frames, and the M2P
//! table. The bare-metal build implements these over the direct map and the frame allocator; the
//! host tests over a fake memory of a few hundred frames.

use super::{FrameInfo, Pfn};
use crate::mm::Mfn;

/// Entries in one page-table frame.
pub const ENTRIES: usize = 512;

/// Frame records and frame contents.
///
/// Preconditions the PV MMU guarantees: every `mfn` it passes is below
/// [`frame_limit`](Self::frame_limit) and every `slot` below [`ENTRIES`].
pub trait FrameStore {
    /// Frames `0..frame_limit()` have a record; frames above are outside RAM (I/O memory or
    /// nothing) and are never reference counted.
    fn frame_limit(&self) -> u64;
    /// The record of `mfn`.
    fn info(&self, mfn: Mfn) -> &FrameInfo;
    /// The record of `mfn`, for update.
    fn info_mut(&mut self, mfn: Mfn) -> &mut FrameInfo;
    /// Reads the 64-bit word `slot` of frame `mfn`.
    fn read_entry(&self, mfn: Mfn, slot: usize) -> u64;
    /// Writes the 64-bit word `slot` of frame `mfn`.
    fn write_entry(&mut self, mfn: Mfn, slot: usize, value: u64);
    /// Fills L4 slots 256–271 of the table `l4` with the hypervisor's entries (the M2P, the
    /// hypervisor image, the direct map). Called each time an L4 is validated; whatever the guest
    /// wrote there is overwritten.
    fn fill_hypervisor_slots(&mut self, l4: Mfn);
    /// Whether I/O frame `mfn` (outside RAM, or owned by `DOMID_IO`) may be mapped at all by a
    /// domain with I/O access: not beyond the physical address width, not the hypervisor's own
    /// devices (local APIC, I/O APIC, HPET).
    fn io_permitted(&self, mfn: Mfn) -> bool {
        let _ = mfn;
        true
    }

    /// Sets every word of `mfn` to zero.
    fn zero_frame(&mut self, mfn: Mfn) {
        for slot in 0..ENTRIES {
            self.write_entry(mfn, slot, 0);
        }
    }

    /// Copies frame `src` over frame `dst`.
    fn copy_frame(&mut self, dst: Mfn, src: Mfn) {
        for slot in 0..ENTRIES {
            let word = self.read_entry(src, slot);
            self.write_entry(dst, slot, word);
        }
    }
}

/// The pool of free frames domains are given frames from.
pub trait FramePool {
    /// Takes `1 << order` contiguous free frames whose first frame number is a multiple of
    /// `1 << order`, or `None` when there is no such run.
    fn alloc(&mut self, order: u32) -> Option<Mfn>;
    /// As [`alloc`](Self::alloc), every frame below frame number `end`.
    fn alloc_below(&mut self, order: u32, end: u64) -> Option<Mfn>;
    /// Returns one frame (already scrubbed) to the pool.
    fn free(&mut self, mfn: Mfn);
}

/// The machine-to-physical table guests read at `MACH2PHYS_VIRT_START`.
pub trait M2pTable {
    /// Records that frame `mfn` is the guest's frame `pfn`.
    fn set(&mut self, mfn: Mfn, pfn: Pfn);
    /// The recorded guest frame of `mfn` ([`Pfn::INVALID`] when none).
    fn get(&self, mfn: Mfn) -> Pfn;
}

/// The `extent_start` array of a `XENMEM_*_reservation` call, in guest memory.
pub trait ExtentList {
    /// Reads element `index`.
    fn read(&mut self, index: u32) -> Result<u64, super::PvMmError>;
    /// Writes element `index` (a null list ignores writes).
    fn write(&mut self, index: u32, value: u64) -> Result<(), super::PvMmError>;
}
