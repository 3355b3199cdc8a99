//! `GNTTABOP_copy`: copies of at most a page between frames, either side named by a grant
//! reference of some domain or (for the caller's own memory only) by its frame number. This
//! is how a backend moves a frontend's data without mapping it.
//!
//! Each copy is checked in Xen 4.17's order (as the Debian build answers; newer Xen checks
//! the permission before the lookup and does a zero-length copy at once), and its status
//! goes into its own `status` field:
//! 1. the domain of each side must exist (`bad_domain`), and a side named by frame must be
//!    `DOMID_SELF` (`permission_denied`), even for a copy of nothing;
//! 2. the source, then the destination, is claimed: a grant reference must be within the
//!    granting domain's table (`bad_gntref`), its entry must permit access to the caller
//!    (`GTF_permit_access`, the caller's id) and, for the destination, not be read-only
//!    (`general_error`); the entry gets `GTF_reading` (and `GTF_writing`) for the copy's
//!    duration, set with a bounded compare-and-swap since the granting domain writes the entry
//!    concurrently. The frame (the entry's or the one named) must belong to the domain
//!    (`bad_page`), and the destination frame must take a writable type (`general_error`:
//!    never a page table or descriptor table, so a copy cannot break the PV MMU invariants);
//! 3. both ranges must lie inside the page (`bad_copy_arg`).
//!
//! Everything claimed is released before the next copy, whatever its outcome. A batch is
//! bounded in time: between copies it may stop and continue later (Xen's continuation: the
//! guest re-executes the call for the copies left).

use super::grant_entry::Entry;
use super::grant_map::{each_op, entry, settle, table};
use super::{Ctx, FrameRefused, HcResult, Host};
use crate::pv::guest_mem::GuestMemory;
use guest_abi::grant_table::{
    GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GntStatus, GnttabCopy, GnttabCopyPtr,
};
use guest_abi::{DomId, PAGE_SIZE};

/// `GNTTABOP_copy(uop, count)`: each copy's status goes into its `status` field only, as
/// Xen writes it. `args` describe the copies left when the batch continues.
pub fn copy<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, args: &mut [u64; 5]) -> HcResult {
    each_op(ctx, args, |ctx, at, op: GnttabCopy| {
        let status = copy_one(ctx, &op).err().unwrap_or(GntStatus::Okay);
        let field = at + core::mem::offset_of!(GnttabCopy, status) as u64;
        ctx.mem.write_obj(field, &(status.raw() as i16))
    })
}

/// One side of a copy, claimed: its frame held, and its grant entry marked in use.
#[derive(Clone, Copy)]
struct Claimed {
    frame: u64,
    writable: bool,
    /// The bytes of the frame it may touch: the whole page, or a sub-page grant's.
    granted: (u16, u16),
    /// The granting domain, the reference and its entry, whose `GTF_reading` and
    /// `GTF_writing` this claim set.
    entry: Option<(DomId, u32, Entry)>,
}

impl Claimed {
    /// Whether `len` bytes from `offset` lie within what was granted.
    fn covers(&self, offset: u16, len: u16) -> bool {
        let (start, glen) = (u32::from(self.granted.0), u32::from(self.granted.1));
        u32::from(offset) >= start && u32::from(offset) + u32::from(len) <= start + glen
    }
}

fn copy_one<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    op: &GnttabCopy,
) -> Result<(), GntStatus> {
    let src_gref = op.flags & GNTCOPY_SOURCE_GREF != 0;
    let dst_gref = op.flags & GNTCOPY_DEST_GREF != 0;
    let src_dom = side_domain(ctx, &op.source, src_gref)?;
    let dst_dom = side_domain(ctx, &op.dest, dst_gref)?;
    let src = claim(ctx, &op.source, src_dom, src_gref, false)?;
    let result = claim(ctx, &op.dest, dst_dom, dst_gref, true).and_then(|dst| {
        let page = PAGE_SIZE as u32;
        let fits = |p: &GnttabCopyPtr| u32::from(p.offset) + u32::from(op.len) <= page;
        let result = if !fits(&op.source) || !fits(&op.dest) {
            Err(GntStatus::BadCopyArg)
        } else if !src.covers(op.source.offset, op.len) || !dst.covers(op.dest.offset, op.len) {
            // Outside a sub-page grant.
            Err(GntStatus::GeneralError)
        } else {
            ctx.host.copy_frame_bytes(
                (dst.frame, op.dest.offset),
                (src.frame, op.source.offset),
                op.len,
            );
            Ok(())
        };
        release(ctx, dst);
        result
    });
    release(ctx, src);
    result
}

/// The domain one side names: one that exists, and `DOMID_SELF` unless named by grant.
fn side_domain<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    side: &GnttabCopyPtr,
    by_gref: bool,
) -> Result<DomId, GntStatus> {
    let dom = DomId(side.domid);
    if dom == DomId::SELF {
        return Ok(ctx.domain.id);
    }
    if table(ctx, dom).is_none() {
        return Err(GntStatus::BadDomain);
    }
    if by_gref {
        Ok(dom)
    } else {
        Err(GntStatus::PermissionDenied)
    }
}

/// Claims one side: its grant entry (if named by reference) and its frame.
fn claim<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    side: &GnttabCopyPtr,
    dom: DomId,
    by_gref: bool,
    writable: bool,
) -> Result<Claimed, GntStatus> {
    let (frame, entry) = if by_gref {
        let (e, frame) = pin_entry(ctx, dom, gref_of(side), writable)?;
        (frame, Some((dom, gref_of(side), e)))
    } else {
        (side.u, None)
    };
    let whole = (0, PAGE_SIZE as u16);
    let granted = entry.and_then(|(_, _, e)| e.sub_page()).unwrap_or(whole);
    let refused = match ctx.host.get_frame(dom, frame, writable) {
        Ok(()) => {
            return Ok(Claimed {
                frame,
                writable,
                granted,
                entry,
            });
        }
        Err(FrameRefused::NotOwned) => GntStatus::BadPage,
        Err(FrameRefused::NotWritable) => GntStatus::GeneralError,
    };
    if let Some((_, gref, e)) = entry {
        unpin(ctx, dom, gref, &e);
    }
    Err(refused)
}

fn gref_of(side: &GnttabCopyPtr) -> u32 {
    side.u as u32
}

fn release<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, c: Claimed) {
    ctx.host.put_frame(c.frame, c.writable);
    if let Some((dom, gref, e)) = c.entry {
        unpin(ctx, dom, gref, &e);
    }
}

/// Marks grant `gref` of `dom` in use by the caller for the copy (`GTF_reading`, and
/// `GTF_writing` for a write), checking that it grants the caller that access and that no
/// other domain has it mapped; returns the entry and its frame.
fn pin_entry<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    dom: DomId,
    gref: u32,
    writable: bool,
) -> Result<(Entry, u64), GntStatus> {
    let me = ctx.domain.id;
    let (e, act) = entry(ctx, dom, gref)?;
    if act.is_some_and(|a| !a.admits(me, writable)) {
        return Err(GntStatus::GeneralError);
    }
    e.set_status(me, writable, false)?;
    let frame = match act {
        Some(a) => a.frame,
        None => e.frame(),
    };
    Ok((e, frame))
}

/// The copy is over: the entry's in-use bits go back to what its mappings need.
fn unpin<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, dom: DomId, gref: u32, e: &Entry) {
    let active = table(ctx, dom).and_then(|(_, a)| a.get(gref));
    settle(e, active);
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fixture, call};
    use super::*;
    use guest_abi::Hypercall;
    use guest_abi::XenError;
    use guest_abi::grant_table::GtfFlags;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Bytes of one `gnttab_copy`.
    const OP_SIZE: u64 = size_of::<GnttabCopy>() as u64;
    const OWN_TABLE: u64 = 0x100;
    const FOREIGN_TABLE: u64 = 0x200;
    const OTHER: DomId = DomId(7);
    /// dom0's data frames, and one of its page tables.
    const A: u64 = 0x10;
    const B: u64 = 0x11;
    const PT: u64 = 0x12;
    /// The other domain's data frames.
    const X: u64 = 0x70;
    const Y: u64 = 0x71;
    const UOP: u64 = 0x2000;

    fn fixture() -> Fixture {
        let mut f = Fixture::new();
        assert!(f.domain.grant_frames.push(OWN_TABLE));
        let mut other = super::super::grant::GrantFrames::default();
        assert!(other.push(FOREIGN_TABLE));
        f.host.foreign.push((OTHER, other, Default::default()));
        for frame in [A, B, PT] {
            f.host.owners.insert(frame, DomId(0));
        }
        f.host.not_writable.push(PT);
        for frame in [X, Y] {
            f.host.owners.insert(frame, OTHER);
        }
        for i in 0..4096 {
            f.host.set_byte(A, i, i as u8);
            f.host.set_byte(X, i, !(i as u8));
        }
        f
    }

    /// Writes grant `gref` of the table in `table`: `flags`, to `domid`, of `frame`.
    fn grant(f: &mut Fixture, table: u64, gref: u32, flags: GtfFlags, domid: u16, frame: u64) {
        let t = f.host.frame(table);
        t[gref as usize * 2].store(u32::from(flags.bits()) | u32::from(domid) << 16, SeqCst);
        t[gref as usize * 2 + 1].store(frame as u32, SeqCst);
    }

    use core::sync::atomic::Ordering::SeqCst;

    fn by_frame(frame: u64, offset: u16) -> GnttabCopyPtr {
        GnttabCopyPtr::frame(frame, offset)
    }

    fn by_gref(dom: DomId, gref: u32, offset: u16) -> GnttabCopyPtr {
        GnttabCopyPtr::grant(dom.0, gref, offset)
    }

    fn op(source: GnttabCopyPtr, dest: GnttabCopyPtr, len: u16, flags: u16) -> GnttabCopy {
        GnttabCopy {
            source,
            dest,
            len,
            flags,
            status: 99,
            ..Default::default()
        }
    }

    /// Runs the copies as one call; returns the call's result and each status.
    fn run(f: &mut Fixture, ops: &[GnttabCopy]) -> (HcResult, Vec<i16>) {
        for (i, o) in ops.iter().enumerate() {
            f.mem.write_obj(UOP + i as u64 * OP_SIZE, o).unwrap();
        }
        let r = call(f, Hypercall::GrantTableOp, [5, UOP, ops.len() as u64, 0, 0]);
        let statuses = (0..ops.len())
            .map(|i| {
                f.mem
                    .read_obj::<GnttabCopy>(UOP + i as u64 * OP_SIZE)
                    .unwrap()
                    .status
            })
            .collect();
        (r, statuses)
    }

    fn status(f: &mut Fixture, o: GnttabCopy) -> GntStatus {
        let (r, s) = run(f, &[o]);
        assert_eq!(r, Ok(0));
        GntStatus::from_raw(i32::from(s[0])).expect("a GNTST code")
    }

    /// Nothing is held after a call and no grant entry is left marked in use.
    fn assert_released(f: &mut Fixture) {
        assert!(
            f.host.held.is_empty(),
            "frames still held: {:?}",
            f.host.held
        );
        let in_use = u32::from((GtfFlags::READING | GtfFlags::WRITING).bits());
        for table in [OWN_TABLE, FOREIGN_TABLE] {
            for w in f.host.frame(table).iter().step_by(2) {
                assert_eq!(w.load(SeqCst) & in_use, 0, "a grant left in use");
            }
        }
    }

    #[test]
    fn copies_between_own_frames_and_granted_frames() {
        let mut f = fixture();
        let o = op(by_frame(A, 10), by_frame(B, 100), 50, 0);
        assert_eq!(status(&mut f, o), GntStatus::Okay);
        assert_eq!(f.host.byte(B, 100), 10);
        assert_eq!(f.host.byte(B, 149), 59);
        assert_eq!(f.host.byte(B, 150), 0);
        // The other domain grants X to dom0, read-only: dom0 reads it.
        grant(
            &mut f,
            FOREIGN_TABLE,
            9,
            GtfFlags::PERMIT_ACCESS | GtfFlags::READONLY,
            0,
            X,
        );
        let o = op(
            by_gref(OTHER, 9, 0),
            by_frame(B, 0),
            4096,
            GNTCOPY_SOURCE_GREF,
        );
        assert_eq!(status(&mut f, o), GntStatus::Okay);
        assert_eq!(f.host.byte(B, 5), !5);
        // ... but cannot write it.
        let o = op(by_frame(A, 0), by_gref(OTHER, 9, 0), 8, GNTCOPY_DEST_GREF);
        assert_eq!(status(&mut f, o), GntStatus::GeneralError);
        assert_eq!(f.host.byte(X, 0), !0);
        // A writable grant of Y: written at an offset.
        grant(&mut f, FOREIGN_TABLE, 10, GtfFlags::PERMIT_ACCESS, 0, Y);
        let o = op(
            by_frame(A, 1),
            by_gref(OTHER, 10, 4000),
            96,
            GNTCOPY_DEST_GREF,
        );
        assert_eq!(status(&mut f, o), GntStatus::Okay);
        assert_eq!((f.host.byte(Y, 4000), f.host.byte(Y, 4095)), (1, 96));
        // A domain's grant to itself, by its own id.
        grant(&mut f, OWN_TABLE, 8, GtfFlags::PERMIT_ACCESS, 0, A);
        let both = GNTCOPY_SOURCE_GREF | GNTCOPY_DEST_GREF;
        let o = op(by_gref(DomId(0), 8, 0), by_gref(OTHER, 10, 0), 16, both);
        assert_eq!(status(&mut f, o), GntStatus::Okay);
        assert_eq!(f.host.byte(Y, 15), 15);
        assert_released(&mut f);
    }

    #[test]
    fn each_bad_copy_gets_xens_status() {
        let mut f = fixture();
        grant(&mut f, FOREIGN_TABLE, 9, GtfFlags::PERMIT_ACCESS, 0, X);
        grant(&mut f, FOREIGN_TABLE, 11, GtfFlags::PERMIT_ACCESS, 3, X);
        grant(&mut f, FOREIGN_TABLE, 12, GtfFlags::ACCEPT_TRANSFER, 0, X);
        grant(&mut f, FOREIGN_TABLE, 13, GtfFlags::PERMIT_ACCESS, 0, A);
        let src = GNTCOPY_SOURCE_GREF;
        let cases = [
            // A frame named by number under a domain id: refused once the domain is found.
            (
                op(by_gref(OTHER, X as u32, 0), by_frame(B, 0), 8, 0),
                GntStatus::PermissionDenied,
            ),
            (
                op(by_gref(DomId(0), A as u32, 0), by_frame(B, 0), 8, 0),
                GntStatus::PermissionDenied,
            ),
            (
                op(by_gref(DomId(9), 9, 0), by_frame(B, 0), 8, 0),
                GntStatus::BadDomain,
            ),
            (
                op(by_gref(DomId(9), 9, 0), by_frame(B, 0), 8, src),
                GntStatus::BadDomain,
            ),
            (
                op(by_gref(OTHER, 512, 0), by_frame(B, 0), 8, src),
                GntStatus::BadGntref,
            ),
            (
                op(by_gref(OTHER, u32::MAX, 0), by_frame(B, 0), 8, src),
                GntStatus::BadGntref,
            ),
            // Granted to dom3, not to the caller; not an access grant; unused.
            (
                op(by_gref(OTHER, 11, 0), by_frame(B, 0), 8, src),
                GntStatus::GeneralError,
            ),
            (
                op(by_gref(OTHER, 12, 0), by_frame(B, 0), 8, src),
                GntStatus::GeneralError,
            ),
            (
                op(by_gref(OTHER, 20, 0), by_frame(B, 0), 8, src),
                GntStatus::GeneralError,
            ),
            // A grant of a frame its granter does not own.
            (
                op(by_gref(OTHER, 13, 0), by_frame(B, 0), 8, src),
                GntStatus::BadPage,
            ),
            (op(by_frame(X, 0), by_frame(B, 0), 8, 0), GntStatus::BadPage),
            (op(by_frame(A, 0), by_frame(X, 0), 8, 0), GntStatus::BadPage),
            // Into a page table: never.
            (
                op(by_frame(A, 0), by_frame(PT, 0), 8, 0),
                GntStatus::GeneralError,
            ),
            (
                op(by_frame(A, 4090), by_frame(B, 0), 8, 0),
                GntStatus::BadCopyArg,
            ),
            (
                op(by_frame(A, 0), by_frame(B, 4089), 8, 0),
                GntStatus::BadCopyArg,
            ),
            (
                op(by_gref(OTHER, 9, 0), by_frame(B, 0), 4097, src),
                GntStatus::BadCopyArg,
            ),
            // Nothing to copy: still checked.
            (
                op(by_gref(DomId(9), 0, 0), by_frame(X, 0), 0, 0),
                GntStatus::BadDomain,
            ),
            (op(by_frame(A, 0), by_frame(X, 0), 0, 0), GntStatus::BadPage),
            (op(by_frame(A, 4096), by_frame(B, 0), 0, 0), GntStatus::Okay),
        ];
        for (o, want) in cases {
            assert_eq!(status(&mut f, o), want, "{o:?}");
            assert_released(&mut f);
        }
        assert_eq!(f.host.byte(PT, 0), 0);
        assert_eq!(f.host.byte(X, 0), !0);
    }

    #[test]
    fn version_2_entries_sub_pages_and_status_words() {
        let mut f = fixture();
        f.mem
            .write_obj(
                0x2000,
                &guest_abi::grant_table::GnttabSetVersion { version: 2 },
            )
            .unwrap();
        assert_eq!(
            call(&mut f, Hypercall::GrantTableOp, [8, 0x2000, 1, 0, 0]),
            Ok(0)
        );
        let status_frame = f.domain.grant_frames.status_frames()[0];
        // Entry 8 (bytes 128..144): a sub-page grant of A's bytes 100..150 to dom0.
        let t = f.host.frame(OWN_TABLE);
        let flags = (GtfFlags::PERMIT_ACCESS | GtfFlags::SUB_PAGE).bits();
        t[32].store(u32::from(flags), SeqCst);
        t[33].store(100 | 50 << 16, SeqCst);
        t[34].store(A as u32, SeqCst);
        let src = GNTCOPY_SOURCE_GREF;
        let inside = op(by_gref(DomId(0), 8, 100), by_frame(B, 0), 50, src);
        assert_eq!(status(&mut f, inside), GntStatus::Okay);
        assert_eq!(f.host.byte(B, 0), 100);
        let before = op(by_gref(DomId(0), 8, 99), by_frame(B, 0), 2, src);
        assert_eq!(status(&mut f, before), GntStatus::GeneralError);
        let past = op(by_gref(DomId(0), 8, 120), by_frame(B, 0), 31, src);
        assert_eq!(status(&mut f, past), GntStatus::GeneralError);
        // The in-use bits went to the status word and back; the header kept its flags.
        assert_eq!(f.host.frame(status_frame)[4].load(SeqCst), 0);
        assert_eq!(f.host.frame(OWN_TABLE)[32].load(SeqCst), u32::from(flags));
        assert!(f.host.held.is_empty());
    }

    #[test]
    fn a_long_batch_continues_with_the_copies_left() {
        let mut f = fixture();
        // Asked before every copy but the first: the second time, it is time to stop.
        f.host.preempt_every = 2;
        let ops = [op(by_frame(A, 0), by_frame(B, 0), 8, 0); 3];
        let (r, s) = run(&mut f, &ops);
        assert_eq!(
            r,
            Ok(u64::from(Hypercall::GrantTableOp.raw())),
            "rax keeps the number"
        );
        assert_eq!(s, [0, 0, 99]);
        assert_eq!((f.regs.rsi, f.regs.rdx), (UOP + 2 * OP_SIZE, 1));
        assert_eq!(
            call(
                &mut f,
                Hypercall::GrantTableOp,
                [5, UOP, u64::from(u32::MAX), 0, 0]
            ),
            Err(XenError::Inval),
            "a negative count"
        );
        assert_eq!(
            call(
                &mut f,
                Hypercall::GrantTableOp,
                [5, 0x7000_0000_0000, 2, 0, 0]
            ),
            Err(XenError::Fault)
        );
    }

    proptest! {
        /// Whatever a guest asks, every frame and grant a copy claimed is released, and
        /// nothing outside the granted, writable destination changes.
        #[test]
        fn copies_release_everything_and_write_only_where_allowed(
            ops in proptest::collection::vec(
                (0u64..0x80, 0u16..4200, 0u16..4200, 0u16..4200, 0u16..4, 0u32..16, any::<bool>()),
                1..12,
            )
        ) {
            let mut f = fixture();
            grant(&mut f, FOREIGN_TABLE, 9, GtfFlags::PERMIT_ACCESS | GtfFlags::READONLY, 0, X);
            grant(&mut f, FOREIGN_TABLE, 10, GtfFlags::PERMIT_ACCESS, 0, Y);
            let ops: Vec<GnttabCopy> = ops
                .into_iter()
                .map(|(frame, so, d_off, len, flags, gref, other)| {
                    let dom = if other { OTHER } else { DomId::SELF };
                    let side = |off| GnttabCopyPtr {
                        u: if flags == 0 { frame } else { u64::from(gref) },
                        domid: dom.0,
                        offset: off,
                        ..Default::default()
                    };
                    op(side(so), side(d_off), len, flags)
                })
                .collect();
            let (r, _) = run(&mut f, &ops);
            prop_assert_eq!(r, Ok(0));
            assert_released(&mut f);
            for i in 0..4096 {
                prop_assert_eq!(f.host.byte(X, i), !(i as u8), "a read-only grant changed");
                prop_assert_eq!(f.host.byte(PT, i), 0, "a page table changed");
            }
        }
    }
}
