//! Mappings of other frames into dom0: other domains' pages (for the builder's writes and
//! the console rings) and the shared info page.
//!
//! A PV kernel cannot write its page tables (the hypervisor maps them read-only); it asks
//! the hypervisor to change one L1 entry with `update_va_mapping` (our own frames, or the
//! shared info page by its machine address) or `update_va_mapping_otherdomain` (another
//! domain's frame, the "foreign" form). The virtual addresses used are [`SLOTS`] pages of
//! our own image (`WINDOW`, in `.bss`), so their L1 entries exist in the bootstrap tables;
//! the frames first mapped there are simply left unused. A slot is taken by [`map`] and
//! given back when its [`Mapping`] is dropped, which unmaps it: no mapping outlives its
//! `Mapping`, so the builder's page-table frames can be typed once it is done with them.

use core::cell::UnsafeCell;
use core::ops::Deref;
use core::sync::atomic::{AtomicU64, Ordering};

use dom0_tools::shared_page::Page;
use guest_abi::arch::PteFlags;
use guest_abi::runtime::hypercall;
use guest_abi::xen::UVMF_INVLPG;
use guest_abi::{DomId, Mfn, PAGE_SIZE, VirtAddr, XenError};

use super::hcall;

/// Pages that can be mapped at once: one per attached console ring, plus the builder's
/// one and the shared info page.
pub const SLOTS: usize = 64;

const PAGE: usize = PAGE_SIZE as usize;

#[repr(C, align(4096))]
struct Window(UnsafeCell<[[u8; PAGE]; SLOTS]>);

// SAFETY: the window's bytes are never read or written through Rust: only the addresses
// of its pages are used, to remap them (module documentation).
unsafe impl Sync for Window {}

static WINDOW: Window = Window(UnsafeCell::new([[0; PAGE]; SLOTS]));
/// Bit `i` set: slot `i` is in use.
static USED: AtomicU64 = AtomicU64::new(0);
const _: () = assert!(SLOTS <= 64, "USED is one u64");

/// One mapped page; dropping it unmaps the page.
#[derive(Debug)]
pub struct Mapping {
    slot: usize,
}

impl Mapping {
    /// Its virtual address.
    pub fn va(&self) -> VirtAddr {
        VirtAddr(WINDOW.0.get() as u64 + (self.slot * PAGE) as u64)
    }

    /// Copies `bytes` to byte `offset` of the page (`offset + len` at most a page).
    pub fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), XenError> {
        if offset.checked_add(bytes.len()).is_none_or(|end| end > PAGE) {
            return Err(XenError::Inval);
        }
        let dst = (self.va().0 as *mut u8).wrapping_add(offset);
        // SAFETY: the page is mapped writable for as long as `self` lives, and the range
        // is inside it (checked above). The frame belongs to a domain being built (paused,
        // so nothing else writes it) or is shared with the hypervisor, which does not
        // hold Rust references to it either.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        Ok(())
    }
}

/// The mapped page as atomics, for memory another domain changes concurrently (a console
/// ring).
impl Deref for Mapping {
    type Target = Page;

    fn deref(&self) -> &Page {
        // SAFETY: the page is mapped for as long as `self` lives and the reference cannot
        // outlive `self`; a page of `AtomicU32`s has no invalid bit patterns and tolerates
        // concurrent writes by the other domain.
        unsafe { &*(self.va().0 as *const Page) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the slot's page holds nothing Rust relies on; unmapping it leaves it
        // for the next `map`.
        let unmapped = unsafe { hypercall::update_va_mapping(self.va(), 0, UVMF_INVLPG) };
        if let Err(e) = unmapped {
            // The slot stays taken: a page still mapped there must not be handed out.
            guest_abi::println!("dom0: cannot unmap {:#x}: {e}", self.va().0);
            return;
        }
        USED.fetch_and(!(1 << self.slot), Ordering::Relaxed);
    }
}

/// Maps machine frame `mfn` of `owner` (`DomId::SELF` for our own frames and the shared
/// info page) writable at a free slot.
pub fn map(owner: DomId, mfn: Mfn) -> Result<Mapping, XenError> {
    let slot = take_slot().ok_or(XenError::NoMem)?;
    let mapping = Mapping { slot };
    let flags = PteFlags::PRESENT | PteFlags::RW | PteFlags::ACCESSED | PteFlags::DIRTY;
    let pte = mfn.addr() | flags.bits();
    // SAFETY: the slot's page holds nothing Rust relies on (module documentation); the
    // new mapping is only used through `Mapping`.
    let mapped =
        unsafe { hcall::update_va_mapping_otherdomain(mapping.va(), pte, UVMF_INVLPG, owner) };
    match mapped {
        Ok(_) => Ok(mapping),
        Err(e) => {
            // Nothing was mapped: give the slot back without the unmap hypercall.
            core::mem::forget(mapping);
            USED.fetch_and(!(1 << slot), Ordering::Relaxed);
            Err(e)
        }
    }
}

fn take_slot() -> Option<usize> {
    let mut used = USED.load(Ordering::Relaxed);
    loop {
        let slot = (!used).trailing_zeros() as usize;
        if slot >= SLOTS {
            return None;
        }
        match USED.compare_exchange(
            used,
            used | (1 << slot),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Some(slot),
            Err(now) => used = now,
        }
    }
}
