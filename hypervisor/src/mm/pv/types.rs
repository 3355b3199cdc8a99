//! Identifiers and the per-frame record of the PV MMU.

use crate::mm::Mfn;

/// Domain ids and frame numbers are guest-abi's, the one set the whole hypervisor uses.
pub use guest_abi::{DomId, Pfn};

/// The use a frame is put to. A frame has exactly one type at a time; the type changes only while
/// its type count is zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PageType {
    /// Never used as anything but read-only data since it was allocated.
    None = 0,
    /// Mapped writable by some L1 entry (or written through `mmu_update`, `CLEAR_PAGE`, ...).
    Writable,
    /// A level-1 page table (maps 4 KiB pages).
    L1,
    /// A level-2 page table.
    L2,
    /// A level-3 page table.
    L3,
    /// A level-4 page table (a root: what a vCPU's CR3 may hold).
    L4,
    /// A GDT or LDT page (segment descriptors).
    SegDesc,
}

impl PageType {
    /// The page-table level of the type (1 to 4), or `None` for the other types.
    pub const fn level(self) -> Option<Level> {
        match self {
            Self::L1 => Some(Level::L1),
            Self::L2 => Some(Level::L2),
            Self::L3 => Some(Level::L3),
            Self::L4 => Some(Level::L4),
            _ => None,
        }
    }

    /// Whether the type is one of the page-table types.
    pub const fn is_page_table(self) -> bool {
        self.level().is_some()
    }
}

/// A page-table level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// Entries map 4 KiB frames.
    L1,
    /// Entries reference L1 tables (or 2 MiB superpages, where the domain asked for them).
    L2,
    /// Entries reference L2 tables.
    L3,
    /// Entries reference L3 tables; slots 256–271 belong to the hypervisor.
    L4,
}

impl Level {
    /// The frame type a table of this level has.
    pub const fn table_type(self) -> PageType {
        match self {
            Self::L1 => PageType::L1,
            Self::L2 => PageType::L2,
            Self::L3 => PageType::L3,
            Self::L4 => PageType::L4,
        }
    }

    /// The type an entry of a table of this level gives the frame it references (for L1:
    /// `Writable`, taken only when the entry is writable).
    pub const fn entry_type(self) -> PageType {
        match self {
            Self::L1 => PageType::Writable,
            Self::L2 => PageType::L1,
            Self::L3 => PageType::L2,
            Self::L4 => PageType::L3,
        }
    }

    /// The level as a number (1 to 4).
    pub const fn number(self) -> u8 {
        match self {
            Self::L1 => 1,
            Self::L2 => 2,
            Self::L3 => 3,
            Self::L4 => 4,
        }
    }

    /// The index of the entry translating `va` in a table of this level.
    pub const fn index(self, va: u64) -> usize {
        let shift = 12 + 9 * (self.number() as u32 - 1);
        ((va >> shift) & 0x1ff) as usize
    }
}

const VALIDATED: u8 = 1 << 0;
const PINNED: u8 = 1 << 1;
const ALLOCATED: u8 = 1 << 2;
const SHARED: u8 = 1 << 3;

/// The record the frame table keeps for one machine frame (Xen's `struct page_info`).
///
/// `count` is the general reference count: one for the owner's allocation (the `allocated` bit,
/// Xen's `PGC_allocated`), one per present page-table entry in a validated table that references
/// the frame, one per pin, one per vCPU base pointer, one for a hypervisor share. `type_count`
/// counts the users of the current type: writable L1 entries for `Writable`, entries of the next
/// level up for page tables, pins and base pointers. Only this module changes a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct FrameInfo {
    pub(super) count: u32,
    pub(super) type_count: u32,
    pub(super) owner: DomId,
    pub(super) ty: PageType,
    pub(super) flags: u8,
}

impl Default for FrameInfo {
    fn default() -> Self {
        Self::FREE
    }
}

impl FrameInfo {
    /// The record of a free (or never managed) frame.
    pub const FREE: FrameInfo = FrameInfo {
        count: 0,
        type_count: 0,
        owner: DomId::INVALID,
        ty: PageType::None,
        flags: 0,
    };

    /// The record of a frame just allocated to `owner`.
    pub(super) const fn allocated_to(owner: DomId) -> FrameInfo {
        FrameInfo {
            count: 1,
            owner,
            flags: ALLOCATED,
            ..Self::FREE
        }
    }

    /// The owning domain, or `None` for a free frame.
    pub fn owner(&self) -> Option<DomId> {
        (self.owner != DomId::INVALID).then_some(self.owner)
    }

    /// The general reference count.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The current type (meaningful while `type_count() > 0`).
    pub fn page_type(&self) -> PageType {
        self.ty
    }

    /// The number of references to the current type.
    pub fn type_count(&self) -> u32 {
        self.type_count
    }

    /// Whether the contents were checked for the current type.
    pub fn is_validated(&self) -> bool {
        self.flags & VALIDATED != 0
    }

    /// Whether the guest pinned the frame's type.
    pub fn is_pinned(&self) -> bool {
        self.flags & PINNED != 0
    }

    /// Whether the owner still holds its allocation reference (the frame is in its reservation).
    pub fn is_allocated(&self) -> bool {
        self.flags & ALLOCATED != 0
    }

    /// Whether the hypervisor shared the frame with its owner (see `share_hypervisor_frame`).
    pub fn is_shared(&self) -> bool {
        self.flags & SHARED != 0
    }

    pub(super) fn set_validated(&mut self, on: bool) {
        self.set_flag(VALIDATED, on);
    }

    pub(super) fn set_pinned(&mut self, on: bool) {
        self.set_flag(PINNED, on);
    }

    pub(super) fn set_allocated(&mut self, on: bool) {
        self.set_flag(ALLOCATED, on);
    }

    pub(super) fn set_shared(&mut self, on: bool) {
        self.set_flag(SHARED, on);
    }

    fn set_flag(&mut self, bit: u8, on: bool) {
        if on {
            self.flags |= bit;
        } else {
            self.flags &= !bit;
        }
    }
}

/// `mfn + n`, or `None` past the end of the frame-number space.
pub(super) fn mfn_add(mfn: Mfn, n: u64) -> Option<Mfn> {
    mfn.0.checked_add(n).map(Mfn)
}

const _: () = assert!(core::mem::size_of::<FrameInfo>() == 12);
