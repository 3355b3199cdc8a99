//! `grant.map.*`: `GNTTABOP_map_grant_ref` and `unmap_grant_ref` of a grant the caller gives
//! itself (entry 9 of its table): mapped writable over a page of the image, the granted page's
//! bytes are seen and written through the mapping and the entry is marked in use; unmapped,
//! the mark is gone and the handle is no longer valid. Refusals with Xen's status: no map
//! flag, a read-only grant mapped writable, a page table granted writable, an unknown handle.
//! The page of the image gets its own frame back afterwards.

use core::sync::atomic::{AtomicU8, Ordering};

use guest_abi::VirtAddr;
use guest_abi::arch::PteFlags;
use guest_abi::grant_table::{
    GNTMAP_HOST_MAP, GntStatus, GnttabMapGrantRef, GnttabOp, GnttabUnmapAndReplace,
    GnttabUnmapGrantRef, GtfFlags,
};
use guest_abi::runtime::{AsmCell, hypercall};
use guest_abi::xen::{StartInfo, UVMF_INVLPG};

use crate::check::{Report, Why, ensure, eq, ok};
use crate::domain::{l4_mfn, mfn_of};

#[repr(C, align(4096))]
struct Page([AtomicU8; 4096]);
/// The page granted.
static GRANTED: AsmCell<Page> = AsmCell::new(Page([const { AtomicU8::new(0) }; 4096]));
/// The page of the image the grant is mapped over.
static WINDOW: AsmCell<Page> = AsmCell::new(Page([const { AtomicU8::new(0) }; 4096]));
/// The page whose mapping `unmap_and_replace` moves over the grant.
static SPARE: AsmCell<Page> = AsmCell::new(Page([const { AtomicU8::new(0) }; 4096]));

/// The grant this test gives itself.
const GREF: u32 = 9;
/// `GTF_reading | GTF_writing`.
const IN_USE: u64 = (GtfFlags::READING.bits() | GtfFlags::WRITING.bits()) as u64;

fn page(p: &AsmCell<Page>) -> &'static [AtomicU8; 4096] {
    // SAFETY: the page is a static of atomics, alive for the program's life.
    unsafe { &(*(p.addr() as *const Page)).0 }
}

/// Maps grant `gref` of domain `me` at `addr` with `flags`: (call result, status, handle).
fn map(me: u16, gref: u32, flags: u32, addr: u64) -> Result<(i16, u32), Why> {
    let mut op = [GnttabMapGrantRef {
        host_addr: addr,
        flags,
        ref_: gref,
        dom: me,
        status: 99,
        ..Default::default()
    }];
    // SAFETY: one gnttab_map_grant_ref; the hypervisor checks every field.
    ok("GNTTABOP_map_grant_ref", unsafe {
        hypercall::grant_table_op(GnttabOp::MapGrantRef, &mut op)
    })?;
    Ok((op[0].status, op[0].handle))
}

fn unmap(handle: u32, addr: u64) -> Result<i16, Why> {
    let mut op = [GnttabUnmapGrantRef {
        host_addr: addr,
        handle,
        status: 99,
        ..Default::default()
    }];
    // SAFETY: one gnttab_unmap_grant_ref; the hypervisor checks every field.
    ok("GNTTABOP_unmap_grant_ref", unsafe {
        hypercall::grant_table_op(GnttabOp::UnmapGrantRef, &mut op)
    })?;
    Ok(op[0].status)
}

fn is(got: i16, want: GntStatus) -> Result<(), Why> {
    eq("status", got as i64 as u64, i64::from(want.raw()) as u64)
}

/// Runs the checks; `table` is the caller's grant-table frame, mapped writable at this
/// address, and `me` its domain id.
pub fn run(r: &mut Report, si: &StartInfo, table: *mut u64, me: u16) {
    let granted = page(&GRANTED);
    granted[100].store(0xab, Ordering::SeqCst);
    let granted_mfn = mfn_of(si, GRANTED.addr());
    let window_mfn = mfn_of(si, WINDOW.addr());
    let set = |flags: GtfFlags, frame: u64| {
        let e = u64::from(flags.bits()) | u64::from(me) << 16 | frame << 32;
        // SAFETY: entry GREF of our own mapped grant table, ours to write.
        unsafe { table.add(GREF as usize).write_volatile(e) };
    };
    // SAFETY: as above, a read.
    let entry = || unsafe { table.add(GREF as usize).read_volatile() };
    set(GtfFlags::PERMIT_ACCESS, granted_mfn);
    let va = WINDOW.addr();
    let mut handle = None;
    r.check(
        "grant.map own grant writable over a page",
        map(me, GREF, GNTMAP_HOST_MAP, va).and_then(|(status, h)| {
            is(status, GntStatus::Okay)?;
            handle = Some(h);
            let window = page(&WINDOW);
            eq(
                "byte read through the mapping",
                window[100].load(Ordering::SeqCst).into(),
                0xab,
            )?;
            window[200].store(0xcd, Ordering::SeqCst);
            eq(
                "byte written through it",
                granted[200].load(Ordering::SeqCst).into(),
                0xcd,
            )?;
            eq("entry in use", entry() & IN_USE, IN_USE)
        }),
    );
    if let Some(h) = handle {
        r.check(
            "grant.unmap: done, entry no longer in use",
            unmap(h, va)
                .and_then(|s| is(s, GntStatus::Okay))
                .and_then(|_| eq("in use", entry() & IN_USE, 0)),
        );
        r.check(
            "grant.unmap of a handle already unmapped",
            unmap(h, va).and_then(|s| is(s, GntStatus::BadHandle)),
        );
    }
    // unmap_and_replace: a second mapping of the grant gives way to the mapping of SPARE,
    // whose own address is left unmapped.
    let spare_va = SPARE.addr();
    let spare_mfn = mfn_of(si, spare_va);
    page(&SPARE)[300].store(0x77, Ordering::SeqCst);
    r.check(
        "grant.unmap_and_replace moves another mapping over the grant",
        map(me, GREF, GNTMAP_HOST_MAP, va).and_then(|(status, h)| {
            is(status, GntStatus::Okay)?;
            let mut op = [GnttabUnmapAndReplace {
                host_addr: va,
                new_addr: spare_va,
                handle: h,
                status: 99,
                ..Default::default()
            }];
            // SAFETY: the window now shows SPARE's frame; SPARE's own address is left
            // unmapped and is not touched until it is mapped back below.
            ok("GNTTABOP_unmap_and_replace", unsafe {
                hypercall::grant_table_op(GnttabOp::UnmapAndReplace, &mut op)
            })?;
            is(op[0].status, GntStatus::Okay)?;
            eq(
                "byte of SPARE through the window",
                page(&WINDOW)[300].load(Ordering::SeqCst).into(),
                0x77,
            )?;
            eq("entry in use", entry() & IN_USE, 0)
        }),
    );
    let spare_pte = (spare_mfn << 12)
        | (PteFlags::PRESENT | PteFlags::RW | PteFlags::ACCESSED | PteFlags::DIRTY).bits();
    // SAFETY: SPARE's own frame, mapped back where it was.
    let back = unsafe { hypercall::update_va_mapping(VirtAddr(spare_va), spare_pte, UVMF_INVLPG) };
    r.check(
        "grant.unmap_and_replace: spare page mapped back",
        ok("update_va_mapping", back).map(drop),
    );
    // The window gets its own frame back.
    let pte = (window_mfn << 12)
        | (PteFlags::PRESENT | PteFlags::RW | PteFlags::ACCESSED | PteFlags::DIRTY).bits();
    // SAFETY: the window's own frame, mapped where it was.
    let back = unsafe { hypercall::update_va_mapping(VirtAddr(va), pte, UVMF_INVLPG) };
    r.check(
        "grant.map window mapped back",
        ok("update_va_mapping", back).and_then(|_| {
            page(&WINDOW)[0].store(1, Ordering::SeqCst);
            ensure(
                granted[0].load(Ordering::SeqCst) == 0,
                "the window still shows the grant",
            )
        }),
    );
    let status = |flags: u32| map(me, GREF, flags, va).map(|(s, _)| s);
    r.check(
        "grant.map with no map flag",
        status(0).and_then(|s| is(s, GntStatus::BadGntref)),
    );
    set(GtfFlags::PERMIT_ACCESS | GtfFlags::READONLY, granted_mfn);
    r.check(
        "grant.map read-only grant writable",
        status(GNTMAP_HOST_MAP).and_then(|s| is(s, GntStatus::GeneralError)),
    );
    set(GtfFlags::PERMIT_ACCESS, l4_mfn(si));
    r.check(
        "grant.map page-table grant writable",
        status(GNTMAP_HOST_MAP).and_then(|s| is(s, GntStatus::GeneralError)),
    );
    r.check(
        "grant.unmap unknown handle",
        unmap(4000, va).and_then(|s| is(s, GntStatus::BadHandle)),
    );
    set(GtfFlags::empty(), 0);
}
