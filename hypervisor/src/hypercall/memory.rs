//! `memory_op`: the queries a PV guest makes about memory at boot. The sub-ops that move
//! frames in and out of a domain belong to the PV MMU and answer `-ENOSYS` until it has them.

use super::{Ctx, HcResult, Host};
use crate::pv::guest_mem::GuestMemory;
use guest_abi::arch::{MACH2PHYS_NR_ENTRIES, MACH2PHYS_VIRT_END, MACH2PHYS_VIRT_START};
use guest_abi::memory::{MemoryOp, XenMachphysMapping};
use guest_abi::{DomId, XenError};

/// The sub-op is in the low bits of `cmd`; the rest carries a continuation's progress.
const MEMOP_CMD_MASK: u64 = 0x3f;

/// Resolves a `domid_t` argument to the caller itself, or refuses it.
fn own_domain<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, arg: u64) -> Result<(), XenError> {
    let dom: u16 = ctx.mem.read_obj(arg)?;
    if dom == DomId::SELF.0 || dom == ctx.domain.id.0 {
        Ok(())
    } else if ctx.domain.privileged {
        // Other domains' reservations come with the toolstack.
        Err(XenError::Srch)
    } else {
        Err(XenError::Perm)
    }
}

pub fn memory_op<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, cmd: u64, arg: u64) -> HcResult {
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
        // No domain has a pseudo-physical memory map set by its toolstack; Xen answers a PV
        // guest without one with -ENOSYS, and Linux then assumes one RAM range.
        MemoryOp::MemoryMap => Err(XenError::NoSys),
        MemoryOp::IncreaseReservation
        | MemoryOp::DecreaseReservation
        | MemoryOp::PopulatePhysmap => ctx.host.mmu_hypercall(
            guest_abi::Hypercall::MemoryOp,
            &mut [cmd, arg, 0, 0, 0],
            false,
            ctx.vcpu,
            ctx.domain,
        ),
        _ => Err(XenError::NoSys),
    }
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
        f.domain.privileged = false;
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
}
