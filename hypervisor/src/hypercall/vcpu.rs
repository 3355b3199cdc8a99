//! `vcpu_op`: the sub-ops a PV guest uses at boot on its own vCPUs.

use super::{Ctx, HcResult, Host};
use crate::pv::guest_mem::GuestMemory;
use guest_abi::XenError;
use guest_abi::vcpu::{Runstate, VcpuOp, VcpuRunstateInfo};

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
        VcpuOp::GetRunstateInfo => {
            let now = ctx.host.now_ns();
            let mut info = VcpuRunstateInfo {
                state: Runstate::Running.raw() as i32,
                state_entry_time: 0,
                ..VcpuRunstateInfo::default()
            };
            info.time[Runstate::Running.raw() as usize] = now;
            ctx.mem.write_obj(arg, &info)?;
            Ok(0)
        }
        VcpuOp::SetSingleshotTimer
        | VcpuOp::StopSingleshotTimer
        | VcpuOp::SetPeriodicTimer
        | VcpuOp::StopPeriodicTimer => super::event::vcpu_timer_op(ctx, op, vcpuid as u32, arg),
        _ => Err(XenError::NoSys),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fixture, call};
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
}
