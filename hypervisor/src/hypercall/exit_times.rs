//! The longest time any single guest exit has taken, per kind of exit: every hypercall number,
//! a user `syscall` bounced to the guest kernel, an exception, an interrupt.
//!
//! The promise this table checks: **every exit from a guest is bounded in time**, whatever the
//! guest asked for. Long work is a continuation (the guest re-executes the call with arguments
//! describing what is left), cut by [`PREEMPT_TICKS`]. The exit path stamps each exit on entry
//! and records the ticks it took on the way out; the debug key `e` and the `exit-times`
//! option print the table. Under QEMU's `-icount shift=0` a TSC tick is one guest instruction,
//! so a test can assert a bound on the table exactly.
//!
//! Entries only ever grow (`fetch_max`), so recording is lock-free and safe from any CPU.

use core::sync::atomic::{AtomicU64, Ordering};

/// Hypercall numbers with a slot of their own (Xen's are below 64).
const HYPERCALL_SLOTS: usize = 64;

/// After this many TSC ticks in one exit, a long hypercall stops at its next preemption
/// point and continues later (about 0.4 ms at 2.6 GHz; under `-icount shift=0`, a million
/// instructions).
pub const PREEMPT_TICKS: u64 = 1_000_000;

/// What kind of exit a time is recorded for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// A hypercall, by its number (numbers of 64 and above share [`ExitKind::Other`]'s slot).
    Hypercall(u64),
    /// A `syscall` from guest user space, bounced to the guest kernel.
    UserSyscall,
    /// An exception raised by the guest (bounced, emulated or fatal).
    Exception,
    /// An interrupt taken while a guest ran.
    Interrupt,
    /// A hypercall number without a slot of its own.
    Other,
}

impl ExitKind {
    fn slot(self) -> usize {
        match self {
            Self::Hypercall(nr) if nr < HYPERCALL_SLOTS as u64 => nr as usize,
            Self::Hypercall(_) | Self::Other => HYPERCALL_SLOTS + 3,
            Self::UserSyscall => HYPERCALL_SLOTS,
            Self::Exception => HYPERCALL_SLOTS + 1,
            Self::Interrupt => HYPERCALL_SLOTS + 2,
        }
    }

    fn of_slot(slot: usize) -> Self {
        match slot.checked_sub(HYPERCALL_SLOTS) {
            None => Self::Hypercall(slot as u64),
            Some(0) => Self::UserSyscall,
            Some(1) => Self::Exception,
            Some(2) => Self::Interrupt,
            Some(_) => Self::Other,
        }
    }
}

impl core::fmt::Display for ExitKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Hypercall(nr) => match u32::try_from(nr)
                .ok()
                .and_then(guest_abi::Hypercall::from_raw)
            {
                Some(h) => write!(f, "hypercall {nr} ({h:?})"),
                None => write!(f, "hypercall {nr}"),
            },
            Self::UserSyscall => f.write_str("user syscall"),
            Self::Exception => f.write_str("exception"),
            Self::Interrupt => f.write_str("interrupt"),
            Self::Other => f.write_str("hypercall >= 64"),
        }
    }
}

const SLOTS: usize = HYPERCALL_SLOTS + 4;

/// The longest exit seen per kind, in TSC ticks.
#[derive(Debug)]
pub struct ExitTimes {
    longest: [AtomicU64; SLOTS],
}

impl Default for ExitTimes {
    fn default() -> Self {
        Self::new()
    }
}

impl ExitTimes {
    /// An empty table.
    pub const fn new() -> Self {
        Self {
            longest: [const { AtomicU64::new(0) }; SLOTS],
        }
    }

    /// Records an exit of `kind` that took `ticks`.
    pub fn record(&self, kind: ExitKind, ticks: u64) {
        let slot = &self.longest[kind.slot()];
        // Almost every exit is shorter than the longest of its kind: a load and a compare,
        // and the locked update only for a new record.
        if ticks > slot.load(Ordering::Relaxed) {
            slot.fetch_max(ticks, Ordering::Relaxed);
        }
    }

    /// The longest exit of `kind` so far.
    pub fn longest(&self, kind: ExitKind) -> u64 {
        self.longest[kind.slot()].load(Ordering::Relaxed)
    }

    /// Every kind seen so far with its longest exit, in slot order.
    pub fn seen(&self) -> impl Iterator<Item = (ExitKind, u64)> + '_ {
        self.longest.iter().enumerate().filter_map(|(slot, t)| {
            let t = t.load(Ordering::Relaxed);
            (t > 0).then(|| (ExitKind::of_slot(slot), t))
        })
    }

    /// The longest exit of any kind and its kind (`None` before the first exit).
    pub fn worst(&self) -> Option<(ExitKind, u64)> {
        self.seen().max_by_key(|&(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::vec::Vec;

    #[test]
    fn keeps_the_longest_per_kind() {
        let t = ExitTimes::new();
        assert_eq!(t.worst(), None);
        t.record(ExitKind::Hypercall(17), 300);
        t.record(ExitKind::Hypercall(17), 200);
        t.record(ExitKind::Hypercall(1), 900);
        t.record(ExitKind::Exception, 50);
        t.record(ExitKind::Hypercall(9999), 7);
        assert_eq!(t.longest(ExitKind::Hypercall(17)), 300);
        assert_eq!(t.worst(), Some((ExitKind::Hypercall(1), 900)));
        let seen: Vec<_> = t.seen().collect();
        assert_eq!(
            seen,
            [
                (ExitKind::Hypercall(1), 900),
                (ExitKind::Hypercall(17), 300),
                (ExitKind::Exception, 50),
                (ExitKind::Other, 7),
            ]
        );
    }

    #[test]
    fn kinds_print_with_hypercall_names() {
        assert_eq!(
            format!("{}", ExitKind::Hypercall(18)),
            "hypercall 18 (ConsoleIo)"
        );
        assert_eq!(format!("{}", ExitKind::Hypercall(63)), "hypercall 63");
        assert_eq!(format!("{}", ExitKind::Interrupt), "interrupt");
    }
}
