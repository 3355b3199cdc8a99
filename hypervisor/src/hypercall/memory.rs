//! `memory_op`: the queries a PV guest makes about memory at boot. The sub-ops that move
//! frames in and out of a domain belong to the PV MMU and answer `-ENOSYS` until it has them.

use super::machine_memory_map::machine_memory_map;
use super::{Ctx, HcResult, Host};
use crate::pv::guest_mem::GuestMemory;
use guest_abi::arch::{MACH2PHYS_NR_ENTRIES, MACH2PHYS_VIRT_END, MACH2PHYS_VIRT_START};
use guest_abi::memory::{
    MEMOP_CMD_MASK, MEMOP_EXTENT_SHIFT, MemoryOp, XenMachphysMapping, XenMachphysMfnList,
    XenMemoryMap,
};
use guest_abi::{DomId, XenError};

/// Resolves a `domid_t` argument to the caller itself, or refuses it.
fn own_domain<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, arg: u64) -> Result<(), XenError> {
    let dom: u16 = ctx.mem.read_obj(arg)?;
    if dom == DomId::SELF.0 || dom == ctx.domain.id.0 {
        Ok(())
    } else if ctx.domain.privilege.is_some() {
        // Other domains' reservations come with the toolstack.
        Err(XenError::Srch)
    } else {
        Err(XenError::Perm)
    }
}

/// `memory_op(cmd, arg)`; the reservation sub-ops may be continued, with `args` rewritten.
pub fn memory_op<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    args: &mut [u64; 5],
) -> HcResult {
    let [cmd, arg, ..] = *args;
    let op = MemoryOp::try_from((cmd & MEMOP_CMD_MASK) as u32)?;
    match op {
        MemoryOp::MaximumRamPage => Ok(ctx.host.max_mfn()),
        MemoryOp::CurrentReservation => {
            own_domain(ctx, arg)?;
            Ok(ctx.domain.tot_pages)
        }
        MemoryOp::MaximumReservation => {
            own_domain(ctx, arg)?;
            Ok(ctx.domain.max_pages)
        }
        MemoryOp::MachphysMapping => {
            let mapping = XenMachphysMapping {
                v_start: MACH2PHYS_VIRT_START,
                v_end: MACH2PHYS_VIRT_END,
                max_mfn: MACH2PHYS_NR_ENTRIES - 1,
            };
            ctx.mem.write_obj(arg, &mapping)?;
            Ok(0)
        }
        MemoryOp::MachphysMfnList => machphys_mfn_list(ctx, arg),
        // No domain has a pseudo-physical memory map set by its toolstack; Xen answers a PV
        // guest without one (dom0 included) with -ENOSYS once it has read the argument, and
        // Linux then assumes one RAM range.
        MemoryOp::MemoryMap => {
            let _: XenMemoryMap = ctx.mem.read_obj(arg)?;
            Err(XenError::NoSys)
        }
        MemoryOp::MachineMemoryMap => {
            let (e820, denied) = ctx.host.machine_memory();
            let hardware = ctx.domain.privilege.is_some();
            machine_memory_map(ctx.mem, arg, hardware, e820, &denied)
        }
        // Only the reservation sub-ops carry a continuation's progress in `cmd`.
        MemoryOp::Exchange if cmd >> MEMOP_EXTENT_SHIFT != 0 => Err(XenError::Inval),
        MemoryOp::IncreaseReservation
        | MemoryOp::DecreaseReservation
        | MemoryOp::PopulatePhysmap
        | MemoryOp::Exchange => {
            ctx.host
                .mmu_hypercall(guest_abi::Hypercall::MemoryOp, args, ctx.vcpu, ctx.domain)
        }
        _ => Err(XenError::NoSys),
    }
}

/// Frames in one extent of `XENMEM_machphys_mfn_list`: the M2P is listed in 2 MiB pieces.
const M2P_EXTENT_FRAMES: u64 = 512;

/// `XENMEM_machphys_mfn_list`: the first machine frame of each 2 MiB extent of the M2P table,
/// up to `max_extents`, with the count written back (Xen's order: every frame first, then the
/// header; a fault on either is `-EFAULT`).
fn machphys_mfn_list<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, arg: u64) -> HcResult {
    let mut list: XenMachphysMfnList = ctx.mem.read_obj(arg)?;
    let (first, frames) = ctx.host.m2p_frames();
    let extents = frames
        .div_ceil(M2P_EXTENT_FRAMES)
        .min(u64::from(list.max_extents));
    for i in 0..extents {
        let mfn = first + i * M2P_EXTENT_FRAMES;
        ctx.mem
            .write_obj(list.extent_start.wrapping_add(8 * i), &mfn)?;
    }
    list.nr_extents = extents as u32;
    ctx.mem.write_obj(arg, &list)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fixture, call};
    use super::*;
    use guest_abi::Hypercall;

    #[test]
    fn reservations_and_limits() {
        let mut f = Fixture::new();
        f.mem.write_bytes(0x1000, &DomId::SELF.0.to_le_bytes());
        assert_eq!(
            call(&mut f, Hypercall::MemoryOp, [3, 0x1000, 0, 0, 0]),
            Ok(1024)
        );
        assert_eq!(
            call(&mut f, Hypercall::MemoryOp, [4, 0x1000, 0, 0, 0]),
            Ok(2048)
        );
        f.mem.write_bytes(0x1000, &5u16.to_le_bytes());
        f.domain.privilege = None;
        assert_eq!(
            call(&mut f, Hypercall::MemoryOp, [3, 0x1000, 0, 0, 0]),
            Err(XenError::Perm)
        );
        assert_eq!(
            call(&mut f, Hypercall::MemoryOp, [2, 0, 0, 0, 0]),
            Ok(0x1_0000)
        );
        assert_eq!(
            call(&mut f, Hypercall::MemoryOp, [0x3f, 0, 0, 0, 0]),
            Err(XenError::NoSys)
        );
    }

    #[test]
    fn memory_map_is_not_set() {
        let mut f = Fixture::new();
        assert_eq!(
            call(&mut f, Hypercall::MemoryOp, [9, 0x1000, 0, 0, 0]),
            Err(XenError::NoSys)
        );
    }

    #[test]
    fn machphys_mapping_is_xens() {
        let mut f = Fixture::new();
        assert_eq!(
            call(&mut f, Hypercall::MemoryOp, [12, 0x1000, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(
            f.mem.read_bytes(0x1000, 8),
            MACH2PHYS_VIRT_START.to_le_bytes()
        );
    }

    #[test]
    fn machphys_mfn_list_names_each_2mib_extent() {
        let mut f = Fixture::new();
        // The fake M2P is 0x300 frames from 0x400: two extents.
        let list = XenMachphysMfnList {
            max_extents: 8,
            extent_start: 0x3000,
            ..XenMachphysMfnList::default()
        };
        f.mem.write_obj(0x2000, &list).unwrap();
        assert_eq!(
            call(&mut f, Hypercall::MemoryOp, [5, 0x2000, 0, 0, 0]),
            Ok(0)
        );
        let back: XenMachphysMfnList = f.mem.read_obj(0x2000).unwrap();
        assert_eq!(back.nr_extents, 2);
        let mfns: [u64; 2] = f.mem.read_obj(0x3000).unwrap();
        assert_eq!(mfns, [0x400, 0x600]);
        // Room for one: one is written.
        f.mem
            .write_obj(
                0x2000,
                &XenMachphysMfnList {
                    max_extents: 1,
                    ..list
                },
            )
            .unwrap();
        assert_eq!(
            call(&mut f, Hypercall::MemoryOp, [5, 0x2000, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(
            f.mem
                .read_obj::<XenMachphysMfnList>(0x2000)
                .unwrap()
                .nr_extents,
            1
        );
        // An array the guest cannot write faults.
        f.mem
            .write_obj(
                0x2000,
                &XenMachphysMfnList {
                    extent_start: 0x7000_0000,
                    ..list
                },
            )
            .unwrap();
        assert_eq!(
            call(&mut f, Hypercall::MemoryOp, [5, 0x2000, 0, 0, 0]),
            Err(XenError::Fault)
        );
    }
}
