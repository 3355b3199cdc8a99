//! Virtual timers: a per-CPU deadline-ordered queue and the vCPU timer hypercalls.
//!
//! Each vCPU has three timers, as in Xen: the **singleshot** timer (`VCPUOP_set_singleshot_timer`
//! and `set_timer_op`), the **periodic** timer (`VCPUOP_set_periodic_timer`; 100 Hz by default
//! for PV vCPUs; it only runs while its vCPU is scheduled, and catches up with one event when the
//! vCPU is scheduled again) and the **poll** timer (the timeout of `SCHEDOP_poll`). The first two
//! raise `VIRQ_TIMER` on the vCPU when they fire; the poll timer ends the vCPU's poll.
//!
//! Deadlines are absolute system time in nanoseconds (see [`crate::time::pvclock`]). A timer lives in
//! the queue of the CPU that set it; with several CPUs, the caller cancels a vCPU's timer in its
//! old CPU's queue when the vCPU sets it from another CPU (Xen's `migrate_timer`).

use super::VcpuRef;
use crate::event::abi::VCPU_SSHOTTMR_FUTURE;
use guest_abi::XenError;

/// Which of a vCPU's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// The singleshot timer.
    Singleshot,
    /// The periodic timer.
    Periodic,
    /// The `SCHEDOP_poll` timeout.
    Poll,
}

/// One timer: a vCPU and which of its timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    /// The vCPU.
    pub vcpu: VcpuRef,
    /// Which timer.
    pub kind: TimerKind,
}

impl TimerKey {
    /// `vcpu`'s timer of kind `kind`.
    pub const fn new(vcpu: VcpuRef, kind: TimerKind) -> Self {
        Self { vcpu, kind }
    }
}

#[derive(Clone, Copy, Debug)]
struct Armed {
    deadline: u64,
    seq: u64,
    key: TimerKey,
}

/// Why a timer operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerError {
    /// The singleshot timer can only be set or stopped by its own vCPU (`-EINVAL`).
    NotCurrent,
    /// `VCPU_SSHOTTMR_future` and the deadline has passed (`-ETIME`).
    Past,
    /// The period is below 1 ms or above `STIME_DELTA_MAX` (`-EINVAL`).
    BadPeriod,
    /// The CPU's timer queue is full: it was sized for fewer vCPUs (`-EBUSY`).
    QueueFull,
}

impl TimerError {
    /// The errno Xen returns (or ours, for `QueueFull`).
    pub const fn errno(self) -> XenError {
        match self {
            Self::NotCurrent | Self::BadPeriod => XenError::Inval,
            Self::Past => XenError::Time,
            Self::QueueFull => XenError::Busy,
        }
    }
}

/// A CPU's armed timers, earliest deadline first (ties in the order they were set), in a
/// fixed array of `N` entries: three per vCPU that runs on the CPU is enough. Each key is in the
/// queue at most once; setting it again moves it. O(1) to find the next deadline and pop an
/// expired timer, O(N) to set or cancel.
#[derive(Clone, Debug)]
pub struct TimerQueue<const N: usize> {
    /// Sorted latest first, so that the earliest is at the end.
    armed: [Armed; N],
    len: usize,
    seq: u64,
}

impl<const N: usize> Default for TimerQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> TimerQueue<N> {
    const FILLER: Armed = Armed {
        deadline: 0,
        seq: 0,
        key: TimerKey::new(
            super::scheduler::vcpu(crate::event::abi::DomId(0), crate::event::abi::VcpuId(0)),
            TimerKind::Singleshot,
        ),
    };

    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            armed: [Self::FILLER; N],
            len: 0,
            seq: 0,
        }
    }

    /// Armed timers.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is armed.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn position(&self, key: TimerKey) -> Option<usize> {
        self.armed[..self.len].iter().position(|a| a.key == key)
    }

    /// Arms `key` to fire at `deadline` (replacing its previous deadline, if any).
    pub fn set(&mut self, key: TimerKey, deadline: u64) -> Result<(), TimerError> {
        self.cancel(key);
        if self.len == N {
            return Err(TimerError::QueueFull);
        }
        self.seq += 1;
        let new = Armed {
            deadline,
            seq: self.seq,
            key,
        };
        // Latest first: the new entry goes after every entry that fires after it.
        let at = self.armed[..self.len]
            .iter()
            .position(|a| (a.deadline, a.seq) < (new.deadline, new.seq))
            .unwrap_or(self.len);
        self.armed.copy_within(at..self.len, at + 1);
        self.armed[at] = new;
        self.len += 1;
        Ok(())
    }

    /// Disarms `key`; returns whether it was armed.
    pub fn cancel(&mut self, key: TimerKey) -> bool {
        let Some(at) = self.position(key) else {
            return false;
        };
        self.armed.copy_within(at + 1..self.len, at);
        self.len -= 1;
        true
    }

    /// Disarms every timer of `vcpu` (when it is destroyed).
    pub fn cancel_vcpu(&mut self, vcpu: VcpuRef) {
        for kind in [TimerKind::Singleshot, TimerKind::Periodic, TimerKind::Poll] {
            self.cancel(TimerKey::new(vcpu, kind));
        }
    }

    /// `key`'s deadline, if armed.
    pub fn deadline(&self, key: TimerKey) -> Option<u64> {
        self.position(key).map(|i| self.armed[i].deadline)
    }

    /// The earliest deadline: program the hardware timer for it.
    pub fn next_deadline(&self) -> Option<u64> {
        self.len.checked_sub(1).map(|i| self.armed[i].deadline)
    }

    /// Disarms and returns the earliest timer if its deadline is at or before `now`. Call
    /// until `None`, handling each with [`on_expiry`].
    pub fn pop_expired(&mut self, now: u64) -> Option<TimerKey> {
        let last = self.len.checked_sub(1)?;
        if self.armed[last].deadline > now {
            return None;
        }
        self.len = last;
        Some(self.armed[last].key)
    }
}

/// PV vCPUs' default periodic timer: 100 Hz.
pub const DEFAULT_PERIOD_NS: u64 = 10_000_000;
/// Shortest period `VCPUOP_set_periodic_timer` accepts: 1 ms.
pub const MIN_PERIOD_NS: u64 = 1_000_000;
/// Longest period: `STIME_DELTA_MAX`.
pub const MAX_PERIOD_NS: u64 = i64::MAX as u64;
/// How far `set_timer_op` puts a nonsensical (negative or ~13-day) timeout: 100 ms.
pub const HUGE_TIMEOUT_DELAY_NS: u64 = 100_000_000;

/// A vCPU's periodic timer state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuTimers {
    /// The period in ns; 0 when stopped.
    pub periodic_period: u64,
    /// When the periodic timer last raised `VIRQ_TIMER`.
    pub periodic_last_event: u64,
}

impl VcpuTimers {
    /// A new PV vCPU's timers: periodic at 100 Hz, never fired.
    pub const PV_DEFAULT: Self = Self {
        periodic_period: DEFAULT_PERIOD_NS,
        periodic_last_event: 0,
    };
}

/// What the caller must do after a timer operation or expiry.
#[must_use = "a due timer event must be delivered"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerAction {
    /// Nothing.
    None,
    /// Raise `VIRQ_TIMER` on the vCPU (`event::evtchn_ops::raise_virq`) and wake what it kicks.
    RaiseTimerVirq(VcpuRef),
    /// The vCPU's poll timed out: if `EventChannels::end_poll` says it was still polling,
    /// wake it.
    EndPoll(VcpuRef),
}

/// `VCPUOP_set_singleshot_timer` by `caller` on `target`, at `now`.
pub fn set_singleshot<const N: usize>(
    queue: &mut TimerQueue<N>,
    caller: VcpuRef,
    target: VcpuRef,
    now: u64,
    timeout_abs_ns: u64,
    flags: u32,
) -> Result<(), TimerError> {
    if caller != target {
        return Err(TimerError::NotCurrent);
    }
    // Xen 4.17 ignores VCPU_SSHOTTMR_future (a deadline in the past fires at once), which
    // guests rely on; checked against real Xen by guests/selftest.
    let _ = (flags & VCPU_SSHOTTMR_FUTURE, now);
    queue.set(TimerKey::new(target, TimerKind::Singleshot), timeout_abs_ns)
}

/// `VCPUOP_stop_singleshot_timer` by `caller` on `target`.
pub fn stop_singleshot<const N: usize>(
    queue: &mut TimerQueue<N>,
    caller: VcpuRef,
    target: VcpuRef,
) -> Result<(), TimerError> {
    if caller != target {
        return Err(TimerError::NotCurrent);
    }
    queue.cancel(TimerKey::new(target, TimerKind::Singleshot));
    Ok(())
}

/// `HYPERVISOR_set_timer_op(timeout)` by `vcpu`: 0 stops the singleshot timer; a timeout that
/// is negative as a signed value, or more than 2^50 ns (~13 days) ahead, is taken as 100 ms
/// from now (Xen's workaround for wrapped Linux jiffies); anything else is the new deadline.
pub fn set_timer_op<const N: usize>(
    queue: &mut TimerQueue<N>,
    vcpu: VcpuRef,
    now: u64,
    timeout: u64,
) -> Result<(), TimerError> {
    let key = TimerKey::new(vcpu, TimerKind::Singleshot);
    if timeout == 0 {
        queue.cancel(key);
        return Ok(());
    }
    let offset = (timeout as i64).wrapping_sub(now as i64);
    let deadline = if (timeout as i64) < 0 || (offset > 0 && (offset >> 50) != 0) {
        now.saturating_add(HUGE_TIMEOUT_DELAY_NS)
    } else {
        timeout
    };
    queue.set(key, deadline)
}

/// `VCPUOP_set_periodic_timer` on `vcpu` (any vCPU of the caller's domain). Restarts the
/// period; if a whole period has passed since the last event, one is due now.
pub fn set_periodic<const N: usize>(
    queue: &mut TimerQueue<N>,
    timers: &mut VcpuTimers,
    vcpu: VcpuRef,
    now: u64,
    period_ns: u64,
) -> Result<TimerAction, TimerError> {
    if !(MIN_PERIOD_NS..=MAX_PERIOD_NS).contains(&period_ns) {
        return Err(TimerError::BadPeriod);
    }
    queue.cancel(TimerKey::new(vcpu, TimerKind::Periodic));
    timers.periodic_period = period_ns;
    periodic_work(queue, timers, vcpu, now)
}

/// `VCPUOP_stop_periodic_timer` on `vcpu`.
pub fn stop_periodic<const N: usize>(
    queue: &mut TimerQueue<N>,
    timers: &mut VcpuTimers,
    vcpu: VcpuRef,
) {
    queue.cancel(TimerKey::new(vcpu, TimerKind::Periodic));
    timers.periodic_period = 0;
}

/// Xen's `vcpu_periodic_timer_work`: if the next periodic event is due, it fires now and the
/// following one is a period from now; either way the timer is armed for the next event.
fn periodic_work<const N: usize>(
    queue: &mut TimerQueue<N>,
    timers: &mut VcpuTimers,
    vcpu: VcpuRef,
    now: u64,
) -> Result<TimerAction, TimerError> {
    if timers.periodic_period == 0 {
        return Ok(TimerAction::None);
    }
    let mut next = timers
        .periodic_last_event
        .saturating_add(timers.periodic_period);
    let mut action = TimerAction::None;
    if now >= next {
        action = TimerAction::RaiseTimerVirq(vcpu);
        timers.periodic_last_event = now;
        next = now.saturating_add(timers.periodic_period);
    }
    queue.set(TimerKey::new(vcpu, TimerKind::Periodic), next)?;
    Ok(action)
}

/// Handles a timer [`TimerQueue::pop_expired`] returned. `timers` is the state of
/// `key.vcpu` (only the periodic timer uses it).
pub fn on_expiry<const N: usize>(
    queue: &mut TimerQueue<N>,
    timers: &mut VcpuTimers,
    key: TimerKey,
    now: u64,
) -> Result<TimerAction, TimerError> {
    match key.kind {
        TimerKind::Singleshot => Ok(TimerAction::RaiseTimerVirq(key.vcpu)),
        TimerKind::Periodic => periodic_work(queue, timers, key.vcpu, now),
        TimerKind::Poll => Ok(TimerAction::EndPoll(key.vcpu)),
    }
}

/// A vCPU leaves its CPU: its periodic timer stops until it runs again.
pub fn on_switch_out<const N: usize>(queue: &mut TimerQueue<N>, vcpu: VcpuRef) {
    queue.cancel(TimerKey::new(vcpu, TimerKind::Periodic));
}

/// A vCPU is about to run: its periodic timer restarts, with one event now if it is due.
pub fn on_switch_in<const N: usize>(
    queue: &mut TimerQueue<N>,
    timers: &mut VcpuTimers,
    vcpu: VcpuRef,
    now: u64,
) -> Result<TimerAction, TimerError> {
    periodic_work(queue, timers, vcpu, now)
}
