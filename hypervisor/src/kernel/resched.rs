//! When the next return to a guest goes through the scheduler, and when the LAPIC timer is
//! armed: set by interrupts (the timer, a wake-up from serial input), read on every exit.

use crate::arch::x86_64::apic;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Set by the timer interrupt: the next return to a guest goes through the scheduler.
static NEED_RESCHED: AtomicBool = AtomicBool::new(false);

/// When the LAPIC timer is set to fire next (system time, ns).
static ARMED_UNTIL: AtomicU64 = AtomicU64::new(u64::MAX);

/// Makes the next return to a guest go through the scheduler (an interrupt woke a vCPU).
pub fn request_reschedule() {
    NEED_RESCHED.store(true, Ordering::Relaxed);
}

/// Whether the next return to a guest goes through the scheduler.
pub fn needed() -> bool {
    NEED_RESCHED.load(Ordering::Relaxed)
}

/// The scheduler is running: the request is being served.
pub fn clear() {
    NEED_RESCHED.store(false, Ordering::Relaxed);
}

/// When the LAPIC timer fires next (system time, ns; `u64::MAX` when not armed).
pub fn armed_until() -> u64 {
    ARMED_UNTIL.load(Ordering::Relaxed)
}

/// Programs the LAPIC timer for system time `until`.
pub fn arm_timer(until: u64, now: u64) {
    ARMED_UNTIL.store(until, Ordering::Relaxed);
    apic::arm_oneshot(until.saturating_sub(now).max(1));
}

/// Called from the timer interrupt.
pub fn timer_tick() {
    // The one-shot has fired: nothing is armed until the scheduler or a guest's timer arms it.
    ARMED_UNTIL.store(u64::MAX, Ordering::Relaxed);
    NEED_RESCHED.store(true, Ordering::Relaxed);
}
