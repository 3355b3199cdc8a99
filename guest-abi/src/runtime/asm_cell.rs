//! [`AsmCell`]: a static shared between a guest's Rust code and its assembly (trap handlers,
//! callbacks), read and written with volatile accesses.

use core::cell::UnsafeCell;

/// A static that assembly writes and Rust reads (or the other way round).
#[repr(transparent)]
#[derive(Debug)]
pub struct AsmCell<T>(UnsafeCell<T>);

// SAFETY: the runtime's guests have one vCPU with events masked (module assumptions of
// `runtime`): their assembly runs only synchronously, inside the code that provokes it, so its
// accesses never overlap Rust's.
unsafe impl<T> Sync for AsmCell<T> {}

impl<T: Copy> AsmCell<T> {
    /// The current value (a volatile read: the assembly writes it behind Rust's back).
    pub fn get(&self) -> T {
        // SAFETY: the pointer is valid and aligned; see the `Sync` impl for races.
        unsafe { self.0.get().read_volatile() }
    }

    /// Replaces the value.
    pub fn set(&self, value: T) {
        // SAFETY: as for `get`.
        unsafe { self.0.get().write_volatile(value) }
    }
}

impl<T> AsmCell<T> {
    /// A cell holding `value`.
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// The address of the value.
    pub fn addr(&self) -> u64 {
        self.0.get() as u64
    }
}
