//! `grant_table_op`: a domain's own v1 grant table (`setup_table`, `query_size`,
//! `set_version`, `get_version`) and copies between granted frames (`copy`, in
//! [`super::grant_copy`]), in Xen's semantics: errors of an operation itself in its `status`
//! field with the call returning 0; mappings of granted frames (`map_grant_ref`,
//! `unmap_grant_ref`, `unmap_and_replace`, in [`super::grant_map`]). Transfers and version 2
//! are not offered: `-ENOSYS`.

use super::{Ctx, HcResult, Host};
use crate::pv::guest_mem::{GuestMemory, check_guest_range};
use guest_abi::grant_table::{
    GntStatus, GnttabGetVersion, GnttabOp, GnttabQuerySize, GnttabSetVersion, GnttabSetupTable,
};
use guest_abi::{DomId, XenError};

/// Most grant frames a domain may have (Xen's default `gnttab_max_frames`).
pub const MAX_GRANT_FRAMES: usize = 64;

/// The frames of a domain's grant table (shared hypervisor frames it may map writable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantFrames {
    frames: [u64; MAX_GRANT_FRAMES],
    nr: u32,
}

impl Default for GrantFrames {
    fn default() -> Self {
        Self {
            frames: [0; MAX_GRANT_FRAMES],
            nr: 0,
        }
    }
}

impl GrantFrames {
    /// The frames, in table order.
    pub fn frames(&self) -> &[u64] {
        &self.frames[..self.nr as usize]
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
            // Version 2 is not offered: Xen's answer when its maximum version is 1.
            let result = match v.version {
                1 => Ok(0),
                2 => Err(XenError::NoSys),
                _ => Err(XenError::Inval),
            };
            v.version = 1;
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
            v.version = 1;
            ctx.mem.write_obj(uop, &v)?;
            Ok(0)
        }
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
                let mut status = GntStatus::Okay;
                for (i, f) in frames.iter().take(n).enumerate() {
                    if ctx
                        .mem
                        .write_obj(op.frame_list.wrapping_add(8 * i as u64), f)
                        .is_err()
                    {
                        status = GntStatus::BadVirtAddr;
                        break;
                    }
                }
                status
            }
        },
    };
    op.status = status.raw() as i16;
    ctx.mem.write_obj(uop, &op)?;
    Ok(0)
}

/// Adds zeroed shared frames until the table has `n`.
fn grow<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, n: usize) -> Result<(), ()> {
    while (ctx.domain.grant_frames.nr as usize) < n {
        let mfn = ctx.host.alloc_shared_frame(ctx.domain.id).ok_or(())?;
        if !ctx.domain.grant_frames.push(mfn) {
            return Err(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fixture, call};
    use super::*;
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

    #[test]
    fn versions_and_size() {
        let mut f = Fixture::new();
        f.mem
            .write_obj(0x2000, &GnttabSetVersion { version: 2 })
            .unwrap();
        assert_eq!(
            call(&mut f, Hypercall::GrantTableOp, [8, 0x2000, 1, 0, 0]),
            Err(XenError::NoSys)
        );
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
