//! The PV MMU: the hypervisor side of Xen's `mmu_update`, `mmuext_op`, `update_va_mapping` and
//! reservation operations for 64-bit PV guests that run on their own page tables ("direct
//! paging"). Pure logic over a [`FrameStore`], a [`FramePool`] and an [`M2pTable`]; the hardware
//! effects (CR3 loads, TLB flushes) are returned to the caller. See `docs/PV-MMU.md`.
//!
//! # Invariants
//!
//! Every machine frame below [`FrameStore::frame_limit`] has a [`FrameInfo`]: owner, general
//! reference count, type, type count, validated and pinned bits. Between operations:
//!
//! 1. A frame has at most one type at a time; its type changes only while its type count is
//!    zero (`refs::get_type`).
//! 2. A frame typed as a page table (or descriptor page) with a non-zero type count has no
//!    writable mapping in any validated L1 table: a writable L1 entry holds a `Writable` type
//!    reference, which cannot coexist with another type.
//! 3. Every present entry of a validated table references a frame the table's owner may map:
//!    its own, or, for L1 entries installed through the foreign form by a privileged domain
//!    or as grant mappings (`grant_pte`), the foreign domain's (or the hypervisor's shared
//!    frames); with flags the level allows
//!    (`pte::check_flags`). L4 slots 256–271 are filled by the hypervisor
//!    ([`FrameStore::fill_hypervisor_slots`]) and never taken from the guest.
//! 4. Every present entry of a validated level-N table holds a type reference of level N−1
//!    on the frame it references (validation is recursive, done once when the type is first
//!    taken, undone when the last type reference goes). Linear (recursive) page tables are
//!    refused: an entry never references a table of its own level, so the type references form
//!    an acyclic graph rooted at pins and base pointers.
//! 5. A vCPU's base pointers (kernel and user CR3) only ever hold validated L4s, each holding
//!    one general and one type reference.
//!
//! Counts are exact: a frame's `count` is its allocation reference + one per present entry
//! in a validated table referencing it + pins + base pointers + a hypervisor share; its
//! `type_count` is the number of those holders that hold a type reference. The host tests
//! recompute both from scratch after every step of random operation sequences.
//!
//! # Lock order
//!
//! The [`FrameTable`] holds every frame record, the per-domain accounting and, through the
//! store, every page-table frame of every PV domain; each operation takes `&mut self`, so the
//! bare-metal wiring keeps it behind one lock, "the PV MMU lock". Order: the domain-list lock
//! (to find the calling domain and its vCPU) before the PV MMU lock; the frame allocator's and
//! the M2P's own locks, if any, after it. Nothing that can take the PV MMU lock may be called
//! while it is held. Guest memory (hypercall arguments) is read by the caller's iterators and
//! callbacks under the lock; they must not fault into anything that takes it.
//!
//! # TLB flushes
//!
//! Operations report `flush_all_cpus` when a frame changed type or went back to the free pool:
//! stale TLB or paging-structure-cache entries could otherwise still write it or walk through it.
//! The caller flushes every CPU (global entries included) before any guest runs again. Xen
//! flushes before validating instead; with one physical CPU, where no guest runs during the
//! hypercall, flushing at the end is equivalent.

mod domain;
mod error;
mod exchange;
mod grant_pte;
mod guest_ops;
mod pte;
mod refs;
mod store;
mod types;

#[cfg(any(test, feature = "test-doubles"))]
pub mod fake;
#[cfg(test)]
mod tests;

pub use domain::{
    DestroyReport, DomainConfig, DomainMm, DomainRef, MAX_EXTENT_ORDER, Teardown, TeardownLimits,
    VcpuMm,
};
pub use error::PvMmError;
pub use exchange::{Chunks, ExchangeEnd, ExchangeLists};
pub use grant_pte::GrantPte;
pub use guest_ops::{Effect, MmuUpdate, MmuextCmd, MmuextOp, TlbScope, mmu, uvmf};
pub use pte::{
    ACCESSED, ADDR_MASK, AVAIL, AVAIL_HIGH, DIRTY, FLAGS_MASK, GLOBAL, GNTTAB, GUEST_KERNEL,
    HYPERVISOR_SLOT_FIRST, HYPERVISOR_SLOT_LAST, NX, PAT, PCD, PRESENT, PSE, PWT, RW,
    SUPERPAGE_FRAMES, USER, adjust, check_descriptor, entry_mfn, guest_addr_ok, is_guest_slot,
};
pub use store::{ENTRIES, ExtentList, FramePool, FrameStore, M2pTable};
pub use types::{DomId, FrameInfo, Level, PageType, Pfn};

use crate::mm::Mfn;

/// The default number of domains a [`FrameTable`] can account for at once.
pub const DEFAULT_MAX_DOMAINS: usize = 64;

/// The result of an operation plus the flush it requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "flush_all_cpus must be honoured before a guest runs again"]
pub struct Outcome<T> {
    /// What the operation returns.
    pub result: T,
    /// Frames changed type or were freed: flush every CPU's TLB, global entries included, before
    /// any guest runs again. Reported whether or not the operation succeeded.
    pub flush_all_cpus: bool,
}

/// The result of a batched operation (`mmu_update`, `mmuext_op`): Xen processes the requests in
/// order and stops at the first failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Requests completed (what Xen writes to `*pdone`); on failure, the index of the failing one.
    pub done: u32,
    /// `Ok` when all requests succeeded, else the first failure.
    pub result: Result<(), PvMmError>,
}

/// The frame table and the per-domain memory accounting, over a store of frames `S`, a pool of
/// free frames `P` and an M2P table `M`, for at most `D` domains at a time.
pub struct FrameTable<S, P, M, const D: usize = DEFAULT_MAX_DOMAINS> {
    store: S,
    pool: P,
    m2p: M,
    domains: [Option<DomainMm>; D],
    flush_pending: bool,
}

impl<S: FrameStore, P: FramePool, M: M2pTable, const D: usize> FrameTable<S, P, M, D> {
    /// A frame table over `store`, whose records must all be [`FrameInfo::FREE`]; frames `pool`
    /// hands out must be among them.
    pub fn new(store: S, pool: P, m2p: M) -> Self {
        Self {
            store,
            pool,
            m2p,
            domains: [const { None }; D],
            flush_pending: false,
        }
    }

    /// The frame store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The frame store, for the hypervisor's own use (building a domain's first frames, copying
    /// guest data). Writing a frame that is typed as a page table breaks the invariants.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The free-frame pool.
    pub fn pool(&self) -> &P {
        &self.pool
    }

    /// The M2P table.
    pub fn m2p(&self) -> &M {
        &self.m2p
    }

    /// The record of `mfn`, or `None` outside RAM.
    pub fn frame(&self, mfn: Mfn) -> Option<&FrameInfo> {
        self.in_ram(mfn).then(|| self.store.info(mfn))
    }

    fn in_ram(&self, mfn: Mfn) -> bool {
        mfn.0 < self.store.frame_limit()
    }

    /// Wraps a result with the pending flush, clearing it.
    fn outcome<T>(&mut self, result: T) -> Outcome<T> {
        Outcome {
            result,
            flush_all_cpus: core::mem::take(&mut self.flush_pending),
        }
    }
}
