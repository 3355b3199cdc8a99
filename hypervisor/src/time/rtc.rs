//! Turning the CMOS real-time clock's calendar reading into Unix time, for the wallclock in
//! every domain's `shared_info`.

/// One reading of the RTC's registers, already decoded from BCD if needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcReading {
    /// Full year (e.g. 2026).
    pub year: u32,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    /// 0–23.
    pub hour: u32,
    /// 0–59.
    pub minute: u32,
    /// 0–59.
    pub second: u32,
}

/// Decodes a BCD byte.
pub const fn from_bcd(v: u8) -> u32 {
    (v >> 4) as u32 * 10 + (v & 0xf) as u32
}

/// Seconds since 1970-01-01 00:00:00 UTC, or `None` for an impossible date.
pub fn unix_time(r: &RtcReading) -> Option<u64> {
    if !(1..=12).contains(&r.month)
        || !(1..=31).contains(&r.day)
        || r.hour > 23
        || r.minute > 59
        || r.second > 60
        || r.year < 1970
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), shifted so March is month 0.
    let y = i64::from(r.year) - i64::from(r.month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(r.month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(r.day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs =
        days * 86_400 + i64::from(r.hour) * 3600 + i64::from(r.minute) * 60 + i64::from(r.second);
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(year: u32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<u64> {
        unix_time(&RtcReading {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    #[test]
    fn known_dates() {
        assert_eq!(at(1970, 1, 1, 0, 0, 0), Some(0));
        assert_eq!(at(2000, 3, 1, 0, 0, 0), Some(951_868_800));
        assert_eq!(at(2026, 11, 21, 15, 0, 0), Some(1_795_273_200));
        assert_eq!(at(2024, 2, 29, 12, 30, 15), Some(1_709_209_815));
        assert_eq!(at(2026, 13, 1, 0, 0, 0), None);
        assert_eq!(at(1969, 12, 31, 0, 0, 0), None);
        assert_eq!(from_bcd(0x59), 59);
    }
}
