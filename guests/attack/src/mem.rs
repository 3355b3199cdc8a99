//! The guest's view of its memory: machine frames of its pages (from the P2M list), the
//! virtual address of a frame (through the read-only M2P table), its page tables (read through
//! the bootstrap region's read-only mappings of them), and a set of scratch pages the cases
//! remap, turn into page tables or give back.
//!
//! Safety: the scratch pages are only touched through raw pointers, by the cases that own
//! them at the time, never through Rust references; nothing else in the guest uses them, so
//! remapping them (read-only, elsewhere, or not at all) changes no memory Rust relies on.

use core::sync::atomic::{AtomicU64, Ordering};

use guest_abi::arch::{MACH2PHYS_VIRT_START, PteFlags};
use guest_abi::hypercall::Hypercall;
use guest_abi::memory::{MemoryOp, XenMemoryReservation};
use guest_abi::runtime::{AsmCell, VIRT_BASE, hypercall};
use guest_abi::xen::{MmuextCmd, StartInfo};
use guest_abi::{DomId, PAGE_SHIFT};

/// Scratch pages.
pub const SCRATCH_PAGES: usize = 27;

#[repr(C, align(4096))]
struct Pages([[u64; 512]; SCRATCH_PAGES]);

static SCRATCH: AsmCell<Pages> = AsmCell::new(Pages([[0; 512]; SCRATCH_PAGES]));
static P2M: AtomicU64 = AtomicU64::new(0);
static NR_PAGES: AtomicU64 = AtomicU64::new(0);
static PT_BASE: AtomicU64 = AtomicU64::new(0);

/// Flags of an ordinary writable kernel mapping.
pub const RW: u64 = PteFlags::PRESENT.bits()
    | PteFlags::RW.bits()
    | PteFlags::ACCESSED.bits()
    | PteFlags::DIRTY.bits();
/// Flags of a read-only kernel mapping.
pub const RO: u64 = PteFlags::PRESENT.bits() | PteFlags::ACCESSED.bits();
/// Flags of a page-table entry pointing to the next level.
pub const TABLE: u64 = RW | PteFlags::USER.bits();
/// The PSE bit.
pub const PSE: u64 = PteFlags::PSE.bits();

/// Records where the P2M list and the bootstrap tables are.
pub fn init(si: &StartInfo) {
    P2M.store(si.mfn_list, Ordering::Relaxed);
    NR_PAGES.store(si.nr_pages, Ordering::Relaxed);
    PT_BASE.store(si.pt_base, Ordering::Relaxed);
}

/// The machine frame behind `va` in the bootstrap region.
pub fn mfn_of(va: u64) -> u64 {
    let pfn = (va - VIRT_BASE) >> PAGE_SHIFT;
    assert!(
        pfn < NR_PAGES.load(Ordering::Relaxed),
        "{va:#x} outside the region"
    );
    let list = P2M.load(Ordering::Relaxed) as *const u64;
    // SAFETY: the builder maps the P2M list (nr_pages entries) in the bootstrap region,
    // which stays mapped; `pfn` is below nr_pages.
    unsafe { list.add(pfn as usize).read_volatile() }
}

/// The bootstrap-region address of our frame `mfn` (its PFN from the M2P).
pub fn va_of(mfn: u64) -> u64 {
    VIRT_BASE + (m2p(mfn) << PAGE_SHIFT)
}

/// The M2P entry of `mfn`.
pub fn m2p(mfn: u64) -> u64 {
    let table = MACH2PHYS_VIRT_START as *const u64;
    // SAFETY: the hypervisor maps the read-only M2P at MACH2PHYS_VIRT_START; `mfn` is one of
    // ours, so its entry exists.
    unsafe { table.add(mfn as usize).read_volatile() }
}

/// The running L4 (`start_info.pt_base`).
pub fn l4() -> u64 {
    mfn_of(PT_BASE.load(Ordering::Relaxed))
}

/// Word `slot` of our page table `mfn`, read through its read-only mapping.
pub fn read_table(mfn: u64, slot: usize) -> u64 {
    let p = va_of(mfn) as *const u64;
    // SAFETY: page tables of the bootstrap region are mapped read-only in it; `slot` < 512.
    unsafe { p.add(slot % 512).read_volatile() }
}

/// The frame an entry points to.
pub const fn entry_mfn(e: u64) -> u64 {
    (e & PteFlags::ADDR_MASK) >> PAGE_SHIFT
}

/// `[l4, l3, l2, l1]`: the tables that map `va`, and the slot in the L1.
pub fn walk(va: u64) -> ([u64; 4], usize) {
    let mut tables = [l4(), 0, 0, 0];
    for level in 0..3 {
        let shift = 39 - 9 * level;
        let e = read_table(tables[level], ((va >> shift) & 511) as usize);
        tables[level + 1] = entry_mfn(e);
    }
    (tables, ((va >> 12) & 511) as usize)
}

/// The machine address of the L1 entry that maps `va`.
pub fn pte_maddr(va: u64) -> u64 {
    let (t, slot) = walk(va);
    (t[3] << PAGE_SHIFT) + 8 * slot as u64
}

/// The address of scratch page `i`.
pub fn scratch(i: usize) -> u64 {
    assert!(i < SCRATCH_PAGES);
    SCRATCH.addr() + (i as u64) * 4096
}

/// Writes word `slot` of scratch page `i` (mapped writable).
pub fn poke(i: usize, slot: usize, value: u64) {
    let p = scratch(i) as *mut u64;
    // SAFETY: scratch page `i` is mapped writable when a case calls this (module comment).
    unsafe { p.add(slot % 512).write_volatile(value) }
}

/// Zeroes scratch page `i` (mapped writable).
pub fn clear(i: usize) {
    for slot in 0..512 {
        poke(i, slot, 0);
    }
}

/// `update_va_mapping(va, val, UVMF_INVLPG)`: the raw result.
pub fn uvm(va: u64, val: u64) -> i64 {
    // SAFETY: the cases only remap scratch pages (module comment), or ask for something the
    // hypervisor must refuse.
    unsafe { hypercall::raw(Hypercall::UpdateVaMapping, [va, val, 2, 0, 0]) }
}

/// Maps scratch page `i` back onto its own frame with `flags`.
pub fn remap(i: usize, mfn: u64, flags: u64) -> i64 {
    uvm(scratch(i), (mfn << PAGE_SHIFT) | flags)
}

/// One `mmu_update` request; the raw result.
pub fn mmu_update(ptr: u64, val: u64, foreigndom: u64) -> i64 {
    let req = [ptr, val];
    let mut done = 0u32;
    // SAFETY: the request array and the count are valid; the cases only change scratch pages
    // or ask for what the hypervisor must refuse.
    unsafe {
        hypercall::raw(
            Hypercall::MmuUpdate,
            [req.as_ptr() as u64, 1, &raw mut done as u64, foreigndom, 0],
        )
    }
}

/// One `mmuext_op`; the raw result.
pub fn mmuext(cmd: MmuextCmd, arg1: u64, arg2: u64) -> i64 {
    mmuext_for(cmd, arg1, arg2, u64::from(DomId::SELF.0))
}

/// One `mmuext_op` naming `foreigndom`; the raw result.
pub fn mmuext_for(cmd: MmuextCmd, arg1: u64, arg2: u64, foreigndom: u64) -> i64 {
    let op = [cmd as u64, arg1, arg2];
    let mut done = 0u32;
    // SAFETY: as for `mmu_update`.
    unsafe {
        hypercall::raw(
            Hypercall::MmuextOp,
            [op.as_ptr() as u64, 1, &raw mut done as u64, foreigndom, 0],
        )
    }
}

/// `XENMEM_decrease_reservation` of our frame `mfn`: the extents released.
pub fn release(mfn: u64) -> i64 {
    release_of(mfn, DomId::SELF)
}

/// `XENMEM_decrease_reservation` of frame `mfn` of domain `dom`: the extents released.
pub fn release_of(mfn: u64, dom: DomId) -> i64 {
    let list = [mfn];
    let res = XenMemoryReservation {
        extent_start: list.as_ptr() as u64,
        nr_extents: 1,
        extent_order: 0,
        mem_flags: 0,
        domid: dom.0,
        _hole: [0; 3],
    };
    // SAFETY: the struct and its list are valid for the call; the frame is a scratch page
    // the caller unmapped, or not ours to give (refused).
    unsafe {
        hypercall::raw(
            Hypercall::MemoryOp,
            [
                MemoryOp::DecreaseReservation as u64,
                &raw const res as u64,
                0,
                0,
                0,
            ],
        )
    }
}
