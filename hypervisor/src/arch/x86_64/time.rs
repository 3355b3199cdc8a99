//! The hypervisor's monotonic clock: the TSC, calibrated once, scaled to nanoseconds.

use super::cpu::rdtsc;
use crate::time::scale::TimeScale;

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
pub fn pvclock() -> crate::time::pvclock::PvClock {
    let (scale, at) = CLOCK
        .get()
        .map_or((TimeScale::from_hz(1_000_000_000), 0), |c| {
            (c.scale, c.tsc_at_boot)
        });
    crate::time::pvclock::PvClock::new(scale, at)
}

/// Reads the CMOS real-time clock (UTC, as QEMU and most firmware keep it) as Unix seconds.
pub fn read_rtc() -> Option<u64> {
    use super::cpu::{inb, outb};
    use crate::time::rtc::{RtcReading, from_bcd, unix_time};
    let read = |reg: u8| -> u8 {
        // SAFETY: the RTC index/data ports belong to the hypervisor (never granted to guests);
        // selecting a register and reading it has no other effect.
        unsafe {
            outb(0x70, reg);
            inb(0x71)
        }
    };
    // Wait (boundedly) for an update in progress to end, then read a consistent snapshot.
    for _ in 0..1_000_000 {
        if read(0x0a) & 0x80 == 0 {
            break;
        }
    }
    let raw = [0x00, 0x02, 0x04, 0x07, 0x08, 0x09, 0x32].map(read);
    let status_b = read(0x0b);
    let bcd = status_b & 0x04 == 0;
    let dec = |v: u8| if bcd { from_bcd(v) } else { u32::from(v) };
    let mut hour = dec(raw[2] & 0x7f);
    if status_b & 0x02 == 0 && raw[2] & 0x80 != 0 {
        hour = (hour % 12) + 12; // 12-hour mode, PM
    }
    let century = match dec(raw[6]) {
        c @ 19..=21 => c,
        _ => 20,
    };
    unix_time(&RtcReading {
        year: century * 100 + dec(raw[5]),
        month: dec(raw[4]),
        day: dec(raw[3]),
        hour,
        minute: dec(raw[1]),
        second: dec(raw[0]),
    })
}

static WALLCLOCK: spin::Once<crate::time::pvclock::Wallclock> = spin::Once::new();

/// The wall-clock time at system time 0, from the RTC read once.
pub fn boot_wallclock() -> crate::time::pvclock::Wallclock {
    *WALLCLOCK.call_once(|| {
        crate::time::pvclock::Wallclock::from_reading(read_rtc().unwrap_or(0), 0, now())
    })
}
