//! `sched_op`: yield, block and shutdown. The scheduler acts on the recorded action after
//! the call returns.

use super::{Action, Ctx, HcResult, Host};
use crate::pv::guest_mem::GuestMemory;
use guest_abi::XenError;
use guest_abi::sched::{SchedOp, SchedShutdown, ShutdownReason};

pub fn sched_op<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, cmd: u64, arg: u64) -> HcResult {
    let cmd = u32::try_from(cmd).map_err(|_| XenError::NoSys)?;
    match SchedOp::try_from(cmd)? {
        SchedOp::Yield => super::event::yield_now(ctx),
        SchedOp::Block => super::event::block(ctx),
        SchedOp::Poll => super::event::poll(ctx, arg),
        SchedOp::Shutdown => {
            let s: SchedShutdown = ctx.mem.read_obj(arg)?;
            let reason = ShutdownReason::from_raw(s.reason).ok_or(XenError::Inval)?;
            ctx.action = Action::Shutdown(reason);
            Ok(0)
        }
        _ => Err(XenError::NoSys),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fixture, call};
    use super::*;
    use guest_abi::Hypercall;

    #[test]
    fn shutdown_records_the_reason() {
        let mut f = Fixture::new();
        f.mem.write_bytes(0x1000, &3u32.to_le_bytes());
        assert_eq!(
            call(&mut f, Hypercall::SchedOp, [2, 0x1000, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(f.action, Action::Shutdown(ShutdownReason::Crash));
        f.mem.write_bytes(0x1000, &77u32.to_le_bytes());
        assert_eq!(
            call(&mut f, Hypercall::SchedOp, [2, 0x1000, 0, 0, 0]),
            Err(XenError::Inval)
        );
        assert_eq!(
            call(&mut f, Hypercall::SchedOp, [2, 0, 0, 0, 0]),
            Err(XenError::Fault)
        );
    }

    #[test]
    fn block_unmasks_events_and_yield_yields() {
        use core::sync::atomic::Ordering;
        let mut f = Fixture::new();
        f.host.shared.page().vcpu_info[0]
            .evtchn_upcall_mask
            .store(1, Ordering::SeqCst);
        assert_eq!(call(&mut f, Hypercall::SchedOp, [1, 0, 0, 0, 0]), Ok(0));
        assert_eq!(f.action, Action::Block);
        assert_eq!(
            f.host.shared.page().vcpu_info[0]
                .evtchn_upcall_mask
                .load(Ordering::SeqCst),
            0
        );
        // With an event already pending, block returns at once.
        f.host.shared.page().vcpu_info[0]
            .evtchn_upcall_pending
            .store(1, Ordering::SeqCst);
        f.action = Action::Resume;
        assert_eq!(call(&mut f, Hypercall::SchedOp, [1, 0, 0, 0, 0]), Ok(0));
        assert_eq!(f.action, Action::Resume);
        assert_eq!(call(&mut f, Hypercall::SchedOp, [0, 0, 0, 0, 0]), Ok(0));
        assert_eq!(f.action, Action::Yield);
        assert_eq!(
            call(&mut f, Hypercall::SchedOp, [42, 0, 0, 0, 0]),
            Err(XenError::NoSys)
        );
    }
}
