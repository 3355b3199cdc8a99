//! A set of up to 64 numbered slots (pages of a mapping window), taken and given back
//! without locks: one bit per slot in an atomic word.

use core::sync::atomic::{AtomicU64, Ordering};

/// Which of a window's slots are in use.
#[derive(Debug)]
pub struct Slots(AtomicU64);

impl Slots {
    /// No slot in use.
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Takes the lowest free slot below `count` (at most 64).
    pub fn take(&self, count: usize) -> Option<usize> {
        let mut used = self.0.load(Ordering::Relaxed);
        loop {
            let slot = (!used).trailing_zeros() as usize;
            if slot >= count.min(64) {
                return None;
            }
            match self.0.compare_exchange(
                used,
                used | (1 << slot),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(slot),
                Err(now) => used = now,
            }
        }
    }

    /// Gives a slot back.
    pub fn give(&self, slot: usize) {
        if slot < 64 {
            self.0.fetch_and(!(1 << slot), Ordering::Relaxed);
        }
    }
}
