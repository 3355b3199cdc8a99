//! `vcpu_op`: the sub-ops a PV guest uses at boot on its own vCPUs.

use super::{Ctx, HcResult, Host};
use crate::event::abi::VcpuId;
use crate::event::shared::VcpuInfo;
use crate::pv::guest_mem::{GuestMemory, check_guest_range};
use crate::pv::runstate::{self, RunstateArea};
use guest_abi::XenError;
use guest_abi::vcpu::{VcpuOp, VcpuRegisterMemoryArea, VcpuRegisterVcpuInfo, VcpuRunstateInfo};
use guest_abi::xen::VmAssistType;

pub fn vcpu_op<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    cmd: u64,
    vcpuid: u64,
    arg: u64,
) -> HcResult {
    let cmd = u32::try_from(cmd).map_err(|_| XenError::NoSys)?;
    let op = VcpuOp::try_from(cmd)?;
    if vcpuid >= u64::from(ctx.domain.nr_vcpus) {
        return Err(XenError::NoEnt);
    }
    match op {
        // Every vCPU of a running domain is up for now (no VCPUOP_down yet).
        VcpuOp::IsUp => Ok(1),
        // The runstate of another vCPU is not reachable from here yet (a domain runs one vCPU
        // at a time on one CPU); those requests are refused rather than answered wrongly.
        VcpuOp::GetRunstateInfo => {
            own_vcpu(ctx, vcpuid)?;
            let info = ctx.vcpu.runstate.snapshot(ctx.host.now_ns());
            ctx.mem.write_obj(arg, &info)?;
            Ok(0)
        }
        VcpuOp::RegisterRunstateMemoryArea => {
            let req: VcpuRegisterMemoryArea = ctx.mem.read_obj(arg)?;
            // Xen checks only that the area is guest memory; writes that fault later are
            // dropped. Address 0 stops the updates.
            check_guest_range(req.addr, size_of::<VcpuRunstateInfo>())?;
            own_vcpu(ctx, vcpuid)?;
            ctx.vcpu.runstate_area = RunstateArea {
                va: req.addr,
                stale: false,
            };
            if req.addr != 0 {
                let now = ctx.host.now_ns();
                let flag = ctx.domain.has_vm_assist(VmAssistType::RunstateUpdateFlag);
                let snapshot = ctx.vcpu.runstate.snapshot(now);
                let _ = runstate::write_area(ctx.mem, req.addr, &snapshot, flag);
            }
            Ok(0)
        }
        VcpuOp::RegisterVcpuInfo => {
            let req: VcpuRegisterVcpuInfo = ctx.mem.read_obj(arg)?;
            register_vcpu_info(ctx, vcpuid as u32, &req)
        }
        VcpuOp::SetSingleshotTimer
        | VcpuOp::StopSingleshotTimer
        | VcpuOp::SetPeriodicTimer
        | VcpuOp::StopPeriodicTimer => super::event::vcpu_timer_op(ctx, op, vcpuid as u32, arg),
        _ => Err(XenError::NoSys),
    }
}

/// Refuses sub-ops aimed at another vCPU of the caller's domain.
fn own_vcpu<M: GuestMemory, H: Host>(ctx: &Ctx<'_, M, H>, vcpuid: u64) -> Result<(), XenError> {
    if vcpuid == u64::from(ctx.vcpu_id) {
        Ok(())
    } else {
        Err(XenError::Inval)
    }
}

/// `VCPUOP_register_vcpu_info`, with Xen's checks in Xen's order: the structure must fit in
/// the page and be aligned (`-ENXIO`), the vCPU must not have registered before, and it must
/// be the caller (Xen also allows vCPUs that are down; none is here).
/// The frame must be the caller's and able to take a writable type; the machine keeps that
/// reference until the domain is destroyed.
fn register_vcpu_info<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    vcpu: u32,
    req: &VcpuRegisterVcpuInfo,
) -> HcResult {
    let size = size_of::<VcpuInfo>() as u32;
    if req.offset > 4096 - size || !req.offset.is_multiple_of(8) {
        return Err(XenError::NxIo);
    }
    if ctx.host.shared().moved(VcpuId(vcpu)).is_some() || vcpu != ctx.vcpu_id {
        return Err(XenError::Inval);
    }
    ctx.host.register_vcpu_info(vcpu, req.mfn, req.offset)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeHost, Fixture, call};
    use super::*;
    use guest_abi::Hypercall;

    #[test]
    fn is_up_for_existing_vcpus_only() {
        let mut f = Fixture::new();
        assert_eq!(call(&mut f, Hypercall::VcpuOp, [3, 0, 0, 0, 0]), Ok(1));
        assert_eq!(
            call(&mut f, Hypercall::VcpuOp, [3, 1, 0, 0, 0]),
            Err(XenError::NoEnt)
        );
        assert_eq!(
            call(&mut f, Hypercall::VcpuOp, [3, 8191, 0, 0, 0]),
            Err(XenError::NoEnt)
        );
        assert_eq!(call(&mut f, Hypercall::VcpuOp, [4, 0, 0x1000, 0, 0]), Ok(0));
        assert_eq!(
            call(&mut f, Hypercall::VcpuOp, [99, 0, 0, 0, 0]),
            Err(XenError::NoSys)
        );
    }

    fn register_info(f: &mut Fixture, mfn: u64, offset: u32) -> HcResult {
        let req = VcpuRegisterVcpuInfo {
            mfn,
            offset,
            rsvd: 0,
        };
        f.mem.write_obj(0x2000, &req).unwrap();
        call(f, Hypercall::VcpuOp, [10, 0, 0x2000, 0, 0])
    }

    #[test]
    fn vcpu_info_registration_is_checked_like_xen() {
        let mut f = Fixture::new();
        assert_eq!(register_info(&mut f, 5, 4096 - 63), Err(XenError::NxIo));
        assert_eq!(register_info(&mut f, 5, 4), Err(XenError::NxIo));
        assert_eq!(
            register_info(&mut f, FakeHost::BAD_MFN, 0),
            Err(XenError::Inval),
            "a frame that cannot take a writable type"
        );
        assert_eq!(register_info(&mut f, 5, 4096 - 64), Ok(0));
        assert!(f.host.shared.moved(VcpuId(0)).is_some());
        assert_eq!(
            register_info(&mut f, 6, 0),
            Err(XenError::Inval),
            "only once"
        );
        // Another vCPU's registration is refused (they are all up).
        f.mem
            .write_obj(0x2000, &VcpuRegisterVcpuInfo::default())
            .unwrap();
        assert_eq!(
            call(&mut f, Hypercall::VcpuOp, [10, 1, 0x2000, 0, 0]),
            Err(XenError::NoEnt)
        );
    }

    #[test]
    fn runstate_area_gets_the_record_and_bad_addresses_fault() {
        let mut f = Fixture::new();
        f.vcpu
            .runstate
            .change(guest_abi::vcpu::Runstate::Running, 10);
        f.mem.write_obj(0x3080, &0x3000u64).unwrap();
        f.host.now = 50;
        assert_eq!(call(&mut f, Hypercall::VcpuOp, [5, 0, 0x3080, 0, 0]), Ok(0));
        assert_eq!(f.vcpu.runstate_area.va, 0x3000);
        let r: VcpuRunstateInfo = f.mem.read_obj(0x3000).unwrap();
        assert_eq!((r.state, r.state_entry_time, r.time[0]), (0, 10, 40));
        // An unmapped area is accepted (writes to it are dropped); a hypervisor one is not.
        f.mem.write_obj(0x3080, &0x7000_0000u64).unwrap();
        assert_eq!(call(&mut f, Hypercall::VcpuOp, [5, 0, 0x3080, 0, 0]), Ok(0));
        f.mem
            .write_obj(0x3080, &crate::mm::layout::HYPERVISOR_VIRT_START)
            .unwrap();
        assert_eq!(
            call(&mut f, Hypercall::VcpuOp, [5, 0, 0x3080, 0, 0]),
            Err(XenError::Fault)
        );
        // get_runstate_info counts the running time up to now.
        f.host.now = 90;
        assert_eq!(call(&mut f, Hypercall::VcpuOp, [4, 0, 0x3000, 0, 0]), Ok(0));
        let r: VcpuRunstateInfo = f.mem.read_obj(0x3000).unwrap();
        assert_eq!(r.time[0], 80);
    }
}
