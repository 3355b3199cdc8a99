//! `SCHEDOP_block`, `SCHEDOP_poll` and `SCHEDOP_yield` as logic over the scheduler, the
//! domain's event state and the CPU's timer queue.
//!
//! Which vCPU wakes on which event:
//! - a vCPU blocked by `SCHEDOP_block` (which also re-enables its event delivery) wakes on
//!   any kick: a port it is notified for becoming pending while unmasked, which raises its
//!   `evtchn_upcall_pending` (see `event::channel::EventChannels::set_pending`);
//! - a vCPU blocked in `SCHEDOP_poll` wakes when one of its ports becomes pending, masked or not
//!   (for a single port, only that port; for several, any port of its domain, as in Xen), when
//!   it is kicked as above, or when its poll timeout passes.
//!
//! Both check for pending work *after* marking the vCPU blocked, so an event that arrives in
//! between is never lost.

use super::VcpuRef;
use super::scheduler::{CpuId, SchedError, Scheduler};
use super::timer::{TimerError, TimerKey, TimerKind, TimerQueue};
use crate::event::abi::{EvtchnPort, NR_EVENT_CHANNELS};
use crate::event::channel::{ChannelStore, EventChannels};
use crate::event::shared::{self, SharedInfoView};
use guest_abi::XenError;

/// Most ports one `SCHEDOP_poll` may name (Xen's "fairly arbitrary limit").
pub const MAX_POLL_PORTS: usize = 128;

/// Why a `sched_op` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedOpError {
    /// More than [`MAX_POLL_PORTS`] ports (`-EINVAL`).
    TooManyPorts,
    /// A polled port is beyond the 2-level ABI's range (`-EINVAL`).
    PortOutOfRange(EvtchnPort),
    /// The scheduler does not know the vCPU.
    Sched(SchedError),
    /// The poll timeout could not be armed.
    Timer(TimerError),
}

impl SchedOpError {
    /// The errno to return.
    pub const fn errno(self) -> XenError {
        match self {
            Self::TooManyPorts | Self::PortOutOfRange(_) => XenError::Inval,
            Self::Sched(e) => e.errno(),
            Self::Timer(e) => e.errno(),
        }
    }
}

impl From<SchedError> for SchedOpError {
    fn from(e: SchedError) -> Self {
        Self::Sched(e)
    }
}

/// How a blocking `sched_op` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocking {
    /// Work was already pending: the hypercall returns 0 at once, the vCPU keeps running.
    Ready,
    /// The vCPU is blocked. If `Some`, that CPU (where it was running) must reschedule; the
    /// hypercall returns 0 when the vCPU next runs.
    Blocked(Option<CpuId>),
}

/// `SCHEDOP_block`: enable event delivery, block, and undo the block if an upcall is already
/// pending.
pub fn block<S, const N: usize, const C: usize>(
    shared: &S,
    sched: &mut Scheduler<N, C>,
    vcpu: VcpuRef,
) -> Result<Blocking, SchedOpError>
where
    S: SharedInfoView + ?Sized,
{
    shared.set_upcall_masked(vcpu.vcpu, false);
    let cpu = sched.block(vcpu)?;
    if shared::events_need_delivery(shared, vcpu.vcpu) {
        sched.wake(vcpu)?;
        return Ok(Blocking::Ready);
    }
    Ok(Blocking::Blocked(cpu))
}

/// `SCHEDOP_poll` by `vcpu` on `ports` of its own domain, with an absolute `timeout` (0: none).
/// The caller copies the ports from the guest (after checking the count against
/// [`MAX_POLL_PORTS`]; a failed copy is `-EFAULT` there).
pub fn poll<T, S, const N: usize, const C: usize, const Q: usize>(
    events: &mut EventChannels<T>,
    shared: &S,
    sched: &mut Scheduler<N, C>,
    timers: &mut TimerQueue<Q>,
    vcpu: VcpuRef,
    ports: &[EvtchnPort],
    timeout: u64,
) -> Result<Blocking, SchedOpError>
where
    T: ChannelStore,
    S: SharedInfoView + ?Sized,
{
    if ports.len() > MAX_POLL_PORTS {
        return Err(SchedOpError::TooManyPorts);
    }
    let cpu = sched.block(vcpu)?;
    events.begin_poll(vcpu.vcpu);
    let mut done = |result: Result<Blocking, SchedOpError>| {
        events.end_poll(vcpu.vcpu);
        sched.wake(vcpu)?;
        result
    };
    if shared::events_need_delivery(shared, vcpu.vcpu) {
        return done(Ok(Blocking::Ready));
    }
    for &port in ports {
        if port.index() >= NR_EVENT_CHANNELS {
            return done(Err(SchedOpError::PortOutOfRange(port)));
        }
        if shared::is_pending(shared, port) {
            return done(Ok(Blocking::Ready));
        }
    }
    if timeout != 0 {
        let key = TimerKey::new(vcpu, TimerKind::Poll);
        if let Err(e) = timers.set(key, timeout) {
            return done(Err(SchedOpError::Timer(e)));
        }
    }
    if let [port] = ports {
        events.poll_for(vcpu.vcpu, *port);
    }
    Ok(Blocking::Blocked(cpu))
}

/// `SCHEDOP_yield`: the vCPU gives up the rest of its slice. Returns the CPU that should
/// reschedule (its own), if it is running.
pub fn yield_now<const N: usize, const C: usize>(
    sched: &mut Scheduler<N, C>,
    vcpu: VcpuRef,
) -> Result<Option<CpuId>, SchedOpError> {
    Ok(sched.yield_now(vcpu)?)
}
