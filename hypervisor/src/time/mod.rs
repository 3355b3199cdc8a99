//! Time as guests see it: TSC-to-nanosecond scaling (`scale`), the pvclock records published
//! in `vcpu_info` (`pvclock`), and the CMOS calendar turned into the wallclock (`rtc`).

pub mod pvclock;
pub mod rtc;
pub mod scale;
