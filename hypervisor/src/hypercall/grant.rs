//! `grant_table_op`: a domain's own grant table, version 1 or 2 (`setup_table`, `query_size`,
//! `set_version`, `get_version`, `get_status_frames`; the entries' layout in
//! [`super::grant_entry`]), copies between granted frames (`copy`, in [`super::grant_copy`])
//! and mappings of granted frames (`map_grant_ref`, `unmap_grant_ref`, `unmap_and_replace`, in
//! [`super::grant_map`]), in Xen's semantics: errors of an operation itself in its `status`
//! field with the call returning 0. Transfers, transitive grants and `swap_grant_ref` are not
//! offered (`-ENOSYS`, `general_error`).

use super::grant_entry::{locate, status_frames_for};
use super::{Ctx, HcResult, Host};
use crate::pv::guest_mem::{GuestMemory, check_guest_range};
use core::sync::atomic::Ordering;
use guest_abi::grant_table::{
    GNTTAB_NR_RESERVED_ENTRIES, GntStatus, GnttabGetStatusFrames, GnttabGetVersion, GnttabOp,
    GnttabQuerySize, GnttabSetVersion, GnttabSetupTable, GtfFlags,
};
use guest_abi::{DomId, PAGE_SIZE, XenError};

/// Most grant frames a domain may have (Xen's default `gnttab_max_frames`).
pub const MAX_GRANT_FRAMES: usize = 64;

/// Most status frames (version 2) a domain may have: enough for [`MAX_GRANT_FRAMES`].
pub const MAX_STATUS_FRAMES: usize = super::grant_entry::status_frames_for(MAX_GRANT_FRAMES);

/// A domain's grant table: its version and frames (shared hypervisor frames it may map
/// writable) and, in version 2, its status frames (mapped read-only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantFrames {
    frames: [u64; MAX_GRANT_FRAMES],
    nr: u32,
    status: [u64; MAX_STATUS_FRAMES],
    nr_status: u32,
    version: u32,
    /// The highest version the domain may switch to (its `createdomain` `grant_opts`).
    max_version: u32,
}

impl Default for GrantFrames {
    fn default() -> Self {
        Self {
            frames: [0; MAX_GRANT_FRAMES],
            nr: 0,
            status: [0; MAX_STATUS_FRAMES],
            nr_status: 0,
            version: 1,
            max_version: 2,
        }
    }
}

impl GrantFrames {
    /// An empty version-1 table of a domain that may switch to version `max_version` at most.
    pub fn with_max_version(max_version: u32) -> Self {
        Self {
            max_version,
            ..Self::default()
        }
    }

    /// The frames, in table order.
    pub fn frames(&self) -> &[u64] {
        &self.frames[..self.nr as usize]
    }

    /// The status frames (version 2), in order.
    pub fn status_frames(&self) -> &[u64] {
        &self.status[..self.nr_status as usize]
    }

    /// The table's version (1 or 2).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Adds a frame at the end; false when the table is at its largest.
    pub fn push(&mut self, frame: u64) -> bool {
        let Some(slot) = self.frames.get_mut(self.nr as usize) else {
            return false;
        };
        *slot = frame;
        self.nr += 1;
        true
    }

    /// Adds a status frame at the end; false when there are enough for the largest table.
    pub fn push_status(&mut self, frame: u64) -> bool {
        let Some(slot) = self.status.get_mut(self.nr_status as usize) else {
            return false;
        };
        *slot = frame;
        self.nr_status += 1;
        true
    }

    /// Every frame the table holds, table and status frames (to give back when it goes).
    pub fn all_frames(&self) -> impl Iterator<Item = u64> + '_ {
        self.frames().iter().chain(self.status_frames()).copied()
    }
}

/// `grant_table_op(cmd, uop, count)`; `args` are rewritten when a batch is continued.
pub fn grant_table_op<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    args: &mut [u64; 5],
) -> HcResult {
    let [cmd, uop, count, ..] = *args;
    let cmd = u32::try_from(cmd).map_err(|_| XenError::NoSys)?;
    let op = GnttabOp::try_from(cmd)?;
    // Xen takes the count as a signed int.
    if count as u32 > i32::MAX as u32 {
        return Err(XenError::Inval);
    }
    match op {
        GnttabOp::Copy => super::grant_copy::copy(ctx, args),
        GnttabOp::MapGrantRef => super::grant_map::map(ctx, args),
        GnttabOp::UnmapGrantRef => super::grant_map::unmap(ctx, args),
        GnttabOp::UnmapAndReplace => super::grant_map::unmap_and_replace(ctx, args),
        GnttabOp::SetupTable
        | GnttabOp::QuerySize
        | GnttabOp::SetVersion
        | GnttabOp::GetVersion
            if count != 1 =>
        {
            Err(XenError::Inval)
        }
        GnttabOp::SetupTable => setup_table(ctx, uop),
        GnttabOp::QuerySize => {
            let mut q: GnttabQuerySize = ctx.mem.read_obj(uop)?;
            q.status = match own(ctx, q.dom) {
                Ok(()) => {
                    q.nr_frames = ctx.domain.grant_frames.nr;
                    q.max_nr_frames = MAX_GRANT_FRAMES as u32;
                    GntStatus::Okay.raw() as i16
                }
                Err(s) => s.raw() as i16,
            };
            ctx.mem.write_obj(uop, &q)?;
            Ok(0)
        }
        GnttabOp::SetVersion => {
            let mut v: GnttabSetVersion = ctx.mem.read_obj(uop)?;
            let result = set_version(ctx, v.version);
            v.version = ctx.domain.grant_frames.version;
            ctx.mem.write_obj(uop, &v)?;
            result
        }
        GnttabOp::GetVersion => {
            let mut v: GnttabGetVersion = ctx.mem.read_obj(uop)?;
            if v.dom != DomId::SELF.0 && v.dom != ctx.domain.id.0 {
                return Err(if ctx.domain.privilege.is_some() {
                    XenError::Srch
                } else {
                    XenError::Perm
                });
            }
            v.version = ctx.domain.grant_frames.version;
            ctx.mem.write_obj(uop, &v)?;
            Ok(0)
        }
        GnttabOp::GetStatusFrames if count != 1 => Err(XenError::Inval),
        GnttabOp::GetStatusFrames => get_status_frames(ctx, uop),
        _ => Err(XenError::NoSys),
    }
}

/// The caller's own table, or the status that refuses another domain's (a privileged domain
/// may name others in Xen; here only its own table is reachable).
fn own<M: GuestMemory, H: Host>(ctx: &Ctx<'_, M, H>, dom: u16) -> Result<(), GntStatus> {
    if dom == DomId::SELF.0 || dom == ctx.domain.id.0 {
        Ok(())
    } else if ctx.domain.privilege.is_some() {
        Err(GntStatus::BadDomain)
    } else {
        Err(GntStatus::PermissionDenied)
    }
}

/// `GNTTABOP_setup_table`: grows the table to `nr_frames` and lists its frames.
fn setup_table<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, uop: u64) -> HcResult {
    let mut op: GnttabSetupTable = ctx.mem.read_obj(uop)?;
    let n = op.nr_frames as usize;
    check_guest_range(op.frame_list, n.saturating_mul(8))?;
    let status = match own(ctx, op.dom) {
        Err(s) => s,
        Ok(()) if n > MAX_GRANT_FRAMES => GntStatus::GeneralError,
        Ok(()) => match grow(ctx, n) {
            Err(()) => GntStatus::GeneralError,
            Ok(()) => {
                let frames = ctx.domain.grant_frames.frames;
                list_frames(ctx.mem, op.frame_list, &frames[..n])
            }
        },
    };
    op.status = status.raw() as i16;
    ctx.mem.write_obj(uop, &op)?;
    Ok(0)
}

/// Writes `frames` to the guest's list at `list`; `bad_virt_addr` at the first that faults.
fn list_frames<M: GuestMemory>(mem: &mut M, list: u64, frames: &[u64]) -> GntStatus {
    for (i, f) in frames.iter().enumerate() {
        if mem.write_obj(list.wrapping_add(8 * i as u64), f).is_err() {
            return GntStatus::BadVirtAddr;
        }
    }
    GntStatus::Okay
}

/// Adds zeroed shared frames until the table has `n` (and, in version 2, the status frames
/// they need).
fn grow<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, n: usize) -> Result<(), ()> {
    while (ctx.domain.grant_frames.nr as usize) < n {
        let mfn = ctx.host.alloc_shared_frame(ctx.domain.id).ok_or(())?;
        if !ctx.domain.grant_frames.push(mfn) {
            return Err(());
        }
    }
    if ctx.domain.grant_frames.version == 2 {
        populate_status(ctx)?;
    }
    Ok(())
}

/// Adds the status frames the table's size needs.
fn populate_status<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>) -> Result<(), ()> {
    let need = status_frames_for(ctx.domain.grant_frames.nr as usize);
    while (ctx.domain.grant_frames.nr_status as usize) < need {
        let mfn = ctx.host.alloc_shared_frame(ctx.domain.id).ok_or(())?;
        if !ctx.domain.grant_frames.push_status(mfn) {
            return Err(());
        }
    }
    Ok(())
}

/// A reserved entry (the toolstack's console and store grants) in version-1 form, kept across
/// a version change.
#[derive(Clone, Copy, Default)]
struct Reserved {
    flags: u16,
    domid: u16,
    frame: u64,
}

/// `GNTTABOP_set_version`, as Xen 4.17: `-ENOSYS` beyond the domain's maximum version (its
/// `createdomain` `grant_opts`; dom0's is 2); the table must not be in use beyond its reserved
/// entries (`EBUSY`); going to version 2 adds the status frames, going back to 1 gives them up
/// (`EBUSY` while the guest still maps one) and needs the reserved entries' frames to fit in
/// 32 bits (`ERANGE`); every entry is cleared except the reserved ones, which are converted.
fn set_version<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, version: u32) -> HcResult {
    if version != 1 && version != 2 {
        return Err(XenError::Inval);
    }
    // Xen's answer when the domain's maximum is 1: as before set_version existed.
    if version > ctx.domain.grant_frames.max_version {
        return Err(XenError::NoSys);
    }
    let old = ctx.domain.grant_frames.version;
    if old == version {
        return Ok(0);
    }
    if ctx
        .domain
        .grant_active
        .in_use_beyond(GNTTAB_NR_RESERVED_ENTRIES)
    {
        return Err(XenError::Busy);
    }
    let mut reserved = [Reserved::default(); GNTTAB_NR_RESERVED_ENTRIES as usize];
    for (gref, r) in reserved.iter_mut().enumerate() {
        let frames = &ctx.domain.grant_frames;
        let host = &mut *ctx.host;
        let Ok(e) = locate(frames, gref as u32, |f, o| host.grant_word(f, o)) else {
            continue;
        };
        *r = Reserved {
            flags: e.flags() | e.in_use_bits(),
            domid: e.domid(),
            frame: e.frame(),
        };
        let permit = GtfFlags::from_bits_retain(r.flags) & GtfFlags::TYPE_MASK;
        if old == 2
            && permit != GtfFlags::empty()
            && (permit != GtfFlags::PERMIT_ACCESS || r.frame >> 32 != 0)
        {
            return Err(XenError::Range);
        }
        if old == 2 && permit != GtfFlags::PERMIT_ACCESS {
            *r = Reserved::default();
        }
    }
    if version == 2 {
        populate_status(ctx).map_err(|()| XenError::NoMem)?;
    } else {
        let status: alloc::vec::Vec<u64> = ctx.domain.grant_frames.status_frames().to_vec();
        // Given back only if the guest no longer maps them.
        if status.iter().any(|&f| !ctx.host.shared_frame_unused(f)) {
            return Err(XenError::Busy);
        }
        for f in status {
            ctx.host.free_shared_frame(f);
        }
        ctx.domain.grant_frames.nr_status = 0;
    }
    ctx.domain.grant_frames.version = version;
    let frames: alloc::vec::Vec<u64> = ctx.domain.grant_frames.all_frames().collect();
    for f in frames {
        for offset in (0..PAGE_SIZE as usize).step_by(4) {
            if let Some(w) = ctx.host.grant_word(f, offset) {
                w.store(0, Ordering::SeqCst);
            }
        }
    }
    for (gref, r) in reserved.iter().enumerate() {
        let frames = &ctx.domain.grant_frames;
        let host = &mut *ctx.host;
        if let Ok(e) = locate(frames, gref as u32, |f, o| host.grant_word(f, o)) {
            e.restore(r.flags, r.domid, r.frame);
        }
    }
    Ok(0)
}

/// `GNTTABOP_get_status_frames`: lists the status frames of a version-2 table.
fn get_status_frames<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, uop: u64) -> HcResult {
    let mut op: GnttabGetStatusFrames = ctx.mem.read_obj(uop)?;
    let n = op.nr_frames as usize;
    check_guest_range(op.frame_list, n.saturating_mul(8))?;
    let status = match own(ctx, op.dom) {
        Err(s) => s,
        Ok(()) if n > ctx.domain.grant_frames.nr_status as usize => GntStatus::GeneralError,
        Ok(()) => {
            let frames = ctx.domain.grant_frames.status;
            list_frames(ctx.mem, op.frame_list, &frames[..n])
        }
    };
    op.status = status.raw() as i16;
    ctx.mem.write_obj(uop, &op)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fixture, call};
    use super::*;
    use core::sync::atomic::Ordering;
    use guest_abi::Hypercall;

    fn setup(f: &mut Fixture, dom: u16, nr_frames: u32, list: u64) -> (HcResult, i16) {
        let op = GnttabSetupTable {
            dom,
            nr_frames,
            frame_list: list,
            ..Default::default()
        };
        f.mem.write_obj(0x2000, &op).unwrap();
        let r = call(f, Hypercall::GrantTableOp, [2, 0x2000, 1, 0, 0]);
        let back: GnttabSetupTable = f.mem.read_obj(0x2000).unwrap();
        (r, back.status)
    }

    #[test]
    fn setup_table_grows_and_lists_the_frames() {
        let mut f = Fixture::new();
        assert_eq!(setup(&mut f, DomId::SELF.0, 2, 0x3000), (Ok(0), 0));
        let listed: [u64; 2] = f.mem.read_obj(0x3000).unwrap();
        assert_eq!(listed.to_vec(), f.domain.grant_frames.frames().to_vec());
        assert!(listed[0] != 0 && listed[0] != listed[1]);
        // Asking again for fewer reuses them; the table never shrinks.
        assert_eq!(setup(&mut f, 0, 1, 0x3000), (Ok(0), 0));
        assert_eq!(f.domain.grant_frames.frames().len(), 2);
        assert_eq!(f.mem.read_obj::<u64>(0x3000).unwrap(), listed[0]);
    }

    #[test]
    fn setup_table_errors_are_statuses() {
        let mut f = Fixture::new();
        let s = |g: GntStatus| g.raw() as i16;
        assert_eq!(
            setup(&mut f, 0, MAX_GRANT_FRAMES as u32 + 1, 0x3000),
            (Ok(0), s(GntStatus::GeneralError))
        );
        assert_eq!(
            setup(&mut f, 7, 1, 0x3000),
            (Ok(0), s(GntStatus::BadDomain))
        );
        f.domain.privilege = None;
        assert_eq!(
            setup(&mut f, 7, 1, 0x3000),
            (Ok(0), s(GntStatus::PermissionDenied))
        );
        assert_eq!(
            setup(&mut f, 0, 1, 0x7000_0000),
            (Ok(0), s(GntStatus::BadVirtAddr))
        );
        assert_eq!(
            setup(&mut f, 0, 1, crate::mm::layout::HYPERVISOR_VIRT_START).0,
            Err(XenError::Fault)
        );
        // Two operations in one call: Xen refuses the call.
        assert_eq!(
            call(&mut f, Hypercall::GrantTableOp, [2, 0x2000, 2, 0, 0]),
            Err(XenError::Inval)
        );
        assert_eq!(
            call(&mut f, Hypercall::GrantTableOp, [4, 0x2000, 1, 0, 0]),
            Err(XenError::NoSys),
            "transfer is not offered"
        );
    }

    fn set_version(f: &mut Fixture, version: u32) -> (HcResult, u32) {
        f.mem
            .write_obj(0x2000, &GnttabSetVersion { version })
            .unwrap();
        let r = call(f, Hypercall::GrantTableOp, [8, 0x2000, 1, 0, 0]);
        (
            r,
            f.mem.read_obj::<GnttabSetVersion>(0x2000).unwrap().version,
        )
    }

    fn status_frames(f: &mut Fixture, nr_frames: u32) -> (HcResult, i16, u64) {
        let op = GnttabGetStatusFrames {
            nr_frames,
            dom: DomId::SELF.0,
            frame_list: 0x3000,
            ..Default::default()
        };
        f.mem.write_obj(0x2000, &op).unwrap();
        let r = call(f, Hypercall::GrantTableOp, [9, 0x2000, 1, 0, 0]);
        let back: GnttabGetStatusFrames = f.mem.read_obj(0x2000).unwrap();
        (r, back.status, f.mem.read_obj(0x3000).unwrap())
    }

    #[test]
    fn version_2_adds_status_frames_and_keeps_the_reserved_entries() {
        let mut f = Fixture::new();
        assert_eq!(setup(&mut f, 0, 9, 0x3000), (Ok(0), 0));
        let t0 = f.domain.grant_frames.frames()[0];
        // Reserved entry 1 (the store's) in v1 form, entry 9 beyond the reserved ones.
        f.host.frame(t0)[2].store(1 | 5 << 16, Ordering::SeqCst);
        f.host.frame(t0)[3].store(0x1234, Ordering::SeqCst);
        f.host.frame(t0)[18].store(1 | 5 << 16, Ordering::SeqCst);
        assert_eq!(set_version(&mut f, 3), (Err(XenError::Inval), 1));
        assert_eq!(
            status_frames(&mut f, 1).1,
            GntStatus::GeneralError.raw() as i16
        );
        assert_eq!(set_version(&mut f, 2), (Ok(0), 2));
        // Nine table frames hold 2,304 v2 entries: two status frames.
        assert_eq!(f.domain.grant_frames.status_frames().len(), 2);
        let (r, status, first) = status_frames(&mut f, 2);
        assert_eq!(
            (r, status, first),
            (Ok(0), 0, f.domain.grant_frames.status_frames()[0])
        );
        assert_eq!(
            status_frames(&mut f, 3).1,
            GntStatus::GeneralError.raw() as i16
        );
        // Entry 1 now at byte 16: header, then the frame at +8; entry 9 cleared.
        let w = |f: &mut Fixture, i: usize| f.host.frame(t0)[i].load(Ordering::SeqCst);
        assert_eq!(
            (w(&mut f, 4), w(&mut f, 6), w(&mut f, 7)),
            (1 | 5 << 16, 0x1234, 0)
        );
        assert_eq!(w(&mut f, 36), 0);
        // A status frame the guest maps cannot be given back.
        f.host.mapped_shared.push(first);
        assert_eq!(set_version(&mut f, 1), (Err(XenError::Busy), 2));
        f.host.mapped_shared.clear();
        assert_eq!(set_version(&mut f, 1), (Ok(0), 1));
        assert_eq!(f.host.freed_shared.len(), 2);
        assert_eq!((w(&mut f, 2), w(&mut f, 3)), (1 | 5 << 16, 0x1234));
    }

    #[test]
    fn a_domain_made_for_version_1_cannot_switch() {
        let mut f = Fixture::new();
        f.domain.grant_frames = GrantFrames::with_max_version(1);
        assert_eq!(set_version(&mut f, 2), (Err(XenError::NoSys), 1));
        assert_eq!(set_version(&mut f, 1), (Ok(0), 1));
    }

    #[test]
    fn versions_and_size() {
        let mut f = Fixture::new();
        f.mem
            .write_obj(0x2000, &GnttabSetVersion { version: 1 })
            .unwrap();
        assert_eq!(
            call(&mut f, Hypercall::GrantTableOp, [8, 0x2000, 1, 0, 0]),
            Ok(0)
        );
        let _ = setup(&mut f, 0, 3, 0x3000);
        let q = GnttabQuerySize {
            dom: DomId::SELF.0,
            ..Default::default()
        };
        f.mem.write_obj(0x2000, &q).unwrap();
        assert_eq!(
            call(&mut f, Hypercall::GrantTableOp, [6, 0x2000, 1, 0, 0]),
            Ok(0)
        );
        let q: GnttabQuerySize = f.mem.read_obj(0x2000).unwrap();
        assert_eq!((q.nr_frames, q.max_nr_frames, q.status), (3, 64, 0));
        let v = GnttabGetVersion {
            dom: DomId::SELF.0,
            ..Default::default()
        };
        f.mem.write_obj(0x2000, &v).unwrap();
        assert_eq!(
            call(&mut f, Hypercall::GrantTableOp, [10, 0x2000, 1, 0, 0]),
            Ok(0)
        );
        assert_eq!(
            f.mem.read_obj::<GnttabGetVersion>(0x2000).unwrap().version,
            1
        );
    }
}
