//! `time.*`: pvclock time in `vcpu_info[0].time`, the one-shot timer
//! (`VCPUOP_set_singleshot_timer`, `set_timer_op`) and the periodic timer, delivered as
//! `VIRQ_TIMER` upcalls or waking `SCHEDOP_poll` and `SCHEDOP_block`.
//!
//! Runs after `event.*`, with the upcall handler registered and events masked.

use guest_abi::runtime::hypercall;
use guest_abi::vcpu::{VCPU_SSHOTTMR_FUTURE, VcpuOp, VcpuSetPeriodicTimer, VcpuSetSingleshotTimer};
use guest_abi::xen::Virq;
use guest_abi::{EvtchnPort, VcpuId, XenError, println};

use crate::check::{Report, Why, ensure, eq, ok};
use crate::events::{PROMPT_NS, SLOP_NS, bind_virq, close, poll, time};
use crate::upcall::{self, events_off, events_on, hits};

const MS: u64 = 1_000_000;
/// How late a timer may fire under TCG before the check fails.
const LATE_NS: u64 = 200 * MS;
/// The periodic timer's check.
const PERIODIC: &str = "time.periodic timer 10 ms: 4 to 7 ticks in 55 ms, at most 20 ms apart";
/// pvclock reads in the monotonicity check.
const READS: u32 = 20_000;

fn singleshot(deadline: u64, flags: u32) -> Result<u64, XenError> {
    let mut arg = VcpuSetSingleshotTimer {
        timeout_abs_ns: deadline,
        flags,
        _hole: 0,
    };
    // SAFETY: VCPUOP_set_singleshot_timer reads one vcpu_set_singleshot_timer.
    unsafe { hypercall::vcpu_op(VcpuOp::SetSingleshotTimer, VcpuId(0), &mut arg) }
}

fn periodic(period_ns: u64) -> Result<u64, XenError> {
    let mut arg = VcpuSetPeriodicTimer { period_ns };
    // SAFETY: VCPUOP_set_periodic_timer reads one vcpu_set_periodic_timer.
    unsafe { hypercall::vcpu_op(VcpuOp::SetPeriodicTimer, VcpuId(0), &mut arg) }
}

/// `VCPUOP_stop_periodic_timer` or `VCPUOP_stop_singleshot_timer`.
fn stop(op: VcpuOp) -> Result<u64, XenError> {
    // SAFETY: the stop operations read no argument.
    unsafe { hypercall::vcpu_op(op, VcpuId(0), &mut 0u64) }
}

/// Takes any upcall still pending (events on, then off again).
fn drain() {
    events_on();
    events_off();
}

pub fn run(r: &mut Report) {
    pvclock(r);

    r.check_eq(
        "time.VCPUOP_stop_periodic_timer",
        stop(VcpuOp::StopPeriodicTimer),
        Ok(0),
    );
    r.check_eq(
        "time.VCPUOP_stop_singleshot_timer",
        stop(VcpuOp::StopSingleshotTimer),
        Ok(0),
    );
    let port = bind_virq(Virq::Timer as u32, 0);
    r.check(
        "event.bind_virq VIRQ_TIMER",
        ok("bind_virq", port.map(|p| p.0.into())).map(drop),
    );
    let Ok(port) = port else { return };
    r.check_eq(
        "event.bind_virq VIRQ_TIMER twice",
        bind_virq(Virq::Timer as u32, 0).map(|p| p.0),
        Err(XenError::Exist),
    );
    drain();

    // The poll-based checks first: if the timer never fires, they time out instead of
    // blocking for good.
    let t0 = time();
    let deadline = t0 + 10 * MS;
    let set = singleshot(deadline, 0);
    let res = poll(&[port.0], t0 + 2_000 * MS);
    let t1 = time();
    println!(
        "selftest: poll woken by the one-shot timer {} ns after its deadline",
        t1 as i64 - deadline as i64
    );
    let timer_works = upcall::pending(port);
    r.check(
        "event.SCHEDOP_poll wakes on the port (one-shot VIRQ_TIMER, 10 ms)",
        ok("set_singleshot_timer", set)
            .and_then(|_| ok("poll", res))
            .and_then(|_| ensure(timer_works, "VIRQ_TIMER port not pending"))
            .and_then(|_| ensure(t1 + SLOP_NS >= deadline, "woke before the deadline"))
            .and_then(|_| ensure(t1 < deadline + LATE_NS, "woke 200 ms late")),
    );
    drain();

    // Debian's Xen 4.17.7, the oracle, accepts VCPU_SSHOTTMR_future with a past deadline
    // and fires at once (it ignores the flag, as later Xen does) rather than -ETIME.
    for (name, flags) in [
        ("time.one-shot timer in the past fires at once", 0),
        (
            "time.one-shot timer in the past with VCPU_SSHOTTMR_future: flag ignored, fires at once",
            VCPU_SSHOTTMR_FUTURE,
        ),
    ] {
        let t0 = time();
        let set = singleshot(t0 - MS, flags);
        let res = poll(&[port.0], t0 + 1_000 * MS);
        let t1 = time();
        r.check(
            name,
            ok("set_singleshot_timer", set)
                .and_then(|_| ok("poll", res))
                .and_then(|_| ensure(upcall::pending(port), "VIRQ_TIMER port not pending"))
                .and_then(|_| ensure(t1 - t0 < PROMPT_NS, "took more than 50 ms")),
        );
        drain();
    }

    if timer_works {
        block_checks(r, port);
    } else {
        for name in [
            "time.VCPUOP_set_singleshot_timer fires VIRQ_TIMER (SCHEDOP_block)",
            "time.set_timer_op fires VIRQ_TIMER (SCHEDOP_block)",
            PERIODIC,
        ] {
            r.fail(
                name,
                format_args!("not run: the one-shot timer did not wake a poll"),
            );
        }
    }
    r.check_eq(
        "time.VCPUOP_set_periodic_timer 0.5 ms",
        periodic(MS / 2),
        Err(XenError::Inval),
    );

    // No more ticks once the periodic timer is stopped.
    let stopped = stop(VcpuOp::StopPeriodicTimer);
    drain();
    let before = hits(port);
    let t0 = time();
    let res = poll(&[port.0], t0 + 30 * MS);
    r.check(
        "time.no VIRQ_TIMER for 30 ms after stop_periodic_timer",
        ok("stop_periodic_timer", stopped)
            .and_then(|_| ok("poll", res))
            .and_then(|_| ensure(!upcall::pending(port), "VIRQ_TIMER port pending"))
            .and_then(|_| eq("upcalls", u64::from(hits(port) - before), 0)),
    );

    r.check_eq("event.close the VIRQ_TIMER port", close(port.0), Ok(0));
    r.check_eq(
        "event.close the VIRQ_TIMER port again",
        close(port.0),
        Err(XenError::Inval),
    );
    let again = bind_virq(Virq::Timer as u32, 0);
    r.check(
        "event.bind_virq VIRQ_TIMER again after close",
        ok("bind_virq", again.map(|p| p.0.into()))
            .and_then(|p| ok("close", close(p as u32)).map(drop)),
    );
}

/// Reads of the pvclock are monotonic, and time advances.
fn pvclock(r: &mut Report) {
    let info = upcall::time_info();
    r.check(
        "time.vcpu_time_info: version even, multiplier set",
        match info {
            Some((version, mul, _)) => eq("version & 1", (version & 1).into(), 0)
                .and_then(|_| ensure(mul != 0, "tsc_to_system_mul is 0")),
            None => Err(Why::Text("shared_info is not mapped")),
        },
    );
    let first = time();
    let mut last = first;
    let mut backwards = 0u32;
    for _ in 0..READS {
        let t = time();
        if t < last {
            backwards += 1;
        }
        last = t;
    }
    println!(
        "selftest: pvclock {first} ns, {} ns over {READS} reads",
        last - first
    );
    r.check(
        "time.pvclock is monotonic over 20000 reads",
        eq("reads going backwards", backwards.into(), 0)
            .and_then(|_| ensure(last > first, "time did not advance"))
            .and_then(|_| ensure(first > 0, "system time 0")),
    );
}

/// Blocks with events on until `port` gets an upcall; the upcall's time, or `None` after
/// `give_up` (system time). Upcalls already pending must have been taken before.
fn block_until_upcall(port: EvtchnPort, give_up: u64) -> Option<u64> {
    let before = hits(port);
    while hits(port) == before {
        if time() > give_up {
            return None;
        }
        // SCHEDOP_block unmasks events; the upcall comes on its way back.
        let _ = hypercall::sched_block();
    }
    events_off();
    Some(upcall::seen().time)
}

/// The timers through `SCHEDOP_block`, which needs them to work (else it never returns).
fn block_checks(r: &mut Report, port: EvtchnPort) {
    for (name, use_vcpu_op) in [
        (
            "time.VCPUOP_set_singleshot_timer fires VIRQ_TIMER (SCHEDOP_block)",
            true,
        ),
        ("time.set_timer_op fires VIRQ_TIMER (SCHEDOP_block)", false),
    ] {
        drain();
        let deadline = time() + 10 * MS;
        let set = if use_vcpu_op {
            singleshot(deadline, 0)
        } else {
            hypercall::set_timer_op(deadline)
        };
        let fired = set
            .ok()
            .and_then(|_| block_until_upcall(port, deadline + 2_000 * MS));
        let after = time();
        println!(
            "selftest: {name}: upcall {} ns after the deadline",
            fired.map_or(i64::MIN, |t| t as i64 - deadline as i64)
        );
        r.check(
            name,
            ok("set timer", set)
                .and_then(|_| fired.ok_or(Why::Text("no VIRQ_TIMER upcall in 2 s")))
                .and_then(|t| {
                    ensure(t + SLOP_NS >= deadline, "upcall before the deadline")
                        .and_then(|_| {
                            ensure(after + SLOP_NS >= deadline, "time behind the deadline")
                        })
                        .and_then(|_| ensure(t < deadline + LATE_NS, "upcall 200 ms late"))
                }),
        );
    }

    // Periodic ticks: count the upcalls for 55 ms, running with events on (the periodic
    // timer only runs while the vCPU does: Xen stops it when the vCPU blocks).
    let set = periodic(10 * MS);
    let t0 = time();
    let end = t0 + 55 * MS;
    let before = hits(port);
    let first = upcall::seen().count;
    events_on();
    while set.is_ok() && time() < end {
        core::hint::spin_loop();
    }
    events_off();
    let ticks = hits(port) - before;
    let last = upcall::seen().count;
    println!(
        "selftest: periodic timer: {ticks} ticks in {} ns, at (ms after the set):",
        time() - t0
    );
    let times = upcall::times(first, last);
    let times = &times[..times.iter().take_while(|&&t| t != 0).count()];
    for t in times {
        println!("selftest:   {}.{:03}", (t - t0) / MS, (t - t0) % MS / 1000);
    }
    // Xen ticks at once (a period has passed since the last tick) and then every 10 ms
    // after the previous tick; under TCG on a busy host a tick may come a few ms late.
    let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    r.check(
        PERIODIC,
        ok("set_periodic_timer", set)
            .and_then(|_| ensure((4..=7).contains(&ticks), "not 4 to 7 ticks"))
            .and_then(|_| eq("upcalls recorded", times.len() as u64, ticks.into()))
            .and_then(|_| {
                ensure(gap <= 20 * MS, "").map_err(|_| Why::Diff {
                    what: "largest gap between ticks (ns), over 20 ms",
                    got: gap,
                    want: 10 * MS,
                })
            }),
    );
}
