//! Storage that belongs to the (single, for now) physical CPU.

use core::cell::UnsafeCell;

/// A value owned by one CPU: mutated only during that CPU's bring-up or from code that runs
/// with interrupts disabled on it. Hardware (GDTR, IDTR, TR) may hold its address.
#[repr(transparent)]
pub struct CpuLocal<T>(UnsafeCell<T>);

// SAFETY: each `CpuLocal` is only touched by the CPU that owns it (there is one CPU today), so
// there are no concurrent accesses to synchronise.
unsafe impl<T> Sync for CpuLocal<T> {}

impl<T> CpuLocal<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// A raw pointer to the value, for the owner CPU to read or write.
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// A 16-byte aligned stack of `N` bytes.
#[repr(C, align(16))]
pub struct Stack<const N: usize>(pub [u8; N]);

impl<const N: usize> CpuLocal<Stack<N>> {
    /// The address just past the stack's last byte, where a downward-growing stack starts.
    pub fn top(&self) -> u64 {
        self.get() as u64 + N as u64
    }
}
