//! Converting TSC ticks to nanoseconds with the multiply-and-shift scheme Xen's pvclock uses
//! (`vcpu_time_info.tsc_to_system_mul` / `tsc_shift`), so that the hypervisor's own clock and
//! the one it will publish to guests are computed the same way.

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// A tick-to-nanosecond scale: `ns = ((ticks << shift) * mul) >> 32`, where a negative shift
/// shifts right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeScale {
    /// 32.32 fixed-point multiplier, always in `[2^31, 2^32)` after normalisation.
    pub mul: u32,
    /// Pre-shift applied to the tick count.
    pub shift: i8,
}

impl TimeScale {
    /// The scale for a counter running at `hz` ticks per second. `hz` must be non-zero.
    pub fn from_hz(hz: u64) -> Self {
        let mut ticks = hz.max(1);
        let mut shift: i8 = 0;
        // Bring the rate into (NS_PER_SEC/2, NS_PER_SEC*2] so the multiplier is in range.
        while ticks > 2 * NS_PER_SEC {
            ticks >>= 1;
            shift -= 1;
        }
        while ticks <= NS_PER_SEC {
            ticks <<= 1;
            shift += 1;
        }
        // ticks is in (1e9, 2e9], so 1e9 / ticks is in [0.5, 1): a valid 0.32 fraction.
        let mul = ((u128::from(NS_PER_SEC) << 32) / u128::from(ticks)) as u32;
        Self { mul, shift }
    }

    /// Converts a tick delta to nanoseconds. Never overflows: the product is taken in 128 bits
    /// and saturates at `u64::MAX`.
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        let shifted = if self.shift >= 0 {
            u128::from(ticks) << self.shift
        } else {
            u128::from(ticks >> (-self.shift) as u32)
        };
        let ns = (shifted * u128::from(self.mul)) >> 32;
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_second_of_ticks_is_one_second() {
        for hz in [
            1_000_000,
            14_318_180,
            100_000_000,
            1_000_000_000,
            2_400_000_000,
            3_700_000_123,
        ] {
            let s = TimeScale::from_hz(hz);
            let ns = s.ticks_to_ns(hz);
            let err = ns.abs_diff(NS_PER_SEC);
            assert!(err <= 2, "hz {hz}: {ns} ns (scale {s:?})");
            assert!(s.mul >= 1 << 31, "multiplier normalised");
        }
    }

    proptest! {
        #[test]
        fn scaling_is_monotonic(hz in 1_000_000u64..10_000_000_000, a in any::<u64>(), b in any::<u64>()) {
            let s = TimeScale::from_hz(hz);
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(s.ticks_to_ns(lo) <= s.ticks_to_ns(hi));
        }
    }
}
