//! Access to guest virtual memory. Every guest pointer the hypervisor follows goes through
//! [`GuestMemory`], whose implementations refuse the hypervisor's own range and non-canonical
//! addresses before touching anything, and turn a fault into [`GuestFault`] (`-EFAULT`).

use crate::mm::layout::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};
use guest_abi::XenError;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// A guest address that could not be read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestFault {
    /// The first address that failed.
    pub va: u64,
}

impl From<GuestFault> for XenError {
    fn from(_: GuestFault) -> Self {
        XenError::Fault
    }
}

/// Whether `va` is canonical for 48-bit virtual addresses.
pub const fn is_canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == 0x1_ffff
}

/// Xen's `access_ok` for a 64-bit PV guest, which some hypercalls check a guest array with
/// before touching it (an answer of -EFAULT up front): `bytes` from `va` start, and end, below
/// the lower half's top or at or above the hypervisor's range (`None`, a size that overflowed,
/// is refused).
pub fn access_ok(va: u64, bytes: Option<u64>) -> bool {
    let ok = |a: u64| !(1 << 47..HYPERVISOR_VIRT_END).contains(&a);
    match bytes {
        Some(0) => ok(va),
        Some(n) => ok(va) && ok(va.wrapping_add(n)),
        None => false,
    }
}

/// Refuses ranges that wrap, are non-canonical at either end, or touch the hypervisor's slots.
pub fn check_guest_range(va: u64, len: usize) -> Result<(), GuestFault> {
    if len == 0 {
        return Ok(());
    }
    let fault = GuestFault { va };
    let last = va.checked_add(len as u64 - 1).ok_or(fault)?;
    if !is_canonical(va) || !is_canonical(last) {
        return Err(fault);
    }
    // A range of canonical ends that spans the non-canonical hole is refused by the check above
    // only if an end is inside it; a range from the low half to the high half must cross it.
    if (va >> 63) != (last >> 63) {
        return Err(fault);
    }
    if va < HYPERVISOR_VIRT_END && last >= HYPERVISOR_VIRT_START {
        return Err(fault);
    }
    Ok(())
}

/// A guest's virtual address space, as the hypervisor may touch it.
pub trait GuestMemory {
    /// Copies `buf.len()` bytes from guest address `va`.
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), GuestFault>;
    /// Copies `buf` to guest address `va`.
    fn write(&mut self, va: u64, buf: &[u8]) -> Result<(), GuestFault>;

    /// Reads a `T` from guest address `va`.
    fn read_obj<T: FromBytes + IntoBytes>(&mut self, va: u64) -> Result<T, GuestFault>
    where
        Self: Sized,
    {
        let mut value = T::new_zeroed();
        self.read(va, value.as_mut_bytes())?;
        Ok(value)
    }

    /// Writes `value` to guest address `va`.
    fn write_obj<T: IntoBytes + Immutable>(&mut self, va: u64, value: &T) -> Result<(), GuestFault>
    where
        Self: Sized,
    {
        self.write(va, value.as_bytes())
    }
}

#[cfg(any(test, feature = "test-doubles"))]
pub mod fake {
    //! A sparse guest memory for host tests (and the test doubles of `crate::testing`).
    extern crate std;
    use super::*;
    use std::collections::BTreeMap;

    /// Byte-addressed fake guest memory: only written (or `map`ped) bytes are readable.
    #[derive(Default)]
    pub struct FakeGuest {
        bytes: BTreeMap<u64, u8>,
    }

    impl FakeGuest {
        /// Makes `[va, va + len)` readable and writable, zero-filled.
        pub fn map(&mut self, va: u64, len: u64) {
            for a in va..va + len {
                self.bytes.entry(a).or_insert(0);
            }
        }
    }

    impl GuestMemory for FakeGuest {
        fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), GuestFault> {
            check_guest_range(va, buf.len())?;
            for (i, b) in buf.iter_mut().enumerate() {
                let a = va + i as u64;
                *b = *self.bytes.get(&a).ok_or(GuestFault { va: a })?;
            }
            Ok(())
        }

        fn write(&mut self, va: u64, buf: &[u8]) -> Result<(), GuestFault> {
            check_guest_range(va, buf.len())?;
            for (i, b) in buf.iter().enumerate() {
                let a = va + i as u64;
                *self.bytes.get_mut(&a).ok_or(GuestFault { va: a })? = *b;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hypervisor_range_and_non_canonical_are_refused() {
        assert!(check_guest_range(0x1000, 8).is_ok());
        assert!(check_guest_range(0xffff_ffff_8000_0000, 4096).is_ok());
        assert!(check_guest_range(HYPERVISOR_VIRT_START, 1).is_err());
        assert!(
            check_guest_range(HYPERVISOR_VIRT_START - 8, 16).is_err(),
            "straddles"
        );
        assert!(check_guest_range(HYPERVISOR_VIRT_END - 1, 1).is_err());
        assert!(check_guest_range(HYPERVISOR_VIRT_END, 8).is_ok());
        assert!(
            check_guest_range(0x0000_8000_0000_0000, 1).is_err(),
            "non-canonical"
        );
        assert!(
            check_guest_range(0x0000_7fff_ffff_fff8, 16).is_err(),
            "runs into the hole"
        );
        assert!(check_guest_range(u64::MAX - 3, 8).is_err(), "wraps");
        assert!(
            check_guest_range(0xdead_0000_0000_0000, 0).is_ok(),
            "empty touches nothing"
        );
    }

    proptest! {
        #[test]
        fn accepted_ranges_never_touch_the_hypervisor(va in any::<u64>(), len in 1usize..1 << 20) {
            if check_guest_range(va, len).is_ok() {
                let last = va + len as u64 - 1;
                prop_assert!(is_canonical(va) && is_canonical(last));
                prop_assert!(last < HYPERVISOR_VIRT_START || va >= HYPERVISOR_VIRT_END);
            }
        }
    }
}
