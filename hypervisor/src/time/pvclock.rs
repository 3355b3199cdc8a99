//! Guest time: the pvclock record each vCPU sees in `vcpu_info.time`, and the wallclock in
//! `shared_info`.
//!
//! # Model
//! Each physical CPU keeps one [`PvClock`]: a record `(tsc_timestamp, system_time, scale)`. The
//! hypervisor's own system time (`NOW()`) is **the guest formula applied to that record**,
//!
//! ```text
//! system_time + ((((tsc - tsc_timestamp) << shift) * mul) >> 32)      (shift < 0: >> -shift)
//! ```
//!
//! so a deadline a guest computes from its clock means the same instant to the hypervisor's
//! timer queue. Before a vCPU runs, its `vcpu_time_info` gets a copy of its CPU's record
//! ([`publish`]) under Xen's version protocol: the version is made odd, the fields are written,
//! the version is made even again (`version_update_begin`/`_end`).
//!
//! [`PvClock::restamp`] starts a new record (periodically, so that guests' 64-bit arithmetic on
//! `tsc - tsc_timestamp` stays small, or when the scale is recalibrated). The new `system_time`
//! is the old line's value at the new stamp computed without rounding (a 32-bit fraction is
//! carried from record to record), which is never less than the rounded value a guest computes
//! from the old record. So the time a guest can observe never goes backwards across a restamp,
//! and repeated restamps do not drift from the unbroken line (property-tested below).
//!
//! Assumption: a vCPU's record is republished only while that vCPU is not executing guest code
//! (at context switch or after a hypervisor entry on its CPU). Records of different physical
//! CPUs are independent; keeping them mutually monotonic is future work (one CPU today).

use core::sync::atomic::{AtomicI8, AtomicU8, AtomicU32, AtomicU64, Ordering, fence};

use crate::time::scale::{NS_PER_SEC, TimeScale};

/// One pvclock record: what `vcpu_time_info` carries apart from its version and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRecord {
    /// TSC value at which `system_time` was exact.
    pub tsc_timestamp: u64,
    /// Nanoseconds since boot at `tsc_timestamp`.
    pub system_time: u64,
    /// TSC-to-nanosecond scale (`tsc_to_system_mul`, `tsc_shift`).
    pub scale: TimeScale,
}

impl TimeRecord {
    /// The system time a guest computes from this record at `tsc`. A TSC below the stamp
    /// counts as the stamp itself (a guest would wrap; the hypervisor never publishes a stamp
    /// in a CPU's future). Saturates instead of overflowing.
    pub fn system_time_at(&self, tsc: u64) -> u64 {
        let delta = tsc.saturating_sub(self.tsc_timestamp);
        self.system_time
            .saturating_add(self.scale.ticks_to_ns(delta))
    }
}

/// A physical CPU's clock: the current record plus the sub-nanosecond remainder that keeps
/// restamping exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvClock {
    record: TimeRecord,
    /// Fraction of a nanosecond (in units of 2^-32 ns) not published in `system_time`.
    frac: u32,
}

impl PvClock {
    /// A clock that reads 0 at `boot_tsc`.
    pub fn new(scale: TimeScale, boot_tsc: u64) -> Self {
        Self {
            record: TimeRecord {
                tsc_timestamp: boot_tsc,
                system_time: 0,
                scale,
            },
            frac: 0,
        }
    }

    /// The current record, to publish to the vCPUs that run on this CPU.
    pub fn record(&self) -> TimeRecord {
        self.record
    }

    /// The hypervisor's system time at `tsc` (`NOW()`): exactly what a guest computes.
    pub fn now(&self, tsc: u64) -> u64 {
        self.record.system_time_at(tsc)
    }

    /// Starts a new record at `tsc` (clamped to be no earlier than the current stamp) with
    /// `scale` from then on.
    pub fn restamp(&mut self, tsc: u64, scale: TimeScale) {
        let old = self.record;
        let tsc = tsc.max(old.tsc_timestamp);
        // Nanoseconds since the old stamp, in 32.32 fixed point, before any rounding.
        let product = u128::from(tsc - old.tsc_timestamp) * u128::from(old.scale.mul);
        let elapsed = if old.scale.shift >= 0 {
            product << old.scale.shift
        } else {
            product >> -i32::from(old.scale.shift)
        };
        let exact = ((u128::from(old.system_time) << 32) | u128::from(self.frac)) + elapsed;
        let system_time = u64::try_from(exact >> 32).unwrap_or(u64::MAX);
        self.frac = exact as u32;
        self.record = TimeRecord {
            tsc_timestamp: tsc,
            system_time,
            scale,
        };
    }
}

/// Xen's `version_update_begin`: the next odd version.
pub const fn version_update_begin(v: u32) -> u32 {
    v.wrapping_add(1) | 1
}

/// Xen's `version_update_end`: the even version after an odd one.
pub const fn version_update_end(v: u32) -> u32 {
    v.wrapping_add(1)
}

/// Xen's `struct vcpu_time_info` with every field atomic. 32 bytes.
#[repr(C)]
#[derive(Debug, Default)]
pub struct VcpuTimeInfo {
    /// `version`: odd while an update is in progress.
    pub version: AtomicU32,
    _pad0: AtomicU32,
    /// `tsc_timestamp`.
    pub tsc_timestamp: AtomicU64,
    /// `system_time`.
    pub system_time: AtomicU64,
    /// `tsc_to_system_mul`.
    pub tsc_to_system_mul: AtomicU32,
    /// `tsc_shift`.
    pub tsc_shift: AtomicI8,
    /// `flags` (`XEN_PVCLOCK_*`).
    pub flags: AtomicU8,
    _pad1: [AtomicU8; 2],
}

/// Where a vCPU's time record is published: `vcpu_info.time`, or a registered secondary copy.
pub trait TimeInfoSink {
    /// The `version` word.
    fn version(&self) -> &AtomicU32;
    /// Writes every field but `version`.
    fn store_record(&self, record: &TimeRecord, flags: u8);
}

/// Xen's update protocol for guest-read records: make `version` odd, write, make it even
/// again, with the ordering a guest's seqlock-style read relies on.
fn versioned_update(version: &AtomicU32, write: impl FnOnce()) {
    let begin = version_update_begin(version.load(Ordering::Relaxed));
    version.store(begin, Ordering::Relaxed);
    fence(Ordering::Release);
    write();
    version.store(version_update_end(begin), Ordering::Release);
}

impl TimeInfoSink for VcpuTimeInfo {
    fn version(&self) -> &AtomicU32 {
        &self.version
    }

    fn store_record(&self, record: &TimeRecord, flags: u8) {
        self.tsc_timestamp
            .store(record.tsc_timestamp, Ordering::Relaxed);
        self.system_time
            .store(record.system_time, Ordering::Relaxed);
        self.tsc_to_system_mul
            .store(record.scale.mul, Ordering::Relaxed);
        self.tsc_shift.store(record.scale.shift, Ordering::Relaxed);
        self.flags.store(flags, Ordering::Relaxed);
    }
}

/// Publishes `record` to `dst` under the version protocol (odd, fields, even).
pub fn publish<S: TimeInfoSink + ?Sized>(dst: &S, record: &TimeRecord, flags: u8) {
    versioned_update(dst.version(), || dst.store_record(record, flags));
}

/// What a guest reads from `vcpu_time_info`: `None` if an update is in progress or happened
/// during the read (the guest retries). Used by tests and by hypervisor self-checks.
pub fn read(src: &VcpuTimeInfo) -> Option<(TimeRecord, u8)> {
    let v1 = src.version.load(Ordering::Acquire);
    let record = TimeRecord {
        tsc_timestamp: src.tsc_timestamp.load(Ordering::Relaxed),
        system_time: src.system_time.load(Ordering::Relaxed),
        scale: TimeScale {
            mul: src.tsc_to_system_mul.load(Ordering::Relaxed),
            shift: src.tsc_shift.load(Ordering::Relaxed),
        },
    };
    let flags = src.flags.load(Ordering::Relaxed);
    fence(Ordering::Acquire);
    let v2 = src.version.load(Ordering::Relaxed);
    (v1 == v2 && v1 & 1 == 0).then_some((record, flags))
}

/// The wallclock at system time 0 (boot), as `shared_info` publishes it: a guest's wall time
/// is this plus its system time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wallclock {
    /// Seconds since the Unix epoch.
    pub sec: u64,
    /// Nanoseconds, below 10^9.
    pub nsec: u32,
}

impl Wallclock {
    /// The boot wallclock, given that the wall time read `sec.nsec` when the system time was
    /// `system_time` ns. Clamps at the epoch.
    pub fn from_reading(sec: u64, nsec: u32, system_time: u64) -> Self {
        let wall = u128::from(sec) * u128::from(NS_PER_SEC) + u128::from(nsec);
        let boot = wall.saturating_sub(u128::from(system_time));
        Self::from_ns(boot)
    }

    /// The wall time at system time `system_time`.
    pub fn at(&self, system_time: u64) -> Self {
        let boot = u128::from(self.sec) * u128::from(NS_PER_SEC) + u128::from(self.nsec);
        Self::from_ns(boot + u128::from(system_time))
    }

    fn from_ns(ns: u128) -> Self {
        let per_sec = u128::from(NS_PER_SEC);
        Self {
            sec: u64::try_from(ns / per_sec).unwrap_or(u64::MAX),
            nsec: (ns % per_sec) as u32,
        }
    }
}

/// Where the wallclock is published: `shared_info.wc_*`.
pub trait WallclockSink {
    /// The `wc_version` word.
    fn wc_version(&self) -> &AtomicU32;
    /// Writes `wc_sec`, `wc_nsec`, `wc_sec_hi`.
    fn store_wc(&self, sec: u32, nsec: u32, sec_hi: u32);
}

/// Xen's `update_domain_wallclock_time`: publishes `wc` shifted by the domain's time offset
/// (`XEN_DOMCTL_settimeoffset`, in seconds; the result is clamped at the epoch).
pub fn publish_wallclock<S: WallclockSink + ?Sized>(dst: &S, wc: Wallclock, offset_secs: i64) {
    let sec = wc.sec.saturating_add_signed(offset_secs);
    versioned_update(dst.wc_version(), || {
        dst.store_wc(sec as u32, wc.nsec, (sec >> 32) as u32);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};
    use proptest::prelude::*;

    /// The `wc_*` words of a `shared_info`, as a sink for the tests.
    #[derive(Default)]
    struct WcWords {
        wc_version: AtomicU32,
        wc_sec: AtomicU32,
        wc_nsec: AtomicU32,
        wc_sec_hi: AtomicU32,
    }

    impl WallclockSink for WcWords {
        fn wc_version(&self) -> &AtomicU32 {
            &self.wc_version
        }

        fn store_wc(&self, sec: u32, nsec: u32, sec_hi: u32) {
            self.wc_sec.store(sec, Ordering::Relaxed);
            self.wc_nsec.store(nsec, Ordering::Relaxed);
            self.wc_sec_hi.store(sec_hi, Ordering::Relaxed);
        }
    }
    use std::vec::Vec;

    #[test]
    fn time_info_layout_matches_xen_headers() {
        assert_eq!(size_of::<VcpuTimeInfo>(), 32);
        assert_eq!(offset_of!(VcpuTimeInfo, tsc_timestamp), 8);
        assert_eq!(offset_of!(VcpuTimeInfo, system_time), 16);
        assert_eq!(offset_of!(VcpuTimeInfo, tsc_to_system_mul), 24);
        assert_eq!(offset_of!(VcpuTimeInfo, tsc_shift), 28);
        assert_eq!(offset_of!(VcpuTimeInfo, flags), 29);
    }

    #[test]
    fn version_protocol_is_odd_during_update_even_after() {
        assert_eq!(version_update_begin(0), 1);
        assert_eq!(version_update_end(1), 2);
        assert_eq!(version_update_begin(2), 3);
        // A torn odd version left by a crashed writer still ends even.
        assert_eq!(version_update_begin(5), 7);
        assert_eq!(version_update_end(u32::MAX), 0);

        /// Records the version seen while the body is stored.
        struct Spy {
            inner: VcpuTimeInfo,
            seen_during_body: AtomicU32,
        }
        impl TimeInfoSink for Spy {
            fn version(&self) -> &AtomicU32 {
                &self.inner.version
            }
            fn store_record(&self, r: &TimeRecord, flags: u8) {
                let v = self.inner.version.load(Ordering::Relaxed);
                self.seen_during_body.store(v, Ordering::Relaxed);
                self.inner.store_record(r, flags);
            }
        }
        let spy = Spy {
            inner: VcpuTimeInfo::default(),
            seen_during_body: AtomicU32::new(0),
        };
        let rec = PvClock::new(TimeScale::from_hz(2_000_000_000), 100).record();
        for round in 1..=3u32 {
            publish(&spy, &rec, 1);
            assert_eq!(spy.seen_during_body.load(Ordering::Relaxed) & 1, 1);
            assert_eq!(spy.inner.version.load(Ordering::Relaxed), 2 * round);
        }
        assert_eq!(read(&spy.inner), Some((rec, 1)));
    }

    #[test]
    fn guest_read_rejects_odd_versions() {
        let info = VcpuTimeInfo::default();
        info.version.store(3, Ordering::Relaxed);
        assert_eq!(read(&info), None);
    }

    #[test]
    fn clock_counts_from_boot_and_matches_the_guest_formula() {
        let scale = TimeScale::from_hz(3_000_000_000);
        let clock = PvClock::new(scale, 1_000);
        assert_eq!(clock.now(1_000), 0);
        assert_eq!(clock.now(500), 0, "before the stamp counts as the stamp");
        let one_sec = clock.now(1_000 + 3_000_000_000);
        assert!(one_sec.abs_diff(NS_PER_SEC) <= 2, "{one_sec}");
        // The guest formula, written out as the header states it.
        let r = clock.record();
        let tsc = 1_000 + 12_345_678u64;
        let delta = u128::from(tsc - r.tsc_timestamp);
        let shifted = if r.scale.shift >= 0 {
            delta << r.scale.shift
        } else {
            delta >> -r.scale.shift
        };
        let guest = r.system_time + ((shifted * u128::from(r.scale.mul)) >> 32) as u64;
        assert_eq!(clock.now(tsc), guest);
    }

    #[test]
    fn restamping_does_not_drift() {
        let scale = TimeScale::from_hz(2_394_000_017);
        let mut restamped = PvClock::new(scale, 0);
        let unbroken = PvClock::new(scale, 0);
        let step = 2_394_000_017 / 7;
        for i in 1..=10_000u64 {
            restamped.restamp(i * step, scale);
        }
        let end = 10_001 * step;
        assert!(restamped.now(end).abs_diff(unbroken.now(end)) <= 1);
    }

    #[test]
    fn wallclock_is_boot_time_and_publishes_versioned() {
        let wc = Wallclock::from_reading(1_700_000_000, 250_000_000, 1_500_000_000);
        assert_eq!(
            wc,
            Wallclock {
                sec: 1_699_999_998,
                nsec: 750_000_000
            }
        );
        assert_eq!(
            wc.at(1_500_000_000),
            Wallclock {
                sec: 1_700_000_000,
                nsec: 250_000_000
            }
        );
        let s = WcWords::default();
        publish_wallclock(&s, wc, 3);
        assert_eq!(s.wc_version.load(Ordering::Relaxed), 2);
        assert_eq!(s.wc_sec.load(Ordering::Relaxed), 1_700_000_001);
        assert_eq!(s.wc_nsec.load(Ordering::Relaxed), 750_000_000);
        assert_eq!(s.wc_sec_hi.load(Ordering::Relaxed), 0);
        // Beyond 2106: the high word carries.
        publish_wallclock(
            &s,
            Wallclock {
                sec: 1 << 33,
                nsec: 0,
            },
            -1,
        );
        assert_eq!(s.wc_version.load(Ordering::Relaxed), 4);
        assert_eq!(s.wc_sec.load(Ordering::Relaxed), u32::MAX);
        assert_eq!(s.wc_sec_hi.load(Ordering::Relaxed), 1);
        // Offsets before the epoch clamp.
        publish_wallclock(&s, Wallclock { sec: 5, nsec: 0 }, -10);
        assert_eq!(s.wc_sec.load(Ordering::Relaxed), 0);
    }

    /// A step of the clock's life: time passes (the guest reads), or the clock is restamped,
    /// possibly with a recalibrated rate.
    #[derive(Clone, Debug)]
    enum Step {
        Read(u64),
        Restamp { after: u64, new_hz: Option<u64> },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u64..5_000_000_000).prop_map(Step::Read),
            (
                0u64..5_000_000_000,
                proptest::option::of(500_000_000u64..5_000_000_000)
            )
                .prop_map(|(after, new_hz)| Step::Restamp { after, new_hz }),
        ]
    }

    proptest! {
        /// Guest-visible time never goes backwards: every read, through the published record
        /// and the guest's version protocol, is at least the previous one, across restamps
        /// with or without a new rate.
        #[test]
        fn guest_time_is_monotonic_across_updates(
            hz in 500_000_000u64..5_000_000_000,
            boot in 0u64..1 << 50,
            steps in proptest::collection::vec(step(), 1..200),
        ) {
            let mut clock = PvClock::new(TimeScale::from_hz(hz), boot);
            let info = VcpuTimeInfo::default();
            publish(&info, &clock.record(), 0);
            let mut tsc = boot;
            let mut last = 0u64;
            let mut seen = Vec::new();
            for s in steps {
                match s {
                    Step::Read(dt) => tsc += dt,
                    Step::Restamp { after, new_hz } => {
                        tsc += after;
                        let scale = new_hz.map_or(clock.record().scale, TimeScale::from_hz);
                        clock.restamp(tsc, scale);
                        publish(&info, &clock.record(), 0);
                    }
                }
                let (rec, _) = read(&info).expect("no update in progress");
                let t = rec.system_time_at(tsc);
                prop_assert!(t >= last, "time went back from {} to {} at tsc {}", last, t, tsc);
                prop_assert_eq!(t, clock.now(tsc), "guest and hypervisor disagree");
                last = t;
                seen.push(t);
            }
            prop_assert!(seen.windows(2).all(|w| w[0] <= w[1]));
        }

        /// Restamping at the same rate is invisible: the time equals that of an unbroken
        /// record to within a nanosecond, however often it happens.
        #[test]
        fn restamps_at_the_same_rate_track_the_unbroken_line(
            hz in 500_000_000u64..5_000_000_000,
            gaps in proptest::collection::vec(0u64..10_000_000_000, 1..100),
        ) {
            let scale = TimeScale::from_hz(hz);
            let mut clock = PvClock::new(scale, 0);
            let line = PvClock::new(scale, 0);
            let mut tsc = 0u64;
            for g in gaps {
                tsc += g;
                clock.restamp(tsc, scale);
                prop_assert!(clock.now(tsc) <= line.now(tsc) + 1);
                prop_assert!(clock.now(tsc) + 1 >= line.now(tsc));
            }
        }
    }
}
