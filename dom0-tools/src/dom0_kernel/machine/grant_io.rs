//! Grants for the block backend: guests' ring pages mapped into dom0 with
//! `GNTTABOP_map_grant_ref`, and request data moved with `GNTTABOP_copy` batches.
//!
//! Ring pages go to [`SLOTS`] pages of our own image (`WINDOW`, in `.bss`, so their L1
//! entries exist), as `mapping` does for foreign frames; the hypervisor replaces the slot's
//! entry with the granted frame (`GNTMAP_host_map`) and clears it at the unmap. The frames
//! first mapped there are left unused.
//!
//! Copies go through `BOUNCE`, one page per segment of a request, also in `.bss`: its
//! frames are found from its address with the P2M list, and one `GNTTABOP_copy` moves every
//! segment of a request. dom0 runs on one vCPU and no interrupt handler copies, so one
//! bounce area serves every device in turn.

use core::cell::UnsafeCell;
use core::ops::Deref;

use dom0_tools::blkback::grants::GrantSegment;
use dom0_tools::shared_page::Page;
use guest_abi::grant_table::{
    GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GNTMAP_HOST_MAP, GnttabCopy, GnttabCopyPtr,
    GnttabMapGrantRef, GnttabOp, GnttabUnmapGrantRef,
};
use guest_abi::io::blkif::BLKIF_MAX_SEGMENTS_PER_REQUEST;
use guest_abi::runtime::{hypercall, start_info, virt_base};
use guest_abi::{DomId, PAGE_SHIFT, PAGE_SIZE, XenError};

use super::slots::Slots;

/// Ring pages mapped at once: four devices with 16-page rings.
pub const SLOTS: usize = 64;
const PAGE: usize = PAGE_SIZE as usize;

#[repr(C, align(4096))]
struct Window(UnsafeCell<[[u8; PAGE]; SLOTS]>);

// SAFETY: the window's bytes are never read or written through Rust: only the addresses of
// its pages are used, to map granted frames there (module documentation).
unsafe impl Sync for Window {}

static WINDOW: Window = Window(UnsafeCell::new([[0; PAGE]; SLOTS]));
static USED: Slots = Slots::new();
const _: () = assert!(SLOTS <= 64, "Slots holds 64");

#[repr(C, align(4096))]
struct Bounce(UnsafeCell<[[u8; PAGE]; BLKIF_MAX_SEGMENTS_PER_REQUEST]>);

// SAFETY: only `copy` touches it, and dom0 runs it on one vCPU, never from an interrupt
// (module documentation).
unsafe impl Sync for Bounce {}

static BOUNCE: Bounce = Bounce(UnsafeCell::new([[0; PAGE]; BLKIF_MAX_SEGMENTS_PER_REQUEST]));

/// A granted page mapped into dom0; give it back with [`unmap`].
#[derive(Debug)]
pub struct GrantMapping {
    slot: usize,
    handle: u32,
}

impl GrantMapping {
    fn va(&self) -> u64 {
        WINDOW.0.get() as u64 + (self.slot * PAGE) as u64
    }
}

/// The mapped page as atomics: the guest changes it concurrently.
impl Deref for GrantMapping {
    type Target = Page;

    fn deref(&self) -> &Page {
        // SAFETY: the page is mapped for as long as `self` lives (only `unmap`, which takes
        // `self`, removes it); a page of `AtomicU32`s has no invalid bit patterns and
        // tolerates the guest's concurrent writes.
        unsafe { &*(self.va() as *const Page) }
    }
}

/// Maps `dom`'s grant `gref` writable at a free slot.
pub fn map(dom: DomId, gref: u32) -> Result<GrantMapping, XenError> {
    let slot = USED.take(SLOTS).ok_or(XenError::NoMem)?;
    let va = WINDOW.0.get() as u64 + (slot * PAGE) as u64;
    let mut op = [GnttabMapGrantRef {
        host_addr: va,
        flags: GNTMAP_HOST_MAP,
        ref_: gref,
        dom: dom.0,
        ..GnttabMapGrantRef::default()
    }];
    // SAFETY: the slot's page holds nothing Rust relies on (module documentation); the
    // new mapping is only used through `GrantMapping`, as atomics.
    let result = unsafe { hypercall::grant_table_op(GnttabOp::MapGrantRef, &mut op) };
    match result {
        Ok(_) if op[0].status == 0 => Ok(GrantMapping {
            slot,
            handle: op[0].handle,
        }),
        other => {
            USED.give(slot);
            Err(other.err().unwrap_or(XenError::Inval))
        }
    }
}

/// Unmaps a page [`map`] mapped; its slot is free again once the hypervisor unmapped it.
pub fn unmap(m: GrantMapping) {
    let mut op = [GnttabUnmapGrantRef {
        host_addr: m.va(),
        handle: m.handle,
        ..GnttabUnmapGrantRef::default()
    }];
    // SAFETY: the slot holds only the granted page, which nothing uses after this (`m` is
    // consumed).
    let result = unsafe { hypercall::grant_table_op(GnttabOp::UnmapGrantRef, &mut op) };
    if result.is_ok() && op[0].status == 0 {
        USED.give(m.slot);
    } else {
        // The slot stays taken: a page still mapped there must not be handed out.
        guest_abi::println!("dom0: cannot unmap grant at {:#x}", m.va());
    }
}

/// The machine frame of bounce page `i`, from the P2M list.
fn bounce_mfn(i: usize) -> Option<u64> {
    let si = start_info();
    let va = BOUNCE.0.get() as u64 + (i * PAGE) as u64;
    let pfn = (va - virt_base()) >> PAGE_SHIFT;
    if pfn >= si.nr_pages {
        return None;
    }
    // SAFETY: the hypervisor maps the P2M list, `nr_pages` entries, at `mfn_list`; `pfn`
    // is below `nr_pages`.
    Some(unsafe {
        (si.mfn_list as *const u64)
            .add(pfn as usize)
            .read_volatile()
    })
}

fn bounce_page(i: usize) -> *mut u8 {
    (BOUNCE.0.get() as *mut u8).wrapping_add(i * PAGE)
}

/// Copies the segments of `dom`'s grants into `buf` (back to back) with one batch.
pub fn copy_from_guest(dom: DomId, segments: &[GrantSegment], buf: &mut [u8]) -> bool {
    if !batch(dom, segments, false) {
        return false;
    }
    let mut at = 0;
    for (i, s) in segments.iter().enumerate() {
        let len = usize::from(s.len).min(PAGE);
        let Some(dst) = buf.get_mut(at..at + len) else {
            return false;
        };
        // SAFETY: bounce page `i` holds `len` bytes the copy wrote; it is ours alone
        // (module documentation) and does not overlap `buf`.
        unsafe { core::ptr::copy_nonoverlapping(bounce_page(i), dst.as_mut_ptr(), len) };
        at += len;
    }
    true
}

/// Copies `buf` (back to back) into the segments of `dom`'s grants with one batch.
pub fn copy_to_guest(dom: DomId, segments: &[GrantSegment], buf: &[u8]) -> bool {
    if segments.len() > BLKIF_MAX_SEGMENTS_PER_REQUEST {
        return false;
    }
    let mut at = 0;
    for (i, s) in segments.iter().enumerate() {
        let len = usize::from(s.len).min(PAGE);
        let Some(src) = buf.get(at..at + len) else {
            return false;
        };
        // SAFETY: as in `copy_from_guest`, in the other direction.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), bounce_page(i), len) };
        at += len;
    }
    batch(dom, segments, true)
}

/// One `GNTTABOP_copy` between the bounce pages and the segments.
fn batch(dom: DomId, segments: &[GrantSegment], to_guest: bool) -> bool {
    if segments.len() > BLKIF_MAX_SEGMENTS_PER_REQUEST {
        return false;
    }
    let mut ops = [GnttabCopy::default(); BLKIF_MAX_SEGMENTS_PER_REQUEST];
    for (i, (op, s)) in ops.iter_mut().zip(segments).enumerate() {
        let Some(mfn) = bounce_mfn(i) else {
            return false;
        };
        let local = GnttabCopyPtr::frame(mfn, 0);
        let guest = GnttabCopyPtr::grant(dom.0, s.gref, s.offset);
        *op = GnttabCopy {
            source: if to_guest { local } else { guest },
            dest: if to_guest { guest } else { local },
            len: s.len.min(PAGE as u16),
            flags: if to_guest {
                GNTCOPY_DEST_GREF
            } else {
                GNTCOPY_SOURCE_GREF
            },
            ..GnttabCopy::default()
        };
    }
    let ops = &mut ops[..segments.len()];
    // SAFETY: the copies write only the bounce pages (ours, nothing holds references to
    // them) or the guest's granted pages.
    let result = unsafe { hypercall::grant_table_op(GnttabOp::Copy, ops) };
    result.is_ok() && ops.iter().all(|o| o.status == 0)
}
