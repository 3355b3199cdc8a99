//! The grant exchange after the pings: ping grants pong a page (entry 8 of its table,
//! writable), pong maps it and copies from it, ping sees the entry in use, pong powers off
//! with the mapping still in place, and ping sees the entry released once the toolstack has
//! destroyed pong (the hypervisor forgets a dying domain's mappings). Pages are remapped
//! through `update_va_mapping` only where a grant-table frame or a grant goes.

use core::sync::atomic::{AtomicU8, Ordering};

use guest_abi::arch::PteFlags;
use guest_abi::grant_table::{
    GNTCOPY_SOURCE_GREF, GNTMAP_HOST_MAP, GnttabCopy, GnttabCopyPtr, GnttabMapGrantRef, GnttabOp,
    GnttabSetupTable, GtfFlags,
};
use guest_abi::runtime::{AsmCell, VIRT_BASE, hypercall, start_info};
use guest_abi::xen::UVMF_INVLPG;
use guest_abi::{DomId, PAGE_SHIFT, VirtAddr, XenError};

/// The grant reference used.
pub const GREF: u32 = 8;

#[repr(C, align(4096))]
struct Page([AtomicU8; 4096]);
/// ping: where its grant-table frame is mapped. pong: where the grant is mapped.
static WINDOW: AsmCell<Page> = AsmCell::new(Page([const { AtomicU8::new(0) }; 4096]));
/// ping: the page granted. pong: where the copy goes.
static DATA: AsmCell<Page> = AsmCell::new(Page([const { AtomicU8::new(0) }; 4096]));

/// What went wrong, in one line.
pub type Failure = (&'static str, XenError);

fn page(p: &AsmCell<Page>) -> &'static [AtomicU8; 4096] {
    // SAFETY: the page is a static of atomics, alive for the program's life.
    unsafe { &(*(p.addr() as *const Page)).0 }
}

/// The machine frame of a page of the image, from the P2M list.
fn mfn_of(va: u64) -> u64 {
    let si = start_info();
    let pfn = (va - VIRT_BASE) >> PAGE_SHIFT;
    // SAFETY: the builder maps the P2M list (nr_pages entries) in the bootstrap region; the
    // page is one of the image's, below nr_pages.
    unsafe {
        (si.mfn_list as *const u64)
            .add(pfn as usize)
            .read_volatile()
    }
}

fn pattern(i: usize) -> u8 {
    i as u8 ^ 0xa5
}

/// ping: sets up its table, grants [`DATA`] (filled with the pattern) to `peer` writable, and
/// returns a view of the entry's first word.
pub fn offer(peer: u16) -> Result<*mut u64, Failure> {
    let mut frame = [0u64; 1];
    let mut op = [GnttabSetupTable {
        dom: DomId::SELF.0,
        nr_frames: 1,
        frame_list: frame.as_mut_ptr() as u64,
        ..Default::default()
    }];
    // SAFETY: one gnttab_setup_table with room for its one frame.
    unsafe { hypercall::grant_table_op(GnttabOp::SetupTable, &mut op) }
        .map_err(|e| ("GNTTABOP_setup_table", e))?;
    if op[0].status != 0 {
        return Err(("GNTTABOP_setup_table status", XenError::Inval));
    }
    let pte = (frame[0] << PAGE_SHIFT)
        | (PteFlags::PRESENT | PteFlags::RW | PteFlags::ACCESSED | PteFlags::DIRTY).bits();
    // SAFETY: WINDOW is this module's page; it shows the grant-table frame from now on.
    unsafe { hypercall::update_va_mapping(VirtAddr(WINDOW.addr()), pte, UVMF_INVLPG) }
        .map_err(|e| ("update_va_mapping of the grant table", e))?;
    for (i, b) in page(&DATA).iter().enumerate() {
        b.store(pattern(i), Ordering::SeqCst);
    }
    let entry = WINDOW.addr() as *mut u64;
    let word = u64::from(GtfFlags::PERMIT_ACCESS.bits())
        | u64::from(peer) << 16
        | mfn_of(DATA.addr()) << 32;
    // SAFETY: entry GREF of our own grant table, mapped writable above.
    unsafe { entry.add(GREF as usize).write_volatile(word) };
    Ok(entry)
}

/// ping: whether entry [`GREF`] is marked in use.
pub fn in_use(table: *mut u64) -> bool {
    // SAFETY: a read of our own mapped grant table.
    let word = unsafe { table.add(GREF as usize).read_volatile() };
    word & u64::from((GtfFlags::READING | GtfFlags::WRITING).bits()) != 0
}

/// pong: maps grant [`GREF`] of `granter` over [`WINDOW`], checks and writes a byte through
/// it, and copies the whole page into [`DATA`] with `GNTTABOP_copy`; the mapping stays.
pub fn take(granter: DomId) -> Result<(), Failure> {
    let mut map = [GnttabMapGrantRef {
        host_addr: WINDOW.addr(),
        flags: GNTMAP_HOST_MAP,
        ref_: GREF,
        dom: granter.0,
        ..Default::default()
    }];
    // SAFETY: maps the peer's page over WINDOW, which nothing else uses.
    unsafe { hypercall::grant_table_op(GnttabOp::MapGrantRef, &mut map) }
        .map_err(|e| ("GNTTABOP_map_grant_ref", e))?;
    if map[0].status != 0 {
        return Err(("GNTTABOP_map_grant_ref status", XenError::Inval));
    }
    let window = page(&WINDOW);
    if window[100].load(Ordering::SeqCst) != pattern(100) {
        return Err(("the mapped grant shows other bytes", XenError::Inval));
    }
    window[4095].store(0x42, Ordering::SeqCst);
    let mut copy = [GnttabCopy {
        source: GnttabCopyPtr::grant(granter.0, GREF, 0),
        dest: GnttabCopyPtr::frame(mfn_of(DATA.addr()), 0),
        len: 4096,
        flags: GNTCOPY_SOURCE_GREF,
        ..Default::default()
    }];
    // SAFETY: copies the peer's granted page into our own page DATA.
    unsafe { hypercall::grant_table_op(GnttabOp::Copy, &mut copy) }
        .map_err(|e| ("GNTTABOP_copy", e))?;
    if copy[0].status != 0 {
        return Err(("GNTTABOP_copy status", XenError::Inval));
    }
    let data = page(&DATA);
    if data[7].load(Ordering::SeqCst) != pattern(7) || data[4095].load(Ordering::SeqCst) != 0x42 {
        return Err(("the copy shows other bytes", XenError::Inval));
    }
    Ok(())
}
