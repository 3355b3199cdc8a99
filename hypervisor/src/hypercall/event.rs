//! `event_channel_op`, the event and timer parts of `sched_op` and `vcpu_op`, and
//! `set_timer_op`: argument copying and errno mapping around the pure event-channel,
//! scheduler and timer logic (`crate::event`, `crate::sched`).

use super::{Action, Ctx, HcResult, Host};
use crate::event::abi::{self as eabi, EvtchnPort};
use crate::event::evtchn_ops::{self as evops, Caller, Wake};
use crate::pv::guest_mem::GuestMemory;
use crate::sched::blocking::{Blocking, MAX_POLL_PORTS};
use crate::sched::scheduler::vcpu as vcpu_ref;
use crate::sched::{Scheduler, TimerQueue, VcpuRef, timer};
use guest_abi::XenError;
use guest_abi::event_channel::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu, EvtchnBindVirq,
    EvtchnOp, EvtchnPortArg, EvtchnStatus,
};
use guest_abi::sched::SchedPoll;
use guest_abi::vcpu::{VcpuSetPeriodicTimer, VcpuSetSingleshotTimer};

/// Most vCPUs the scheduler tracks, machine-wide.
pub const MAX_SCHED_VCPUS: usize = 64;
/// Most armed timers, machine-wide.
pub const MAX_TIMERS: usize = 256;
/// The scheduler of this machine (one physical CPU).
pub type Sched = Scheduler<MAX_SCHED_VCPUS, 1>;
/// The timer queue of this machine's CPU.
pub type Timers = TimerQueue<MAX_TIMERS>;

/// The machine-wide event and scheduling state a handler may touch.
pub struct World<'a, D> {
    /// Every domain's event channels and shared_info.
    pub doms: &'a mut D,
    /// The scheduler.
    pub sched: &'a mut Sched,
    /// The CPU's timers.
    pub timers: &'a mut Timers,
}

impl<D> World<'_, D> {
    fn wake(&mut self, wake: Wake) {
        let _ = self.sched.wake_all(wake);
    }
}

fn me<M: GuestMemory, H: Host>(ctx: &Ctx<'_, M, H>) -> (Caller, VcpuRef) {
    let dom = ctx.domain.id;
    (
        Caller {
            domain: dom,
            privilege: ctx.domain.privilege,
        },
        vcpu_ref(dom, eabi::VcpuId(ctx.vcpu_id)),
    )
}

pub fn event_channel_op<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    cmd: u64,
    arg: u64,
) -> HcResult {
    let cmd = u32::try_from(cmd).map_err(|_| XenError::NoSys)?;
    let op = EvtchnOp::try_from(cmd)?;
    let (caller, _) = me(ctx);
    let e = |err: crate::event::error::EvtchnError| err.errno();
    match op {
        EvtchnOp::AllocUnbound => {
            let mut a: EvtchnAllocUnbound = ctx.mem.read_obj(arg)?;
            let w = ctx.host.world();
            let port = evops::alloc_unbound(
                w.doms,
                caller,
                eabi::DomId(a.dom),
                eabi::DomId(a.remote_dom),
            )
            .map_err(e)?;
            a.port = port.0;
            ctx.mem.write_obj(arg, &a)?;
        }
        EvtchnOp::BindInterdomain => {
            let mut a: EvtchnBindInterdomain = ctx.mem.read_obj(arg)?;
            let mut w = ctx.host.world();
            let (port, wake) = evops::bind_interdomain(
                w.doms,
                caller,
                eabi::DomId(a.remote_dom),
                EvtchnPort(a.remote_port),
            )
            .map_err(e)?;
            w.wake(wake);
            a.local_port = port.0;
            ctx.mem.write_obj(arg, &a)?;
        }
        EvtchnOp::BindVirq => {
            let mut a: EvtchnBindVirq = ctx.mem.read_obj(arg)?;
            let w = ctx.host.world();
            let port = evops::bind_virq(w.doms, caller, a.virq, eabi::VcpuId(a.vcpu)).map_err(e)?;
            a.port = port.0;
            ctx.mem.write_obj(arg, &a)?;
        }
        EvtchnOp::BindIpi => {
            let mut a: EvtchnBindIpi = ctx.mem.read_obj(arg)?;
            let w = ctx.host.world();
            let port = evops::bind_ipi(w.doms, caller, eabi::VcpuId(a.vcpu)).map_err(e)?;
            a.port = port.0;
            ctx.mem.write_obj(arg, &a)?;
        }
        EvtchnOp::BindPirq => return Err(XenError::Perm),
        EvtchnOp::Close => {
            let a: EvtchnPortArg = ctx.mem.read_obj(arg)?;
            evops::close(ctx.host.world().doms, caller, EvtchnPort(a.port)).map_err(e)?;
        }
        EvtchnOp::Send => {
            let a: EvtchnPortArg = ctx.mem.read_obj(arg)?;
            let mut w = ctx.host.world();
            let wake = evops::send(w.doms, caller, EvtchnPort(a.port)).map_err(e)?;
            w.wake(wake);
        }
        EvtchnOp::Status => {
            let mut a: EvtchnStatus = ctx.mem.read_obj(arg)?;
            let st = evops::status(
                ctx.host.world().doms,
                caller,
                eabi::DomId(a.dom),
                EvtchnPort(a.port),
            )
            .map_err(e)?;
            a.status = st.state.code();
            a.vcpu = st.vcpu.0;
            a.u = match st.state {
                evops::StatusState::Unbound { dom } => [u32::from(dom.0), 0],
                evops::StatusState::Interdomain { dom, port } => [u32::from(dom.0), port.0],
                evops::StatusState::Pirq(p) => [p, 0],
                evops::StatusState::Virq(v) => [v.number(), 0],
                evops::StatusState::Closed | evops::StatusState::Ipi => [0, 0],
            };
            ctx.mem.write_obj(arg, &a)?;
        }
        EvtchnOp::BindVcpu => {
            let a: EvtchnBindVcpu = ctx.mem.read_obj(arg)?;
            evops::bind_vcpu(
                ctx.host.world().doms,
                caller,
                EvtchnPort(a.port),
                eabi::VcpuId(a.vcpu),
            )
            .map_err(e)?;
        }
        EvtchnOp::Unmask => {
            let a: EvtchnPortArg = ctx.mem.read_obj(arg)?;
            let mut w = ctx.host.world();
            let wake = evops::unmask(w.doms, caller, EvtchnPort(a.port)).map_err(e)?;
            w.wake(wake);
        }
        EvtchnOp::Reset => {
            let dom: u16 = ctx.mem.read_obj(arg)?;
            let w = ctx.host.world();
            let sched = &*w.sched;
            evops::reset(w.doms, caller, eabi::DomId(dom), |d| {
                sched.controller_paused(d)
            })
            .map_err(e)?;
        }
        // The FIFO ABI is not offered; Linux falls back to 2-level on this answer.
        _ => return Err(XenError::NoSys),
    }
    Ok(0)
}

/// `SCHEDOP_block`: events are enabled and the vCPU sleeps until one is pending.
pub fn block<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>) -> HcResult {
    let (_, me) = me(ctx);
    let shared = *ctx.host.shared();
    let w = ctx.host.world();
    match crate::sched::blocking::block(&shared, w.sched, me).map_err(|e| e.errno())? {
        Blocking::Ready => {}
        Blocking::Blocked(_) => ctx.action = Action::Block,
    }
    Ok(0)
}

/// `SCHEDOP_poll`: sleep until one of the ports is pending or the timeout passes.
pub fn poll<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, arg: u64) -> HcResult {
    let (caller, me) = me(ctx);
    let req: SchedPoll = ctx.mem.read_obj(arg)?;
    if req.nr_ports as usize > MAX_POLL_PORTS {
        return Err(XenError::Inval);
    }
    let mut ports = [EvtchnPort(0); MAX_POLL_PORTS];
    for (i, p) in ports.iter_mut().take(req.nr_ports as usize).enumerate() {
        *p = EvtchnPort(ctx.mem.read_obj(req.ports.wrapping_add(4 * i as u64))?);
    }
    let shared = *ctx.host.shared();
    let w = ctx.host.world();
    let Some(ev) = crate::event::evtchn_ops::Domains::events(w.doms, caller.domain) else {
        return Err(XenError::Srch);
    };
    let blocking = crate::sched::blocking::poll(
        ev.channels,
        &shared,
        w.sched,
        w.timers,
        me,
        &ports[..req.nr_ports as usize],
        req.timeout,
    )
    .map_err(|e| e.errno())?;
    if let Blocking::Blocked(_) = blocking {
        ctx.action = Action::Block;
    }
    Ok(0)
}

/// `SCHEDOP_yield`.
pub fn yield_now<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>) -> HcResult {
    let (_, me) = me(ctx);
    crate::sched::blocking::yield_now(ctx.host.world().sched, me).map_err(|e| e.errno())?;
    ctx.action = Action::Yield;
    Ok(0)
}

/// `set_timer_op(timeout)`: one-shot timer at absolute system time `timeout` (0 cancels).
pub fn set_timer_op<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, timeout: u64) -> HcResult {
    let (_, me) = me(ctx);
    let now = ctx.host.now_ns();
    timer::set_timer_op(ctx.host.world().timers, me, now, timeout).map_err(|e| e.errno())?;
    Ok(0)
}

/// The timer sub-ops of `vcpu_op`.
pub fn vcpu_timer_op<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    op: guest_abi::vcpu::VcpuOp,
    target: u32,
    arg: u64,
) -> HcResult {
    use guest_abi::vcpu::VcpuOp;
    let (caller, me) = me(ctx);
    let target = vcpu_ref(caller.domain, eabi::VcpuId(target));
    let now = ctx.host.now_ns();
    let te = |e: timer::TimerError| e.errno();
    match op {
        VcpuOp::SetSingleshotTimer => {
            let t: VcpuSetSingleshotTimer = ctx.mem.read_obj(arg)?;
            timer::set_singleshot(
                ctx.host.world().timers,
                me,
                target,
                now,
                t.timeout_abs_ns,
                t.flags,
            )
            .map_err(te)?;
        }
        VcpuOp::StopSingleshotTimer => {
            timer::stop_singleshot(ctx.host.world().timers, me, target).map_err(te)?
        }
        VcpuOp::SetPeriodicTimer => {
            let t: VcpuSetPeriodicTimer = ctx.mem.read_obj(arg)?;
            let w = ctx.host.world();
            match timer::set_periodic(w.timers, &mut ctx.vcpu.timers, target, now, t.period_ns)
                .map_err(te)?
            {
                timer::TimerAction::RaiseTimerVirq(v) => {
                    let mut w = ctx.host.world();
                    let wake = evops::raise_virq(w.doms, v.domain, v.vcpu, eabi::Virq::TIMER);
                    w.wake(wake);
                }
                timer::TimerAction::None | timer::TimerAction::EndPoll(_) => {}
            }
        }
        VcpuOp::StopPeriodicTimer => {
            timer::stop_periodic(ctx.host.world().timers, &mut ctx.vcpu.timers, target)
        }
        _ => return Err(XenError::NoSys),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fixture, call};
    use super::*;
    use core::sync::atomic::Ordering;
    use guest_abi::Hypercall;
    use zerocopy::IntoBytes;

    fn evtchn<T: IntoBytes + zerocopy::Immutable + zerocopy::FromBytes>(
        f: &mut Fixture,
        op: EvtchnOp,
        arg: &T,
    ) -> (HcResult, T) {
        f.mem.write_bytes(0x2000, arg.as_bytes());
        let r = call(
            f,
            Hypercall::EventChannelOp,
            [u64::from(op.raw()), 0x2000, 0, 0, 0],
        );
        let back = T::read_from_bytes(&f.mem.read_bytes(0x2000, size_of::<T>())).unwrap();
        (r, back)
    }

    #[test]
    fn virq_bind_twice_and_close() {
        let mut f = Fixture::new();
        let (r, b) = evtchn(
            &mut f,
            EvtchnOp::BindVirq,
            &EvtchnBindVirq {
                virq: 0,
                vcpu: 0,
                port: 0,
            },
        );
        assert_eq!(r, Ok(0));
        assert_ne!(b.port, 0);
        let (r, _) = evtchn(
            &mut f,
            EvtchnOp::BindVirq,
            &EvtchnBindVirq {
                virq: 0,
                vcpu: 0,
                port: 0,
            },
        );
        assert_eq!(r, Err(XenError::Exist));
        assert_eq!(
            evtchn(&mut f, EvtchnOp::Close, &EvtchnPortArg { port: b.port }).0,
            Ok(0)
        );
        assert_eq!(
            evtchn(&mut f, EvtchnOp::Close, &EvtchnPortArg { port: b.port }).0,
            Err(XenError::Inval)
        );
        assert_eq!(
            evtchn(&mut f, EvtchnOp::Close, &EvtchnPortArg { port: 99_999 }).0,
            Err(XenError::Inval)
        );
        assert_eq!(
            call(&mut f, Hypercall::EventChannelOp, [99, 0x2000, 0, 0, 0]),
            Err(XenError::NoSys)
        );
        assert_eq!(
            call(&mut f, Hypercall::EventChannelOp, [1, 0xdead_0000, 0, 0, 0]),
            Err(XenError::Fault)
        );
    }

    #[test]
    fn loopback_send_raises_an_upcall() {
        let mut f = Fixture::new();
        let (r, a) = evtchn(
            &mut f,
            EvtchnOp::AllocUnbound,
            &EvtchnAllocUnbound {
                dom: 0x7ff0,
                remote_dom: 0x7ff0,
                port: 0,
            },
        );
        assert_eq!(r, Ok(0));
        let (r, b) = evtchn(
            &mut f,
            EvtchnOp::BindInterdomain,
            &EvtchnBindInterdomain {
                remote_dom: 0x7ff0,
                _hole: 0,
                remote_port: a.port,
                local_port: 0,
            },
        );
        assert_eq!(r, Ok(0));
        let info = &f.host.shared.page().vcpu_info[0];
        // The guest scans and clears what the bind left pending.
        info.evtchn_upcall_pending.store(0, Ordering::SeqCst);
        info.evtchn_pending_sel.store(0, Ordering::SeqCst);
        f.host.shared.page().evtchn_pending[0].store(0, Ordering::SeqCst);
        assert_eq!(
            evtchn(
                &mut f,
                EvtchnOp::Send,
                &EvtchnPortArg { port: b.local_port }
            )
            .0,
            Ok(0)
        );
        let pending = f.host.shared.page().evtchn_pending[0].load(Ordering::SeqCst);
        assert_ne!(pending & (1 << a.port), 0, "the other end is pending");
        assert_eq!(info.evtchn_upcall_pending.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn poll_returns_at_once_for_a_pending_port_and_timers_check_their_arguments() {
        let mut f = Fixture::new();
        f.host.shared.page().evtchn_pending[0].store(1 << 5, Ordering::SeqCst);
        f.mem.write_bytes(0x3000, &5u32.to_le_bytes());
        let req = SchedPoll {
            ports: 0x3000,
            nr_ports: 1,
            _hole: 0,
            timeout: 0,
        };
        f.mem.write_bytes(0x2000, req.as_bytes());
        assert_eq!(
            call(&mut f, Hypercall::SchedOp, [3, 0x2000, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(f.action, super::super::Action::Resume);
        let req = SchedPoll {
            nr_ports: 1000,
            ..req
        };
        f.mem.write_bytes(0x2000, req.as_bytes());
        assert_eq!(
            call(&mut f, Hypercall::SchedOp, [3, 0x2000, 0, 0, 0]),
            Err(XenError::Inval)
        );

        // A one-shot in the past with VCPU_SSHOTTMR_future: accepted, as in Xen 4.17.
        let t = VcpuSetSingleshotTimer {
            timeout_abs_ns: 10,
            flags: 1,
            _hole: 0,
        };
        f.mem.write_bytes(0x2000, t.as_bytes());
        assert_eq!(call(&mut f, Hypercall::VcpuOp, [8, 0, 0x2000, 0, 0]), Ok(0));
        let t = VcpuSetSingleshotTimer {
            timeout_abs_ns: 10,
            flags: 0,
            _hole: 0,
        };
        f.mem.write_bytes(0x2000, t.as_bytes());
        assert_eq!(call(&mut f, Hypercall::VcpuOp, [8, 0, 0x2000, 0, 0]), Ok(0));
        assert_eq!(f.host.timers.len(), 1);
        assert_eq!(call(&mut f, Hypercall::VcpuOp, [9, 0, 0, 0, 0]), Ok(0));
        assert_eq!(f.host.timers.len(), 0);
        f.mem.write_bytes(0x2000, &10u64.to_le_bytes());
        assert_eq!(
            call(&mut f, Hypercall::VcpuOp, [6, 0, 0x2000, 0, 0]),
            Err(XenError::Inval),
            "period too short"
        );
        assert_eq!(
            call(&mut f, Hypercall::SetTimerOp, [5_000_000, 0, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(f.host.timers.len(), 1);
    }
}
