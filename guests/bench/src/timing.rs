//! Waiting for events: how soon `SCHEDOP_poll` returns and how late timers fire.
//!
//! - `poll_send_pending`: a loopback send, then `SCHEDOP_poll` on the receiving port, which
//!   is pending by then, so the poll returns at once (TSC ticks per send + poll).
//! - `poll_wake_timer`: the one-shot timer (`VCPUOP_set_singleshot_timer`) armed for a
//!   deadline [`AHEAD_NS`] ahead, then `SCHEDOP_poll` on the masked `VIRQ_TIMER` port:
//!   the vCPU blocks and the timer wakes it. Reported: ns from the deadline to the return
//!   from the poll (pvclock).
//! - `poll_timeout`: `SCHEDOP_poll` with that deadline as its timeout on a port nothing
//!   sends to: ns from the deadline to the return.
//! - `timer_upcall_lateness`: the one-shot timer, then `SCHEDOP_block` with the timer port
//!   unmasked: ns from the deadline to the TSC the event upcall read on entry.
//!
//! Under `-icount shift=0,sleep=off` an idle machine's clock jumps to the next timer, so a
//! lateness is the time (instructions) the hypervisor spends from its timer interrupt to
//! the guest, plus any slack it adds to the deadline.

use core::sync::atomic::Ordering;

use guest_abi::runtime::hypercall;
use guest_abi::vcpu::{VcpuOp, VcpuSetSingleshotTimer};
use guest_abi::{EvtchnPort, VcpuId};

use crate::error::Error;
use crate::events::{self, Loopback};
use crate::run::{Spec, bench_each, bench_samples, failed};
use crate::stats::lateness;

/// How far ahead the deadlines are (ns).
const AHEAD_NS: u64 = 1_000_000;
/// A poll that waits for the timer gives up this long after the deadline (ns).
const GIVE_UP_NS: u64 = 1_000_000_000;
/// The metrics, for the error lines when the setup fails.
const NAMES: [&str; 4] = [
    "poll_send_pending",
    "poll_wake_timer",
    "poll_timeout",
    "timer_upcall_lateness",
];

pub fn run(lb: Result<Loopback, Error>) {
    let lb = match lb {
        Ok(lb) => lb,
        Err(e) => return NAMES.iter().for_each(|n| failed(n, e)),
    };
    // Xen gives a PV vCPU a periodic timer on VIRQ_TIMER; stop it so that only the
    // one-shot fires. Ours has none, and the result does not matter.
    // SAFETY: stop_periodic_timer takes no argument; the word is ignored.
    let _ = unsafe { hypercall::vcpu_op(VcpuOp::StopPeriodicTimer, VcpuId(0), &mut 0u64) };
    bench_send_poll(lb);
    let timer = match events::bind_timer() {
        Ok(port) => port,
        Err(e) => return NAMES[1..].iter().for_each(|n| failed(n, e)),
    };
    bench_samples("poll_wake_timer", "ns", || poll_wake(timer));
    bench_samples("poll_timeout", "ns", || poll_timeout(lb.receiver));
    bench_samples("timer_upcall_lateness", "ns", || upcall_lateness(timer));
    events::mask_upcalls(true);
    events::mask_port(timer, true);
    events::clear_pending(timer);
}

fn poll(port: u64, deadline_ns: u64) -> Result<(), Error> {
    hypercall::sched_poll(&[EvtchnPort(port as u32)], deadline_ns)
        .map(drop)
        .map_err(|e| Error::xen("sched_op(poll)", e))
}

fn set_singleshot(deadline_ns: u64) -> Result<(), Error> {
    let mut t = VcpuSetSingleshotTimer {
        timeout_abs_ns: deadline_ns,
        flags: 0,
        _hole: 0,
    };
    // SAFETY: `t` is the struct set_singleshot_timer takes; Xen only reads it.
    unsafe { hypercall::vcpu_op(VcpuOp::SetSingleshotTimer, VcpuId(0), &mut t) }
        .map(drop)
        .map_err(|e| Error::xen("vcpu_op(set_singleshot_timer)", e))
}

/// Send, then poll on the (now pending) receiving end; both ends masked.
fn bench_send_poll(lb: Loopback) {
    events::mask_port(lb.receiver, true);
    events::clear_pending(lb.receiver);
    bench_each(Spec::new("poll_send_pending", 200), |_| {
        hypercall::evtchn_send(lb.sender as u32).map_err(|e| Error::xen("evtchn_send", e))?;
        poll(lb.receiver, 0)?;
        events::clear_pending(lb.receiver);
        Ok(())
    });
}

/// One-shot timer, then poll on its (masked) port: ns from the deadline to the return.
fn poll_wake(timer: u64) -> Result<u64, Error> {
    events::clear_pending(timer);
    let deadline = events::now_ns() + AHEAD_NS;
    set_singleshot(deadline)?;
    poll(timer, deadline + GIVE_UP_NS)?;
    let at = events::now_ns();
    if !events::is_pending(timer) {
        return Err(Error::Text("the poll returned without the timer"));
    }
    events::clear_pending(timer);
    Ok(lateness(at, deadline))
}

/// Poll with a timeout on a port nothing sends to: ns from the timeout to the return.
fn poll_timeout(port: u64) -> Result<u64, Error> {
    events::clear_pending(port);
    let deadline = events::now_ns() + AHEAD_NS;
    poll(port, deadline)?;
    let at = events::now_ns();
    if at < deadline {
        return Err(Error::Text("the poll returned before its timeout"));
    }
    Ok(lateness(at, deadline))
}

/// One-shot timer, then block with the timer port unmasked until the upcall saw it: ns
/// from the deadline to the upcall's entry.
fn upcall_lateness(timer: u64) -> Result<u64, Error> {
    events::clear_pending(timer);
    events::mask_port(timer, false);
    events::TIMER_TSC.store(0, Ordering::Relaxed);
    let deadline = events::now_ns() + AHEAD_NS;
    set_singleshot(deadline)?;
    // SCHEDOP_block unmasks event delivery; the upcall's iret keeps it unmasked. Another
    // event may end the block early: block again until the timer's upcall came.
    while events::TIMER_TSC.load(Ordering::Relaxed) == 0 {
        hypercall::sched_block().map_err(|e| Error::xen("sched_op(block)", e))?;
    }
    events::mask_upcalls(true);
    events::mask_port(timer, true);
    let tsc = events::TIMER_TSC.load(Ordering::Relaxed);
    Ok(lateness(events::tsc_to_ns(tsc), deadline))
}
