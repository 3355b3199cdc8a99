//! `grant.v2.*`: version 2 of the caller's grant table. `set_version(2)`, `get_version`,
//! `get_status_frames` (its status frame is mapped read-only to watch the in-use bits), a
//! sub-page grant copied from inside and refused outside, a full-page grant mapped (its in-use
//! bits appear in the status word, not in the entry), `set_version(1)` refused while a grant is
//! mapped and while a status frame is mapped, then accepted once neither is.

use core::sync::atomic::{AtomicU8, Ordering};

use guest_abi::arch::PteFlags;
use guest_abi::grant_table::{
    GNTCOPY_SOURCE_GREF, GNTMAP_HOST_MAP, GntStatus, GnttabCopy, GnttabCopyPtr,
    GnttabGetStatusFrames, GnttabGetVersion, GnttabMapGrantRef, GnttabOp, GnttabSetVersion,
    GnttabUnmapGrantRef, GtfFlags,
};
use guest_abi::runtime::{AsmCell, hypercall};
use guest_abi::xen::{StartInfo, UVMF_INVLPG};
use guest_abi::{DomId, VirtAddr, XenError};

use crate::check::{Report, Why, eq, ok};
use crate::domain::mfn_of;

#[repr(C, align(4096))]
struct Page([AtomicU8; 4096]);
/// The page granted.
static GRANTED: AsmCell<Page> = AsmCell::new(Page([const { AtomicU8::new(0) }; 4096]));
/// Where the grant is mapped.
static WINDOW: AsmCell<Page> = AsmCell::new(Page([const { AtomicU8::new(0) }; 4096]));
/// Where the status frame is mapped.
static STATUS: AsmCell<Page> = AsmCell::new(Page([const { AtomicU8::new(0) }; 4096]));
/// A page to copy into.
static COPY_TO: AsmCell<Page> = AsmCell::new(Page([const { AtomicU8::new(0) }; 4096]));

/// The grants this test gives itself.
const SUB: u32 = 9;
const FULL: u32 = 10;

fn page(p: &AsmCell<Page>) -> &'static [AtomicU8; 4096] {
    // SAFETY: the page is a static of atomics, alive for the program's life.
    unsafe { &(*(p.addr() as *const Page)).0 }
}

fn set_version(version: u32) -> (Result<u64, XenError>, u32) {
    let mut v = [GnttabSetVersion { version }];
    // SAFETY: one gnttab_set_version.
    let r = unsafe { hypercall::grant_table_op(GnttabOp::SetVersion, &mut v) };
    (r, v[0].version)
}

/// Maps frame `mfn` over the page at `va` with `flags` (its own frame to put it back).
fn remap(va: u64, mfn: u64, flags: PteFlags) -> Result<u64, XenError> {
    let pte = (mfn << 12) | (flags | PteFlags::PRESENT | PteFlags::ACCESSED).bits();
    // SAFETY: one of this module's pages, remapped; nothing holds a reference into it.
    unsafe { hypercall::update_va_mapping(VirtAddr(va), pte, UVMF_INVLPG) }
}

fn is(got: i16, want: GntStatus) -> Result<(), Why> {
    eq("status", got as i64 as u64, i64::from(want.raw()) as u64)
}

/// Runs the checks; `table` is the caller's grant-table frame, mapped writable at this
/// address, and `me` its domain id. Leaves the table at version 1.
pub fn run(r: &mut Report, si: &StartInfo, table: *mut u64, me: u16) {
    let (res, v) = set_version(2);
    r.check(
        "grant.v2 set_version 2",
        ok("GNTTABOP_set_version", res).and_then(|_| eq("version", v.into(), 2)),
    );
    if res.is_err() {
        return;
    }
    let mut gv = [GnttabGetVersion {
        dom: DomId::SELF.0,
        ..Default::default()
    }];
    // SAFETY: one gnttab_get_version.
    let res = unsafe { hypercall::grant_table_op(GnttabOp::GetVersion, &mut gv) };
    r.check(
        "grant.v2 get_version",
        ok("GNTTABOP_get_version", res).and_then(|_| eq("version", gv[0].version.into(), 2)),
    );
    let mut frame = 0u64;
    let mut sf = [GnttabGetStatusFrames {
        nr_frames: 1,
        dom: DomId::SELF.0,
        frame_list: &raw mut frame as u64,
        ..Default::default()
    }];
    // SAFETY: one gnttab_get_status_frames with room for its one frame.
    let res = unsafe { hypercall::grant_table_op(GnttabOp::GetStatusFrames, &mut sf) };
    let status_va = STATUS.addr();
    let status_mapped = ok("GNTTABOP_get_status_frames", res)
        .and_then(|_| is(sf[0].status, GntStatus::Okay))
        .and_then(|_| {
            ok(
                "map the status frame read-only",
                remap(status_va, frame, PteFlags::empty()),
            )
        })
        .map(drop);
    let mapped_status = status_mapped.is_ok();
    r.check(
        "grant.v2 get_status_frames and map it read-only",
        status_mapped,
    );

    // Entry SUB: bytes 100..150 of GRANTED; entry FULL: all of it. 16 bytes an entry.
    let granted = page(&GRANTED);
    for (i, b) in granted.iter().enumerate() {
        b.store(i as u8, Ordering::SeqCst);
    }
    let frame_of = mfn_of(si, GRANTED.addr());
    let header = |flags: GtfFlags| u64::from(flags.bits()) | u64::from(me) << 16;
    // SAFETY: entries of our own mapped grant table, ours to write.
    unsafe {
        table.add(2 * SUB as usize).write_volatile(
            header(GtfFlags::PERMIT_ACCESS | GtfFlags::SUB_PAGE) | (100 | 50 << 16) << 32,
        );
        table.add(2 * SUB as usize + 1).write_volatile(frame_of);
        table
            .add(2 * FULL as usize)
            .write_volatile(header(GtfFlags::PERMIT_ACCESS));
        table.add(2 * FULL as usize + 1).write_volatile(frame_of);
    }
    let copy_to = mfn_of(si, COPY_TO.addr());
    let copy = |offset: u16, len: u16| {
        let mut op = [GnttabCopy {
            source: GnttabCopyPtr::grant(me, SUB, offset),
            dest: GnttabCopyPtr::frame(copy_to, 0),
            len,
            flags: GNTCOPY_SOURCE_GREF,
            status: 99,
            ..Default::default()
        }];
        // SAFETY: copies from our own page into our own page.
        let res = unsafe { hypercall::grant_table_op(GnttabOp::Copy, &mut op) };
        ok("GNTTABOP_copy", res).map(|_| op[0].status)
    };
    r.check(
        "grant.v2 copy from inside a sub-page grant",
        copy(110, 40)
            .and_then(|s| is(s, GntStatus::Okay))
            .and_then(|_| eq("byte", page(&COPY_TO)[0].load(Ordering::SeqCst).into(), 110)),
    );
    r.check(
        "grant.v2 copy from outside a sub-page grant",
        copy(90, 20).and_then(|s| is(s, GntStatus::GeneralError)),
    );

    let va = WINDOW.addr();
    let mut map = [GnttabMapGrantRef {
        host_addr: va,
        flags: GNTMAP_HOST_MAP,
        ref_: FULL,
        dom: me,
        status: 99,
        ..Default::default()
    }];
    // SAFETY: maps our own page over WINDOW.
    let res = unsafe { hypercall::grant_table_op(GnttabOp::MapGrantRef, &mut map) };
    let status_word = || {
        let s = page(&STATUS);
        let at = 2 * FULL as usize;
        u16::from(s[at].load(Ordering::SeqCst)) | u16::from(s[at + 1].load(Ordering::SeqCst)) << 8
    };
    let in_use = (GtfFlags::READING | GtfFlags::WRITING).bits();
    r.check(
        "grant.v2 map marks the status word, not the entry",
        ok("GNTTABOP_map_grant_ref", res)
            .and_then(|_| is(map[0].status, GntStatus::Okay))
            .and_then(|_| {
                eq(
                    "byte through the mapping",
                    page(&WINDOW)[77].load(Ordering::SeqCst).into(),
                    77,
                )
            })
            .and_then(|_| {
                if mapped_status {
                    eq("status word", status_word().into(), in_use.into())
                } else {
                    Ok(())
                }
            })
            .and_then(|_| {
                // SAFETY: a read of our own grant table.
                let e = unsafe { table.add(2 * FULL as usize).read_volatile() };
                eq(
                    "entry flags",
                    e & 0xffff,
                    GtfFlags::PERMIT_ACCESS.bits().into(),
                )
            }),
    );
    r.check(
        "grant.v2 set_version 1 while a grant is mapped",
        match set_version(1) {
            (Err(e), 2) => eq("errno", e.raw() as u64, XenError::Busy.raw() as u64),
            _ => Err(Why::Text("not refused with EBUSY")),
        },
    );
    let mut unmap = [GnttabUnmapGrantRef {
        host_addr: va,
        handle: map[0].handle,
        ..Default::default()
    }];
    // SAFETY: removes the mapping just made.
    let res = unsafe { hypercall::grant_table_op(GnttabOp::UnmapGrantRef, &mut unmap) };
    let _ = ok("GNTTABOP_unmap_grant_ref", res);
    let _ = remap(va, mfn_of(si, va), PteFlags::RW);
    if mapped_status {
        r.check(
            "grant.v2 set_version 1 while a status frame is mapped",
            match set_version(1) {
                (Err(e), 2) => eq("errno", e.raw() as u64, XenError::Busy.raw() as u64),
                _ => Err(Why::Text("not refused with EBUSY")),
            },
        );
        let _ = remap(status_va, mfn_of(si, status_va), PteFlags::RW);
    }
    let (res, v) = set_version(1);
    r.check(
        "grant.v2 set_version 1 once nothing is in use",
        ok("GNTTABOP_set_version", res).and_then(|_| eq("version", v.into(), 1)),
    );
}
