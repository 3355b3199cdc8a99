//! Host tests for the scheduler model, the timer queue and vCPU timers, and the blocking
//! `sched_op`s, including end-to-end runs where events and timers wake blocked vCPUs.

use super::VcpuRef;
use super::blocking::{self, Blocking, MAX_POLL_PORTS, SchedOpError};
use super::scheduler::{CpuId, DEFAULT_SLICE_NS, Decision, RunState, SchedError, Scheduler};
use super::timer::*;
use crate::event::abi::{DomId, EvtchnPort, VCPU_SSHOTTMR_FUTURE, VcpuId, Virq};
use crate::event::evtchn_ops as ev;
use crate::event::shared::SharedInfoView;
use crate::event::tests::{Fake, me};
use core::sync::atomic::Ordering;
use guest_abi::XenError;
use proptest::prelude::*;
use std::vec::Vec;

const SLICE: u64 = 1_000_000;
const CPU0: CpuId = CpuId(0);

fn v(d: u16, n: u32) -> VcpuRef {
    VcpuRef {
        domain: DomId(d),
        vcpu: VcpuId(n),
    }
}

/// A scheduler with `doms` domains of `per_dom` vCPUs each, all up, on one CPU.
fn sched_with(doms: u16, per_dom: u32) -> Scheduler<16, 2> {
    let mut s = Scheduler::new(SLICE);
    for d in 1..=doms {
        s.add_domain(DomId(d)).unwrap();
        for n in 0..per_dom {
            s.add_vcpu(v(d, n), CPU0, true).unwrap();
        }
    }
    s.check().unwrap();
    s
}

// ---------------------------------------------------------------- scheduler

#[test]
fn round_robin_in_order_with_fresh_slices() {
    let mut s = sched_with(1, 3);
    let mut order = Vec::new();
    let mut now = 0;
    for _ in 0..6 {
        let d = s.schedule(CPU0, now, None);
        order.push(d.next.unwrap().vcpu.0);
        assert_eq!(d.until, Some(now + SLICE));
        now += SLICE;
    }
    assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    s.check().unwrap();
}

#[test]
fn running_vcpu_keeps_the_cpu_until_its_slice_ends() {
    let mut s = sched_with(1, 2);
    let first = s.schedule(CPU0, 0, None);
    let again = s.schedule(CPU0, SLICE / 2, Some(SLICE / 4 * 3));
    assert_eq!(again.next, first.next);
    assert!(!again.switches());
    assert_eq!(
        again.until,
        Some(SLICE / 4 * 3),
        "an earlier timer shortens the wait"
    );
    let later = s.schedule(CPU0, SLICE, None);
    assert!(later.switches());
    assert_eq!(s.runtime(first.next.unwrap()), Some(SLICE));
}

#[test]
fn nothing_runnable_idles_until_the_next_timer() {
    let mut s = sched_with(1, 1);
    assert_eq!(s.schedule(CPU0, 0, None).next, Some(v(1, 0)));
    assert_eq!(s.block(v(1, 0)), Ok(Some(CPU0)));
    let d = s.schedule(CPU0, 10, Some(5_000));
    assert_eq!(
        d,
        Decision {
            prev: Some(v(1, 0)),
            next: None,
            until: Some(5_000)
        }
    );
    assert_eq!(s.schedule(CPU0, 20, None).until, None);
    // A wake on an idle CPU asks it to reschedule.
    assert_eq!(s.wake(v(1, 0)), Ok(Some(CPU0)));
    assert_eq!(s.schedule(CPU0, 30, None).next, Some(v(1, 0)));
    s.check().unwrap();
}

#[test]
fn yield_gives_the_cpu_to_the_next_vcpu() {
    let mut s = sched_with(1, 2);
    assert_eq!(s.schedule(CPU0, 0, None).next, Some(v(1, 0)));
    assert_eq!(blocking::yield_now(&mut s, v(1, 0)), Ok(Some(CPU0)));
    assert_eq!(s.schedule(CPU0, 10, None).next, Some(v(1, 1)));
    // Yielding with nobody else runnable keeps running.
    let mut alone = sched_with(1, 1);
    let _ = alone.schedule(CPU0, 0, None);
    let _ = alone.yield_now(v(1, 0));
    assert_eq!(alone.schedule(CPU0, 10, None).next, Some(v(1, 0)));
    // A vCPU that is not running has nothing to yield.
    assert_eq!(s.yield_now(v(1, 0)), Ok(None));
}

#[test]
fn pause_counts_nest_and_underflow_is_refused() {
    let mut s = sched_with(2, 1);
    assert_eq!(s.schedule(CPU0, 0, None).next, Some(v(1, 0)));
    assert!(s.pause_domain(DomId(1)).unwrap().contains(CPU0));
    s.pause_domain(DomId(1)).unwrap();
    assert_eq!(s.run_state(v(1, 0)), Some(RunState::Offline));
    assert_eq!(s.schedule(CPU0, 10, None).next, Some(v(2, 0)));
    s.unpause_domain(DomId(1)).unwrap();
    assert_eq!(
        s.run_state(v(1, 0)),
        Some(RunState::Offline),
        "still paused once"
    );
    s.unpause_domain(DomId(1)).unwrap();
    assert_eq!(s.run_state(v(1, 0)), Some(RunState::Runnable));
    assert_eq!(s.unpause_domain(DomId(1)), Err(SchedError::NotPaused));
    assert_eq!(
        s.unpause_by_controller(DomId(2)),
        Err(SchedError::NotPaused)
    );
    s.pause_by_controller(DomId(2)).unwrap();
    assert!(s.controller_paused(DomId(2)));
    s.unpause_by_controller(DomId(2)).unwrap();
    assert!(!s.controller_paused(DomId(2)));
    assert_eq!(
        s.pause_domain(DomId(9)),
        Err(SchedError::NoSuchDomain(DomId(9)))
    );
    assert_eq!(SchedError::NotPaused.errno(), XenError::Inval);
    s.check().unwrap();
}

#[test]
fn down_vcpus_do_not_run_until_up() {
    let mut s: Scheduler<4, 1> = Scheduler::new(SLICE);
    s.add_domain(DomId(1)).unwrap();
    s.add_vcpu(v(1, 0), CPU0, true).unwrap();
    s.add_vcpu(v(1, 1), CPU0, false).unwrap();
    assert_eq!(s.run_state(v(1, 1)), Some(RunState::Offline));
    assert_eq!(s.schedule(CPU0, 0, None).next, Some(v(1, 0)));
    assert_eq!(s.schedule(CPU0, SLICE, None).next, Some(v(1, 0)));
    s.vcpu_up(v(1, 1)).unwrap();
    assert_eq!(s.schedule(CPU0, 2 * SLICE, None).next, Some(v(1, 1)));
    assert_eq!(s.vcpu_down(v(1, 1)), Ok(Some(CPU0)));
    assert_eq!(s.schedule(CPU0, 2 * SLICE + 5, None).next, Some(v(1, 0)));
    s.check().unwrap();
}

#[test]
fn table_errors() {
    let mut s: Scheduler<2, 1> = Scheduler::new(0);
    assert_eq!(s.slice(), 1);
    s.add_domain(DomId(1)).unwrap();
    assert_eq!(s.add_domain(DomId(1)), Err(SchedError::Exists));
    assert_eq!(
        s.add_vcpu(v(2, 0), CPU0, true),
        Err(SchedError::NoSuchDomain(DomId(2)))
    );
    assert_eq!(
        s.add_vcpu(v(1, 0), CpuId(1), true),
        Err(SchedError::NoSuchCpu(CpuId(1)))
    );
    assert_eq!(
        s.add_vcpu(v(1, 99), CPU0, true),
        Err(SchedError::NoSuchVcpu(v(1, 99)))
    );
    s.add_vcpu(v(1, 0), CPU0, true).unwrap();
    assert_eq!(s.add_vcpu(v(1, 0), CPU0, true), Err(SchedError::Exists));
    s.add_vcpu(v(1, 1), CPU0, true).unwrap();
    assert_eq!(s.add_vcpu(v(1, 2), CPU0, true), Err(SchedError::Full));
    assert_eq!(s.wake(v(1, 5)), Err(SchedError::NoSuchVcpu(v(1, 5))));
    assert_eq!(s.schedule(CpuId(7), 0, Some(3)).until, Some(3));
    let _ = s.schedule(CPU0, 0, None);
    assert!(s.remove_domain(DomId(1)).unwrap().contains(CPU0));
    assert_eq!(s.current(CPU0), None);
    s.check().unwrap();
}

#[test]
fn migration_moves_queued_and_running_vcpus() {
    let mut s: Scheduler<4, 2> = Scheduler::new(SLICE);
    s.add_domain(DomId(1)).unwrap();
    for n in 0..3 {
        s.add_vcpu(v(1, n), CPU0, true).unwrap();
    }
    assert_eq!(s.schedule(CPU0, 0, None).next, Some(v(1, 0)));
    s.migrate(v(1, 1), CpuId(1)).unwrap();
    s.migrate(v(1, 0), CpuId(1)).unwrap();
    s.check().unwrap();
    // v0 keeps running on CPU0 until CPU0 reschedules, then joins CPU1's queue.
    assert_eq!(s.current(CPU0), Some(v(1, 0)));
    assert_eq!(
        s.block(v(1, 0)),
        Ok(Some(CPU0)),
        "resched goes to where it runs"
    );
    let _ = s.wake(v(1, 0));
    assert_eq!(s.schedule(CPU0, 10, None).next, Some(v(1, 2)));
    assert_eq!(s.schedule(CpuId(1), 10, None).next, Some(v(1, 1)));
    assert_eq!(s.schedule(CpuId(1), 10 + SLICE, None).next, Some(v(1, 0)));
    s.check().unwrap();
}

/// Runs CPU 0 from `now` for `slices` decisions, interrupting at each decision's deadline and
/// additionally at `noise` points inside slices (spurious entries must not change shares).
fn run_cpu<const N: usize>(s: &mut Scheduler<N, 2>, now: &mut u64, slices: usize, noise: &[u64]) {
    let mut d = s.schedule(CPU0, *now, None);
    for i in 0..slices {
        let until = d.until.unwrap_or(*now + SLICE);
        if let Some(&n) = noise.get(i % noise.len().max(1)) {
            let t = *now + n % (until - *now).max(1);
            let same = s.schedule(CPU0, t, None);
            assert_eq!(same.next, d.next, "a spurious entry does not preempt");
        }
        *now = until;
        d = s.schedule(CPU0, *now, None);
        s.check().unwrap();
    }
}

proptest! {
    /// Always-runnable vCPUs get equal shares within one slice over many slices; blocked ones
    /// get none; woken ones come back and are treated fairly from then on.
    #[test]
    fn fairness(k in 2usize..8, rounds in 20usize..60, noise in proptest::collection::vec(any::<u64>(), 0..8)) {
        let mut s = sched_with(1, k as u32 + 1);
        let blocked = v(1, k as u32);
        s.block(blocked).unwrap();
        let mut now = 0;
        run_cpu(&mut s, &mut now, rounds * k, &noise);
        let shares: Vec<u64> = (0..k as u32).map(|n| s.runtime(v(1, n)).unwrap()).collect();
        let (lo, hi) = (*shares.iter().min().unwrap(), *shares.iter().max().unwrap());
        prop_assert!(hi - lo <= SLICE, "shares {:?}", shares);
        prop_assert!(lo >= (rounds as u64 - 1) * SLICE);
        prop_assert_eq!(s.runtime(blocked), Some(0));
        // Woken, it runs again and catches up to a fair share of what follows.
        s.wake(blocked).unwrap();
        let before: Vec<u64> = (0..=k as u32).map(|n| s.runtime(v(1, n)).unwrap()).collect();
        run_cpu(&mut s, &mut now, rounds * (k + 1), &noise);
        let gained: Vec<u64> = (0..=k as u32).map(|n| s.runtime(v(1, n)).unwrap() - before[n as usize]).collect();
        let (lo, hi) = (*gained.iter().min().unwrap(), *gained.iter().max().unwrap());
        prop_assert!(hi - lo <= SLICE, "after wake {:?}", gained);
    }

    /// Domains share by vCPU; a paused domain's vCPUs get nothing and come back when unpaused.
    #[test]
    fn paused_domains_get_nothing(rounds in 10usize..40) {
        let mut s = sched_with(3, 2);
        s.pause_domain(DomId(2)).unwrap();
        let mut now = 0;
        run_cpu(&mut s, &mut now, rounds * 4, &[]);
        prop_assert_eq!(s.runtime(v(2, 0)), Some(0));
        prop_assert_eq!(s.runtime(v(2, 1)), Some(0));
        s.unpause_domain(DomId(2)).unwrap();
        run_cpu(&mut s, &mut now, rounds * 6, &[]);
        let shares: Vec<u64> = [v(1, 0), v(1, 1), v(2, 0), v(2, 1), v(3, 0), v(3, 1)]
            .iter()
            .map(|&x| s.runtime(x).unwrap())
            .collect();
        prop_assert!(shares[2] >= (rounds as u64 - 1) * SLICE && shares[3] >= (rounds as u64 - 1) * SLICE, "{:?}", shares);
    }

    /// Random scheduler operations keep the invariants, and only runnable vCPUs are chosen.
    #[test]
    fn random_scheduler_operations_keep_invariants(ops in proptest::collection::vec((0u8..8, 0u16..4, 0u32..3, 0u64..3_000_000), 1..200)) {
        let mut s: Scheduler<16, 2> = Scheduler::new(SLICE);
        for d in 1..=3 {
            s.add_domain(DomId(d)).unwrap();
            for n in 0..2 {
                s.add_vcpu(v(d, n), CpuId(n as u16 % 2), true).unwrap();
            }
        }
        let mut now = 0u64;
        for (op, d, n, dt) in ops {
            let x = v(d, n);
            now += dt;
            let _ = match op {
                0 => s.block(x).map(drop),
                1 => s.wake(x).map(drop),
                2 => s.pause_domain(DomId(d)).map(drop),
                3 => s.unpause_domain(DomId(d)).map(drop),
                4 => s.yield_now(x).map(drop),
                5 => s.migrate(x, CpuId((n as u16 + 1) % 2)).map(drop),
                6 => s.vcpu_down(x).map(drop).and_then(|()| s.vcpu_up(x).map(drop)),
                _ => Ok(()),
            };
            if let Err(e) = s.check() {
                prop_assert!(false, "after op {}: {}", op, e);
            }
            for cpu in [CpuId(0), CpuId(1)] {
                let dec = s.schedule(cpu, now, None);
                if let Some(next) = dec.next {
                    prop_assert_eq!(s.run_state(next), Some(RunState::Running));
                }
            }
            if let Err(e) = s.check() {
                prop_assert!(false, "after schedule: {}", e);
            }
        }
    }
}

// ---------------------------------------------------------------- timer queue

fn key(n: u32, kind: TimerKind) -> TimerKey {
    TimerKey::new(v(1, n), kind)
}

#[test]
fn timer_queue_orders_by_deadline_then_arrival() {
    let mut q: TimerQueue<8> = TimerQueue::new();
    assert_eq!(q.next_deadline(), None);
    q.set(key(0, TimerKind::Singleshot), 300).unwrap();
    q.set(key(1, TimerKind::Singleshot), 100).unwrap();
    q.set(key(2, TimerKind::Singleshot), 300).unwrap();
    q.set(key(3, TimerKind::Periodic), 200).unwrap();
    assert_eq!(q.next_deadline(), Some(100));
    assert_eq!(q.pop_expired(99), None);
    let fired: Vec<TimerKey> = core::iter::from_fn(|| q.pop_expired(300)).collect();
    assert_eq!(
        fired,
        [
            key(1, TimerKind::Singleshot),
            key(3, TimerKind::Periodic),
            key(0, TimerKind::Singleshot),
            key(2, TimerKind::Singleshot)
        ]
    );
    assert!(q.is_empty());
}

#[test]
fn timer_queue_set_replaces_and_cancel_removes() {
    let mut q: TimerQueue<2> = TimerQueue::new();
    let a = key(0, TimerKind::Singleshot);
    let b = key(0, TimerKind::Poll);
    q.set(a, 50).unwrap();
    q.set(a, 10).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q.deadline(a), Some(10));
    q.set(b, 5).unwrap();
    assert_eq!(
        q.set(key(1, TimerKind::Poll), 1),
        Err(TimerError::QueueFull)
    );
    q.set(b, 20).unwrap(); // Replacing never needs room.
    assert!(q.cancel(b));
    assert!(!q.cancel(b));
    q.cancel_vcpu(v(1, 0));
    assert!(q.is_empty());
}

proptest! {
    /// The queue pops in (deadline, arrival) order and only what is due, whatever the
    /// sequence of sets and cancels.
    #[test]
    fn timer_queue_matches_a_simple_model(ops in proptest::collection::vec((0u32..6, 0u8..3, any::<bool>(), 0u64..1000), 1..100), now in 0u64..1000) {
        let mut q: TimerQueue<18> = TimerQueue::new();
        let mut model: Vec<(u64, usize, TimerKey)> = Vec::new();
        for (i, (n, kind, set, deadline)) in ops.into_iter().enumerate() {
            let kind = [TimerKind::Singleshot, TimerKind::Periodic, TimerKind::Poll][kind as usize];
            let k = key(n, kind);
            model.retain(|e| e.2 != k);
            if set {
                q.set(k, deadline).unwrap();
                model.push((deadline, i, k));
            } else {
                q.cancel(k);
            }
        }
        model.sort_by_key(|e| (e.0, e.1));
        let due: Vec<TimerKey> = model.iter().filter(|e| e.0 <= now).map(|e| e.2).collect();
        let popped: Vec<TimerKey> = core::iter::from_fn(|| q.pop_expired(now)).collect();
        prop_assert_eq!(popped, due);
        prop_assert_eq!(q.next_deadline(), model.iter().find(|e| e.0 > now).map(|e| e.0));
    }
}

// ---------------------------------------------------------------- vCPU timers

#[test]
fn singleshot_rules() {
    let mut q: TimerQueue<6> = TimerQueue::new();
    let (me0, other) = (v(1, 0), v(1, 1));
    assert_eq!(
        set_singleshot(&mut q, me0, other, 100, 500, 0),
        Err(TimerError::NotCurrent)
    );
    assert_eq!(
        stop_singleshot(&mut q, me0, other),
        Err(TimerError::NotCurrent)
    );
    assert_eq!(TimerError::NotCurrent.errno(), XenError::Inval);
    // As in Xen 4.17, the "future" flag does not refuse a past deadline.
    set_singleshot(&mut q, me0, me0, 100, 99, VCPU_SSHOTTMR_FUTURE).unwrap();
    assert_eq!(TimerError::Past.errno(), XenError::Time);
    set_singleshot(&mut q, me0, me0, 100, 100, VCPU_SSHOTTMR_FUTURE).unwrap();
    // In the past without the flag: fires at the next expiry check.
    set_singleshot(&mut q, me0, me0, 100, 50, 0).unwrap();
    let k = q.pop_expired(100).unwrap();
    let mut t = VcpuTimers::PV_DEFAULT;
    assert_eq!(
        on_expiry(&mut q, &mut t, k, 100),
        Ok(TimerAction::RaiseTimerVirq(me0))
    );
    set_singleshot(&mut q, me0, me0, 100, 900, 0).unwrap();
    stop_singleshot(&mut q, me0, me0).unwrap();
    assert!(q.is_empty());
}

#[test]
fn set_timer_op_rules() {
    let mut q: TimerQueue<3> = TimerQueue::new();
    let me0 = v(1, 0);
    let k = TimerKey::new(me0, TimerKind::Singleshot);
    let now = 1_000_000_000;
    set_timer_op(&mut q, me0, now, now + 5).unwrap();
    assert_eq!(q.deadline(k), Some(now + 5));
    set_timer_op(&mut q, me0, now, 0).unwrap();
    assert_eq!(q.deadline(k), None, "0 stops the timer");
    set_timer_op(&mut q, me0, now, (-5i64) as u64).unwrap();
    assert_eq!(q.deadline(k), Some(now + HUGE_TIMEOUT_DELAY_NS), "negative");
    set_timer_op(&mut q, me0, now, now + (1 << 50)).unwrap();
    assert_eq!(
        q.deadline(k),
        Some(now + HUGE_TIMEOUT_DELAY_NS),
        "over 2^50 ns ahead"
    );
    set_timer_op(&mut q, me0, now, now + (1 << 50) - 1).unwrap();
    assert_eq!(q.deadline(k), Some(now + (1 << 50) - 1));
    set_timer_op(&mut q, me0, now, 7).unwrap();
    assert_eq!(q.deadline(k), Some(7), "in the past: fires at once");
}

#[test]
fn periodic_timer_rules() {
    let mut q: TimerQueue<3> = TimerQueue::new();
    let me0 = v(1, 0);
    let k = TimerKey::new(me0, TimerKind::Periodic);
    let mut t = VcpuTimers::PV_DEFAULT;
    assert_eq!(t.periodic_period, 10_000_000);
    assert_eq!(
        set_periodic(&mut q, &mut t, me0, 0, MIN_PERIOD_NS - 1),
        Err(TimerError::BadPeriod)
    );
    assert_eq!(
        set_periodic(&mut q, &mut t, me0, 0, u64::MAX),
        Err(TimerError::BadPeriod)
    );
    let now = 50_000_000;
    // Never fired: the first event is due at once.
    assert_eq!(
        set_periodic(&mut q, &mut t, me0, now, 2_000_000),
        Ok(TimerAction::RaiseTimerVirq(me0))
    );
    assert_eq!(q.deadline(k), Some(now + 2_000_000));
    // Expiry fires and re-arms a period later.
    let now = now + 2_000_000;
    assert_eq!(q.pop_expired(now), Some(k));
    assert_eq!(
        on_expiry(&mut q, &mut t, k, now),
        Ok(TimerAction::RaiseTimerVirq(me0))
    );
    assert_eq!(q.deadline(k), Some(now + 2_000_000));
    // Descheduled: the timer stops; scheduled again much later: one catch-up event.
    on_switch_out(&mut q, me0);
    assert_eq!(q.deadline(k), None);
    let later = now + 50_000_000;
    assert_eq!(
        on_switch_in(&mut q, &mut t, me0, later),
        Ok(TimerAction::RaiseTimerVirq(me0))
    );
    assert_eq!(q.deadline(k), Some(later + 2_000_000));
    // Scheduled again before the next period: no event, armed for the same deadline.
    on_switch_out(&mut q, me0);
    assert_eq!(
        on_switch_in(&mut q, &mut t, me0, later + 1),
        Ok(TimerAction::None)
    );
    assert_eq!(q.deadline(k), Some(later + 2_000_000));
    stop_periodic(&mut q, &mut t, me0);
    assert_eq!(q.deadline(k), None);
    assert_eq!(
        on_switch_in(&mut q, &mut t, me0, later * 2),
        Ok(TimerAction::None)
    );
    assert!(q.is_empty());
}

// ---------------------------------------------------------------- block and poll

/// One domain (id 1, 4 vCPUs) with event channels, the scheduler, one CPU's timers, and the
/// hypervisor's main loop reduced to what these tests need.
struct World {
    doms: Fake,
    sched: Scheduler<8, 1>,
    timers: TimerQueue<12>,
    vt: [VcpuTimers; 4],
}

const D: DomId = DomId(1);

impl World {
    fn new() -> Self {
        let mut sched = Scheduler::new(SLICE);
        sched.add_domain(D).unwrap();
        for n in 0..4 {
            sched.add_vcpu(v(1, n), CPU0, true).unwrap();
        }
        Self {
            doms: Fake::new(&[D]),
            sched,
            timers: TimerQueue::new(),
            vt: [VcpuTimers {
                periodic_period: 0,
                periodic_last_event: 0,
            }; 4],
        }
    }

    fn shared(&self) -> &crate::event::shared::SharedInfo {
        &self.doms.dom(D).shared
    }

    fn block(&mut self, n: u32) -> Blocking {
        let shared = &self.doms.doms[0].shared;
        blocking::block(shared, &mut self.sched, v(1, n)).unwrap()
    }

    fn poll(
        &mut self,
        n: u32,
        ports: &[EvtchnPort],
        timeout: u64,
    ) -> Result<Blocking, SchedOpError> {
        let d = &mut self.doms.doms[0];
        blocking::poll(
            &mut d.ev,
            &d.shared,
            &mut self.sched,
            &mut self.timers,
            v(1, n),
            ports,
            timeout,
        )
    }

    /// The timer interrupt: fire what is due, deliver VIRQ_TIMER, end timed-out polls.
    fn tick(&mut self, now: u64) {
        while let Some(k) = self.timers.pop_expired(now) {
            let t = &mut self.vt[k.vcpu.vcpu.index()];
            match on_expiry(&mut self.timers, t, k, now).unwrap() {
                TimerAction::None => {}
                TimerAction::RaiseTimerVirq(x) => {
                    let w = ev::raise_virq(&mut self.doms, x.domain, x.vcpu, Virq::TIMER);
                    let _ = self.sched.wake_all(w);
                }
                TimerAction::EndPoll(x) => {
                    if self.doms.doms[0].ev.end_poll(x.vcpu) {
                        let _ = self.sched.wake(x);
                    }
                }
            }
        }
    }

    fn state(&self, n: u32) -> RunState {
        self.sched.run_state(v(1, n)).unwrap()
    }
}

#[test]
fn block_returns_at_once_if_an_upcall_is_pending() {
    let mut w = World::new();
    w.shared().set_upcall_masked(VcpuId(0), true);
    let p = ev::bind_ipi(&mut w.doms, me(D), VcpuId(0)).unwrap();
    let _ = ev::send(&mut w.doms, me(D), p).unwrap();
    assert_eq!(w.block(0), Blocking::Ready);
    assert!(
        !w.shared().upcall_masked(VcpuId(0)),
        "block enables event delivery"
    );
    assert_eq!(w.state(0), RunState::Runnable);
}

#[test]
fn blocked_vcpu_wakes_on_an_event_for_it_only() {
    let mut w = World::new();
    let p1 = ev::bind_ipi(&mut w.doms, me(D), VcpuId(1)).unwrap();
    let p2 = ev::bind_ipi(&mut w.doms, me(D), VcpuId(2)).unwrap();
    assert_eq!(w.block(1), Blocking::Blocked(None));
    assert_eq!(w.block(2), Blocking::Blocked(None));
    let wake = ev::send(&mut w.doms, me(D), p2).unwrap();
    let _ = w.sched.wake_all(wake);
    assert_eq!(w.state(1), RunState::Blocked);
    assert_eq!(w.state(2), RunState::Runnable);
    // A masked port pends without waking.
    w.shared().set_masked(p1, true);
    let _ = w.sched.wake_all(ev::send(&mut w.doms, me(D), p1).unwrap());
    assert_eq!(w.state(1), RunState::Blocked);
    // Unmasking delivers it.
    let _ = w
        .sched
        .wake_all(ev::unmask(&mut w.doms, me(D), p1).unwrap());
    assert_eq!(w.state(1), RunState::Runnable);
    w.sched.check().unwrap();
}

#[test]
fn singleshot_timer_wakes_a_blocked_vcpu_with_virq_timer() {
    let mut w = World::new();
    let port = ev::bind_virq(&mut w.doms, me(D), Virq::TIMER.number(), VcpuId(3)).unwrap();
    set_singleshot(
        &mut w.timers,
        v(1, 3),
        v(1, 3),
        1_000,
        5_000,
        VCPU_SSHOTTMR_FUTURE,
    )
    .unwrap();
    assert_eq!(w.block(3), Blocking::Blocked(None));
    // Nothing runnable but... the others are runnable; block them too so the CPU idles.
    for n in 0..3 {
        let _ = w.block(n);
    }
    let d = w.sched.schedule(CPU0, 1_000, w.timers.next_deadline());
    assert_eq!(
        (d.next, d.until),
        (None, Some(5_000)),
        "idle until the timer"
    );
    w.tick(4_999);
    assert_eq!(w.state(3), RunState::Blocked);
    w.tick(5_000);
    assert_eq!(w.state(3), RunState::Runnable);
    assert!(crate::event::shared::is_pending(w.shared(), port));
    assert_eq!(w.sched.schedule(CPU0, 5_000, None).next, Some(v(1, 3)));
}

#[test]
fn poll_returns_at_once_for_pending_ports_and_rejects_bad_input() {
    let mut w = World::new();
    let p = ev::bind_ipi(&mut w.doms, me(D), VcpuId(0)).unwrap();
    w.shared().set_masked(p, true);
    let _ = ev::send(&mut w.doms, me(D), p).unwrap();
    assert_eq!(w.poll(0, &[EvtchnPort(9), p], 0), Ok(Blocking::Ready));
    assert_eq!(w.state(0), RunState::Runnable);
    assert!(w.doms.dom(D).ev.pollers().is_empty());
    let many = [EvtchnPort(1); MAX_POLL_PORTS + 1];
    assert_eq!(w.poll(0, &many, 0), Err(SchedOpError::TooManyPorts));
    assert_eq!(
        w.poll(0, &[EvtchnPort(4096)], 0),
        Err(SchedOpError::PortOutOfRange(EvtchnPort(4096)))
    );
    assert_eq!(SchedOpError::TooManyPorts.errno(), XenError::Inval);
    // A pending port before the bad one wins, as Xen checks them in order.
    assert_eq!(
        w.poll(0, &[p, EvtchnPort(u32::MAX)], 0),
        Ok(Blocking::Ready)
    );
    assert_eq!(w.state(0), RunState::Runnable);
    // With an unmasked upcall pending, poll returns at once too.
    w.shared().vcpu_info[1]
        .evtchn_upcall_pending
        .store(1, Ordering::SeqCst);
    assert_eq!(w.poll(1, &[EvtchnPort(9)], 0), Ok(Blocking::Ready));
    w.sched.check().unwrap();
}

#[test]
fn single_port_poll_wakes_only_for_that_port() {
    let mut w = World::new();
    let a = ev::bind_ipi(&mut w.doms, me(D), VcpuId(0)).unwrap();
    let b = ev::bind_ipi(&mut w.doms, me(D), VcpuId(0)).unwrap();
    // Masked so that the kick path (upcall_pending) does not wake it: only the poll path.
    w.shared().set_masked(a, true);
    w.shared().set_masked(b, true);
    w.shared().set_upcall_masked(VcpuId(0), true);
    assert_eq!(w.poll(0, &[a], 0), Ok(Blocking::Blocked(None)));
    let _ = w.sched.wake_all(ev::send(&mut w.doms, me(D), b).unwrap());
    assert_eq!(w.state(0), RunState::Blocked);
    let wake = ev::send(&mut w.doms, me(D), a).unwrap();
    assert!(wake.vcpus.contains(VcpuId(0)));
    let _ = w.sched.wake_all(wake);
    assert_eq!(w.state(0), RunState::Runnable);
}

#[test]
fn multi_port_poll_wakes_on_any_port_of_the_domain() {
    let mut w = World::new();
    let a = ev::bind_ipi(&mut w.doms, me(D), VcpuId(2)).unwrap();
    let b = ev::bind_ipi(&mut w.doms, me(D), VcpuId(2)).unwrap();
    let other = ev::bind_ipi(&mut w.doms, me(D), VcpuId(2)).unwrap();
    for p in [a, b, other] {
        w.shared().set_masked(p, true);
    }
    assert_eq!(w.poll(1, &[a, b], 0), Ok(Blocking::Blocked(None)));
    let wake = ev::send(&mut w.doms, me(D), other).unwrap();
    assert!(
        wake.vcpus.contains(VcpuId(1)),
        "Xen wakes multi-port pollers on any port"
    );
    let _ = w.sched.wake_all(wake);
    assert_eq!(w.state(1), RunState::Runnable);
}

#[test]
fn poll_timeout_wakes_once() {
    let mut w = World::new();
    w.shared().set_upcall_masked(VcpuId(0), true);
    assert_eq!(
        w.poll(0, &[EvtchnPort(3)], 10_000),
        Ok(Blocking::Blocked(None))
    );
    w.tick(9_999);
    assert_eq!(w.state(0), RunState::Blocked);
    w.tick(10_000);
    assert_eq!(w.state(0), RunState::Runnable);
    assert!(w.doms.dom(D).ev.pollers().is_empty());
    // A poll woken by its port leaves a stale timeout that must not wake a later block.
    assert_eq!(
        w.poll(0, &[EvtchnPort(3)], 20_000),
        Ok(Blocking::Blocked(None))
    );
    let p = ev::bind_ipi(&mut w.doms, me(D), VcpuId(1)).unwrap();
    assert_eq!(p, EvtchnPort(1));
    let three = (2..=3)
        .map(|_| ev::bind_ipi(&mut w.doms, me(D), VcpuId(1)).unwrap())
        .last()
        .unwrap();
    assert_eq!(three, EvtchnPort(3));
    let _ = w
        .sched
        .wake_all(ev::send(&mut w.doms, me(D), EvtchnPort(3)).unwrap());
    assert_eq!(w.state(0), RunState::Runnable);
    w.shared().set_upcall_masked(VcpuId(0), false);
    w.shared().vcpu_info[0]
        .evtchn_upcall_pending
        .store(0, Ordering::SeqCst);
    assert_eq!(w.block(0), Blocking::Blocked(None));
    w.tick(20_000);
    assert_eq!(w.state(0), RunState::Blocked, "stale poll timeout ignored");
}

#[test]
fn default_slice_is_credit1s() {
    assert_eq!(DEFAULT_SLICE_NS, 30_000_000);
}
