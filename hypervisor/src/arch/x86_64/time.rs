//! The hypervisor's monotonic clock: the TSC, calibrated once, scaled to nanoseconds.

use super::cpu::rdtsc;
use crate::time::TimeScale;

struct Clock {
    tsc_at_boot: u64,
    tsc_hz: u64,
    scale: TimeScale,
}

static CLOCK: spin::Once<Clock> = spin::Once::new();

/// Starts the clock for a TSC running at `tsc_hz`.
pub fn init(tsc_hz: u64) {
    CLOCK.call_once(|| Clock {
        tsc_at_boot: rdtsc(),
        tsc_hz,
        scale: TimeScale::from_hz(tsc_hz),
    });
}

/// Nanoseconds since [`init`] (0 before it).
pub fn now() -> u64 {
    CLOCK.get().map_or(0, |c| {
        c.scale.ticks_to_ns(rdtsc().saturating_sub(c.tsc_at_boot))
    })
}

/// The calibrated TSC frequency (0 before [`init`]).
pub fn tsc_hz() -> u64 {
    CLOCK.get().map_or(0, |c| c.tsc_hz)
}

/// Busy-waits for `ns` nanoseconds.
pub fn spin_for(ns: u64) {
    let until = now().saturating_add(ns);
    while now() < until {
        core::hint::spin_loop();
    }
}

/// The guest-visible clock, reading 0 when the hypervisor's clock started, with the same
/// scale: the hypervisor and its guests agree on system time.
pub fn pvclock() -> crate::pvclock::PvClock {
    let (scale, at) = CLOCK
        .get()
        .map_or((TimeScale::from_hz(1_000_000_000), 0), |c| {
            (c.scale, c.tsc_at_boot)
        });
    crate::pvclock::PvClock::new(scale, at)
}
