//! The arithmetic of a measurement, kept pure so that host tests check it: the cost of one
//! operation from a repetition's total, and the median and spread over repetitions.

/// Median, minimum and maximum of the per-operation costs of several repetitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The middle value (the lower of the two middle ones for an even count).
    pub median: u64,
    /// The smallest value.
    pub min: u64,
    /// The largest value.
    pub max: u64,
}

/// Summarises `samples` (sorting them in place); `None` if there are none.
pub fn summarize(samples: &mut [u64]) -> Option<Summary> {
    samples.sort_unstable();
    let (&min, &max) = (samples.first()?, samples.last()?);
    Some(Summary {
        median: samples[(samples.len() - 1) / 2],
        min,
        max,
    })
}

/// The cost of one operation when `ops` of them took `total` ticks, rounded to the nearest
/// tick (`ops` = 0 counts as 1).
pub fn per_op(total: u64, ops: u64) -> u64 {
    let ops = ops.max(1);
    total.saturating_add(ops / 2) / ops
}

/// TSC kHz from a pvclock record's `tsc_to_system_mul` and `tsc_shift`: nanoseconds are
/// `((tsc << shift) * mul) >> 32` (a right shift for a negative `shift`), so the TSC ticks
/// `2^32 * 10^6 / (mul * 2^shift)` times per millisecond. `None` for a zero `mul`.
pub fn tsc_khz(mul: u32, shift: i8) -> Option<u64> {
    if mul == 0 {
        return None;
    }
    let khz = (1_000_000u64 << 32) / u64::from(mul);
    Some(match shift {
        s if s >= 0 => khz >> s.min(63),
        s => khz << (-s).min(16),
    })
}

/// The pvclock formula: system time `system_time` plus `delta` TSC ticks, scaled by
/// `(delta << shift) * mul >> 32` (a right shift for a negative `shift`).
pub fn pvclock_ns(system_time: u64, delta: u64, mul: u32, shift: i8) -> u64 {
    let delta = if shift >= 0 {
        delta << shift.min(63)
    } else {
        delta >> (-shift).min(63)
    };
    let scaled = (u128::from(delta) * u128::from(mul)) >> 32;
    system_time.wrapping_add(scaled as u64)
}

/// How late `at` is against `deadline` (0 if early).
pub fn lateness(at: u64, deadline: u64) -> u64 {
    at.saturating_sub(deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_odd_and_even_counts() {
        let mut odd = [30, 10, 20, 50, 40];
        assert_eq!(
            summarize(&mut odd),
            Some(Summary {
                median: 30,
                min: 10,
                max: 50
            })
        );
        let mut even = [4, 1, 3, 2];
        assert_eq!(summarize(&mut even).map(|s| s.median), Some(2));
        assert_eq!(summarize(&mut []), None);
    }

    #[test]
    fn per_op_rounds() {
        assert_eq!(per_op(1000, 3), 333);
        assert_eq!(per_op(1001, 2), 501);
        assert_eq!(per_op(7, 0), 7);
    }

    #[test]
    fn pvclock_scales_and_shifts() {
        // 1 GHz TSC: mul 2^31, shift 1 gives one ns per tick.
        assert_eq!(pvclock_ns(1000, 250, 1 << 31, 1), 1250);
        // 2 GHz: shift 0, half a ns per tick.
        assert_eq!(pvclock_ns(0, 250, 1 << 31, 0), 125);
        assert_eq!(pvclock_ns(0, 1000, 1 << 31, -1), 250);
        assert_eq!(lateness(1500, 1000), 500);
        assert_eq!(lateness(900, 1000), 0);
    }

    #[test]
    fn tsc_khz_of_known_clocks() {
        // 1 GHz: one tick per nanosecond, mul = 2^32 >> 1 with shift 1.
        assert_eq!(tsc_khz(1 << 31, 1), Some(1_000_000));
        // 2 GHz: half a nanosecond per tick.
        assert_eq!(tsc_khz(1 << 31, 0), Some(2_000_000));
        // 500 MHz: two nanoseconds per tick.
        assert_eq!(tsc_khz(1 << 31, 2), Some(500_000));
        assert_eq!(tsc_khz(1 << 31, -1), Some(4_000_000));
        assert_eq!(tsc_khz(0, 0), None);
    }
}
