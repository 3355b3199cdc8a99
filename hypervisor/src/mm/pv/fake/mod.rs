//! Test doubles for the PV MMU, shared by the unit and property tests (`mm::pv::tests`) and the
//! `pv_mmu` fuzz target (`fuzz/`, through the `test-doubles` feature): a fake machine of frame
//! records and sparse frame contents, a free pool, an M2P table and an `extent_start` list,
//! plus [`check`], the reference checker of the PV MMU invariants.
//!
//! Host-only code: built for `cfg(test)` and with the `test-doubles` feature, never for the
//! bare-metal kernel.

extern crate std;

pub mod check;

use std::boxed::Box;
use std::collections::{BTreeSet, HashMap};
use std::vec;
use std::vec::Vec;

use super::ENTRIES;
use super::{
    ExtentList, FrameInfo, FramePool, FrameStore, FrameTable, HYPERVISOR_SLOT_FIRST,
    HYPERVISOR_SLOT_LAST, M2pTable, PRESENT, Pfn, PvMmError, RW,
};
use crate::mm::Mfn;

/// Frames below this are the "hypervisor's" and never in the pool (frame 0 must never be a
/// guest's: `NEW_USER_BASEPTR` treats it as "none").
pub const RESERVED: u64 = 16;

/// What [`FrameStore::fill_hypervisor_slots`] writes into slot `slot` of a validated L4.
pub fn hyp_entry(slot: usize) -> u64 {
    0x000b_ad00_0000_0000 | ((slot as u64) << 12) | PRESENT | RW
}

/// Frame records and sparse frame contents: a frame never written (or zeroed since) reads as
/// zero and takes no memory. Panics on an access outside RAM or outside a frame.
pub struct FakeStore {
    infos: Vec<FrameInfo>,
    mem: Vec<Option<Box<[u64; ENTRIES]>>>,
}

impl FakeStore {
    /// `frames` free frames, all zero.
    pub fn new(frames: u64) -> Self {
        Self {
            infos: vec![FrameInfo::FREE; frames as usize],
            mem: (0..frames).map(|_| None).collect(),
        }
    }

    fn check(&self, what: &str, mfn: Mfn, slot: usize) {
        assert!(
            mfn.0 < self.frame_limit() && slot < ENTRIES,
            "{what} of {mfn} slot {slot}"
        );
    }
}

impl FrameStore for FakeStore {
    fn frame_limit(&self) -> u64 {
        self.infos.len() as u64
    }
    fn info(&self, mfn: Mfn) -> &FrameInfo {
        &self.infos[mfn.0 as usize]
    }
    fn info_mut(&mut self, mfn: Mfn) -> &mut FrameInfo {
        &mut self.infos[mfn.0 as usize]
    }
    fn read_entry(&self, mfn: Mfn, slot: usize) -> u64 {
        self.check("read", mfn, slot);
        self.mem[mfn.0 as usize].as_ref().map_or(0, |f| f[slot])
    }
    fn write_entry(&mut self, mfn: Mfn, slot: usize, value: u64) {
        self.check("write", mfn, slot);
        let frame = &mut self.mem[mfn.0 as usize];
        if value == 0 && frame.is_none() {
            return;
        }
        frame.get_or_insert_with(|| Box::new([0; ENTRIES]))[slot] = value;
    }
    fn fill_hypervisor_slots(&mut self, l4: Mfn) {
        for slot in HYPERVISOR_SLOT_FIRST..=HYPERVISOR_SLOT_LAST {
            self.write_entry(l4, slot, hyp_entry(slot));
        }
    }
    fn zero_frame(&mut self, mfn: Mfn) {
        self.check("zeroing", mfn, 0);
        self.mem[mfn.0 as usize] = None;
    }
}

/// The free pool: a set of frame numbers. Panics on a double free or on freeing a frame below
/// [`RESERVED`].
pub struct FakePool {
    /// The free frames.
    pub free: BTreeSet<u64>,
}

impl FakePool {
    /// Every frame from [`RESERVED`] up to `frames`.
    pub fn new(frames: u64) -> Self {
        Self {
            free: (RESERVED..frames).collect(),
        }
    }
}

impl FramePool for FakePool {
    fn alloc(&mut self, order: u32) -> Option<Mfn> {
        self.alloc_below(order, u64::MAX)
    }
    fn alloc_below(&mut self, order: u32, end: u64) -> Option<Mfn> {
        let n = 1u64 << order;
        let base = self
            .free
            .iter()
            .copied()
            .filter(|m| m % n == 0 && m.saturating_add(n) <= end)
            .find(|&m| (m..m + n).all(|f| self.free.contains(&f)))?;
        for f in base..base + n {
            self.free.remove(&f);
        }
        Some(Mfn(base))
    }
    fn free(&mut self, mfn: Mfn) {
        assert!(mfn.0 >= RESERVED, "{mfn} is not a pool frame");
        assert!(self.free.insert(mfn.0), "{mfn} freed twice");
    }
}

/// The M2P table; a frame never set reads as `!0` (invalid).
#[derive(Default)]
pub struct FakeM2p {
    /// Machine frame to guest frame.
    pub map: HashMap<u64, u64>,
}

impl M2pTable for FakeM2p {
    fn set(&mut self, mfn: Mfn, pfn: Pfn) {
        self.map.insert(mfn.0, pfn.0);
    }
    fn get(&self, mfn: Mfn) -> Pfn {
        Pfn(self.map.get(&mfn.0).copied().unwrap_or(!0))
    }
}

/// An `extent_start` array. Reading past the end faults; writing past the end grows it, or
/// faults if it was made [`VecList::fixed`]. `fail_at` makes one index fault.
pub struct VecList {
    /// The entries.
    pub items: Vec<u64>,
    /// An index whose every access faults.
    pub fail_at: Option<u32>,
    /// Writes past the end fault instead of growing the list.
    pub fixed: bool,
}

impl VecList {
    /// A list that grows on writes past its end.
    pub fn new(items: Vec<u64>) -> Self {
        Self {
            items,
            fail_at: None,
            fixed: false,
        }
    }

    /// A list of exactly `items`, as a guest array of that length.
    pub fn fixed(items: Vec<u64>) -> Self {
        Self {
            fixed: true,
            ..Self::new(items)
        }
    }
}

impl ExtentList for VecList {
    fn read(&mut self, index: u32) -> Result<u64, PvMmError> {
        if self.fail_at == Some(index) {
            return Err(PvMmError::Fault);
        }
        self.items
            .get(index as usize)
            .copied()
            .ok_or(PvMmError::Fault)
    }
    fn write(&mut self, index: u32, value: u64) -> Result<(), PvMmError> {
        if self.fail_at == Some(index) {
            return Err(PvMmError::Fault);
        }
        if self.items.len() <= index as usize {
            if self.fixed {
                return Err(PvMmError::Fault);
            }
            self.items.resize(index as usize + 1, 0);
        }
        self.items[index as usize] = value;
        Ok(())
    }
}

/// The frame table of the fake machine, for up to `D` domains at once.
pub type Table<const D: usize = 8> = FrameTable<FakeStore, FakePool, FakeM2p, D>;

/// A machine of `frames` frames, all from [`RESERVED`] up in the pool.
pub fn machine<const D: usize>(frames: u64) -> Table<D> {
    FrameTable::new(
        FakeStore::new(frames),
        FakePool::new(frames),
        FakeM2p::default(),
    )
}
