//! `grant.copy.*`: `GNTTABOP_copy` between the caller's own frames and through a grant the
//! caller gives itself (entry 8 of its table, written through the mapped table frame): the
//! bytes arrive where asked, the grant is not left marked in use, and each refusal has
//! Xen 4.17's status: a read-only grant as destination, a reference beyond the table, an
//! unknown domain (looked up before anything else, even for a copy of nothing), a frame named
//! by number under a domain id instead of `DOMID_SELF`, a range past the page, a page table
//! as destination, a frame that is not ours.

use core::sync::atomic::{AtomicU8, Ordering};

use guest_abi::grant_table::{
    GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GntStatus, GnttabCopy, GnttabCopyPtr, GnttabOp,
    GtfFlags,
};
use guest_abi::runtime::hypercall;
use guest_abi::xen::StartInfo;

use crate::check::{Report, Why, eq, ok};
use crate::domain::{l4_mfn, mfn_of};
use guest_abi::runtime::AsmCell;

#[repr(C, align(4096))]
struct Page([AtomicU8; 4096]);
static SRC: AsmCell<Page> = AsmCell::new(Page([const { AtomicU8::new(0) }; 4096]));
static DST: AsmCell<Page> = AsmCell::new(Page([const { AtomicU8::new(0) }; 4096]));

/// The grant this test gives itself.
const GREF: u32 = 8;
/// A domain that does not exist.
const NO_DOMAIN: u16 = 100;
/// A frame far beyond any RAM.
const NO_FRAME: u64 = 0xf_ffff_fff0;

fn page(p: &AsmCell<Page>) -> &'static [AtomicU8; 4096] {
    // SAFETY: the page is a static of atomics, alive for the program's life.
    unsafe { &(*(p.addr() as *const Page)).0 }
}

fn frame(mfn: u64, offset: u16) -> GnttabCopyPtr {
    GnttabCopyPtr::frame(mfn, offset)
}

fn gref(dom: u16, r: u32, offset: u16) -> GnttabCopyPtr {
    GnttabCopyPtr::grant(dom, r, offset)
}

/// One copy; its status, or the call's error.
fn copy(source: GnttabCopyPtr, dest: GnttabCopyPtr, len: u16, flags: u16) -> Result<i16, Why> {
    let mut op = [GnttabCopy {
        source,
        dest,
        len,
        flags,
        status: 99,
        ..Default::default()
    }];
    // SAFETY: one gnttab_copy, read and its status written by the hypervisor; the frames it
    // names are checked by the hypervisor, not trusted.
    ok("GNTTABOP_copy", unsafe {
        hypercall::grant_table_op(GnttabOp::Copy, &mut op)
    })?;
    Ok(op[0].status)
}

fn status_is(got: Result<i16, Why>, want: GntStatus) -> Result<(), Why> {
    eq("status", got? as i64 as u64, i64::from(want.raw()) as u64)
}

/// Runs the checks; `table` is the caller's grant-table frame, mapped writable at this
/// address, and `me` its domain id.
pub fn run(r: &mut Report, si: &StartInfo, table: *mut u64, me: u16) {
    let (src, dst) = (page(&SRC), page(&DST));
    for (i, b) in src.iter().enumerate() {
        b.store(i as u8 ^ 0x5a, Ordering::SeqCst);
    }
    let src_mfn = mfn_of(si, SRC.addr());
    let dst_mfn = mfn_of(si, DST.addr());
    r.check(
        "grant.copy own frames",
        status_is(
            copy(frame(src_mfn, 16), frame(dst_mfn, 32), 100, 0),
            GntStatus::Okay,
        )
        .and_then(|_| {
            eq(
                "first byte",
                dst[32].load(Ordering::SeqCst).into(),
                (16 ^ 0x5a) as u64,
            )
        })
        .and_then(|_| {
            eq(
                "last byte",
                dst[131].load(Ordering::SeqCst).into(),
                (115 ^ 0x5a) as u64,
            )
        })
        .and_then(|_| eq("byte after", dst[132].load(Ordering::SeqCst).into(), 0)),
    );

    let entry = u64::from((GtfFlags::PERMIT_ACCESS | GtfFlags::READONLY).bits())
        | u64::from(me) << 16
        | src_mfn << 32;
    // SAFETY: entry GREF of our own mapped grant table, ours to write.
    unsafe { table.add(GREF as usize).write_volatile(entry) };
    r.check(
        "grant.copy from a read-only grant to ourselves",
        status_is(
            copy(
                gref(me, GREF, 4000),
                frame(dst_mfn, 0),
                96,
                GNTCOPY_SOURCE_GREF,
            ),
            GntStatus::Okay,
        )
        .and_then(|_| {
            eq(
                "byte",
                dst[95].load(Ordering::SeqCst).into(),
                (4095 ^ 0x5a) as u8 as u64,
            )
        })
        .and_then(|_| {
            // SAFETY: as above, a read.
            let after = unsafe { table.add(GREF as usize).read_volatile() };
            eq("entry after", after, entry)
        }),
    );
    let refusals = [
        (
            "grant.copy read-only grant as destination",
            copy(frame(dst_mfn, 0), gref(me, GREF, 0), 8, GNTCOPY_DEST_GREF),
            GntStatus::GeneralError,
        ),
        (
            "grant.copy reference beyond the table",
            copy(
                gref(me, 100_000, 0),
                frame(dst_mfn, 0),
                8,
                GNTCOPY_SOURCE_GREF,
            ),
            GntStatus::BadGntref,
        ),
        (
            "grant.copy unknown domain",
            copy(
                gref(NO_DOMAIN, GREF, 0),
                frame(dst_mfn, 0),
                8,
                GNTCOPY_SOURCE_GREF,
            ),
            GntStatus::BadDomain,
        ),
        (
            "grant.copy by frame number under a domain id (not DOMID_SELF)",
            copy(gref(me, src_mfn as u32, 0), frame(dst_mfn, 0), 8, 0),
            GntStatus::PermissionDenied,
        ),
        (
            "grant.copy by frame number of an unknown domain",
            copy(gref(NO_DOMAIN, 0, 0), frame(dst_mfn, 0), 8, 0),
            GntStatus::BadDomain,
        ),
        (
            "grant.copy past the end of the page",
            copy(frame(src_mfn, 0), frame(dst_mfn, 4090), 100, 0),
            GntStatus::BadCopyArg,
        ),
        (
            "grant.copy into a page table",
            copy(frame(src_mfn, 0), frame(l4_mfn(si), 0), 8, 0),
            GntStatus::GeneralError,
        ),
        (
            "grant.copy from a frame not ours",
            copy(frame(NO_FRAME, 0), frame(dst_mfn, 0), 8, 0),
            GntStatus::BadPage,
        ),
    ];
    for (name, got, want) in refusals {
        r.check(name, status_is(got, want));
    }
    let both = GNTCOPY_SOURCE_GREF | GNTCOPY_DEST_GREF;
    r.check(
        "grant.copy of nothing still checks its domains",
        status_is(
            copy(gref(NO_DOMAIN, 0, 0), frame(NO_FRAME, 0), 0, both),
            GntStatus::BadDomain,
        ),
    );
    // SAFETY: as above; the entry is left unused.
    unsafe { table.add(GREF as usize).write_volatile(0) };
}
