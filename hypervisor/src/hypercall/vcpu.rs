//! `vcpu_op`: the sub-ops a PV guest uses on its own vCPUs. Those that act on another vCPU
//! of the caller's domain (`VCPUOP_initialise`, `up`, `down`, another vCPU's runstate) or take
//! the caller down need the whole domain, and go to the machine (`MachineCall::VcpuOp`, carried
//! out by `kernel/vcpu_ops.rs`); the rest are answered here.

use super::{Ctx, HcResult, Host, MachineCall, machine};
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
    let vcpu = vcpuid as u32;
    let other = vcpu != ctx.vcpu_id;
    match op {
        VcpuOp::IsUp => Ok(u64::from(ctx.host.vcpu_is_up(vcpu).unwrap_or(false))),
        VcpuOp::Initialise | VcpuOp::Up | VcpuOp::Down => {
            machine(ctx, MachineCall::VcpuOp { cmd: op, vcpu, arg })
        }
        VcpuOp::GetRunstateInfo | VcpuOp::RegisterRunstateMemoryArea if other => {
            machine(ctx, MachineCall::VcpuOp { cmd: op, vcpu, arg })
        }
        VcpuOp::GetRunstateInfo => {
            let info = ctx.vcpu.runstate.snapshot(ctx.host.now_ns());
            ctx.mem.write_obj(arg, &info)?;
            Ok(0)
        }
        VcpuOp::RegisterRunstateMemoryArea => {
            let req: VcpuRegisterMemoryArea = ctx.mem.read_obj(arg)?;
            // Xen checks only that the area is guest memory; writes that fault later are
            // dropped. Address 0 stops the updates.
            check_guest_range(req.addr, size_of::<VcpuRunstateInfo>())?;
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

/// `VCPUOP_register_vcpu_info`, with Xen's checks in Xen's order: the structure must fit in
/// the page and be aligned (`-ENXIO`), the vCPU must not have registered before, and it must
/// be the caller or down (a guest places a vCPU's `vcpu_info` before bringing it up).
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
    let down = ctx.host.vcpu_is_up(vcpu) == Some(false);
    if ctx.host.shared().moved(VcpuId(vcpu)).is_some() || (vcpu != ctx.vcpu_id && !down) {
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
        // A vCPU the domain does not have.
        f.mem
            .write_obj(0x2000, &VcpuRegisterVcpuInfo::default())
            .unwrap();
        assert_eq!(
            call(&mut f, Hypercall::VcpuOp, [10, 1, 0x2000, 0, 0]),
            Err(XenError::NoEnt)
        );
    }

    /// A fixture whose domain has a second vCPU, down.
    fn two_vcpus() -> Fixture {
        use crate::sched::{CpuId, scheduler::vcpu};
        let mut f = Fixture::new();
        f.domain.nr_vcpus = 2;
        let v1 = vcpu(crate::event::abi::DomId(0), VcpuId(1));
        f.host.sched.add_vcpu(v1, CpuId(0), false).unwrap();
        f
    }

    #[test]
    fn is_up_tells_the_truth_and_a_down_vcpu_takes_a_vcpu_info() {
        let mut f = two_vcpus();
        assert_eq!(call(&mut f, Hypercall::VcpuOp, [3, 0, 0, 0, 0]), Ok(1));
        assert_eq!(call(&mut f, Hypercall::VcpuOp, [3, 1, 0, 0, 0]), Ok(0));
        let req = VcpuRegisterVcpuInfo {
            mfn: 5,
            offset: 64,
            rsvd: 0,
        };
        f.mem.write_obj(0x2000, &req).unwrap();
        assert_eq!(
            call(&mut f, Hypercall::VcpuOp, [10, 1, 0x2000, 0, 0]),
            Ok(0)
        );
        assert!(f.host.shared.moved(VcpuId(1)).is_some());
        // Once it is up, another vCPU may no longer move it (nor a second time).
        let v1 = crate::sched::scheduler::vcpu(crate::event::abi::DomId(0), VcpuId(1));
        f.host.sched.vcpu_up(v1).unwrap();
        assert_eq!(
            call(&mut f, Hypercall::VcpuOp, [10, 1, 0x2000, 0, 0]),
            Err(XenError::Inval)
        );
    }

    #[test]
    fn other_vcpus_and_going_down_are_the_machines() {
        use super::super::{Action, MachineCall};
        let mut f = two_vcpus();
        for (cmd, vcpu, op) in [
            (0, 1, VcpuOp::Initialise),
            (1, 1, VcpuOp::Up),
            (2, 0, VcpuOp::Down),
            (4, 1, VcpuOp::GetRunstateInfo),
            (5, 1, VcpuOp::RegisterRunstateMemoryArea),
        ] {
            let _ = call(&mut f, Hypercall::VcpuOp, [cmd, vcpu, 0x4000, 0, 0]);
            assert!(
                matches!(f.action, Action::Machine { call: MachineCall::VcpuOp { cmd: c, vcpu: v, arg: 0x4000 }, .. } if c == op && u64::from(v) == vcpu),
                "{op:?} on vCPU {vcpu}: {:?}",
                f.action
            );
        }
        assert_eq!(
            call(&mut f, Hypercall::VcpuOp, [0, 2, 0x4000, 0, 0]),
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
