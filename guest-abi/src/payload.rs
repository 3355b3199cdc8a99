//! The 128-byte `u` union that ends `struct xen_domctl` and `struct xen_sysctl`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes of the union.
pub const PAYLOAD_SIZE: usize = 128;

/// A command's payload: the union's bytes, read and written as the command's struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(transparent)]
pub struct Payload(pub [u8; PAYLOAD_SIZE]);

impl Payload {
    /// All zero.
    pub const ZERO: Self = Self([0; PAYLOAD_SIZE]);

    /// Reads the payload as a `T` (`None` if `T` is larger than the union).
    pub fn read<T: FromBytes>(&self) -> Option<T> {
        T::read_from_prefix(&self.0).ok().map(|(t, _)| t)
    }

    /// Writes `value` at the start of the union, leaving the rest as is; returns `false`
    /// (writing nothing) if `T` is larger than the union.
    pub fn write<T: IntoBytes + Immutable>(&mut self, value: &T) -> bool {
        let bytes = value.as_bytes();
        match self.0.get_mut(..bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_values_are_refused() {
        let mut p = Payload::ZERO;
        assert!(!p.write(&[1u8; PAYLOAD_SIZE + 1]));
        assert_eq!(p, Payload::ZERO);
        assert!(p.write(&7u64));
        assert_eq!(p.read::<u64>(), Some(7));
        assert_eq!(p.read::<[u8; PAYLOAD_SIZE + 1]>(), None);
    }
}
