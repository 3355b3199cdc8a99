//! The PV console ring (`io/console.h`): a domU's console is a page shared with dom0's
//! console backend, plus an event channel.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `struct xencons_interface`.
///
/// Both rings are byte rings indexed by free-running `u32` counters: the producer writes
/// at `prod % size` and then advances `prod`; the consumer reads at `cons % size`.
/// `out` carries guest output to the backend, `in` carries input to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XenconsInterface {
    /// `in`: input to the guest.
    pub in_: [u8; 1024],
    /// Output from the guest.
    pub out: [u8; 2048],
    /// Consumer index of `in` (the guest).
    pub in_cons: u32,
    /// Producer index of `in` (the backend).
    pub in_prod: u32,
    /// Consumer index of `out` (the backend).
    pub out_cons: u32,
    /// Producer index of `out` (the guest).
    pub out_prod: u32,
}

impl XenconsInterface {
    /// Bytes in the output ring.
    pub const OUT_SIZE: u32 = 2048;
    /// Bytes in the input ring.
    pub const IN_SIZE: u32 = 1024;

    /// `MASK_XENCONS_IDX` for the output ring.
    pub const fn out_index(idx: u32) -> usize {
        (idx & (Self::OUT_SIZE - 1)) as usize
    }

    /// `MASK_XENCONS_IDX` for the input ring.
    pub const fn in_index(idx: u32) -> usize {
        (idx & (Self::IN_SIZE - 1)) as usize
    }

    /// Free bytes in the output ring given its two indexes (garbage indexes from a hostile
    /// peer give a number in `0..=OUT_SIZE`, never a panic).
    pub const fn out_space(prod: u32, cons: u32) -> u32 {
        let used = prod.wrapping_sub(cons);
        Self::OUT_SIZE.saturating_sub(used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_indexes_wrap() {
        assert_eq!(XenconsInterface::out_index(2049), 1);
        assert_eq!(XenconsInterface::in_index(1024), 0);
        assert_eq!(XenconsInterface::out_space(u32::MAX, u32::MAX - 10), 2038);
        assert_eq!(XenconsInterface::out_space(5, 100), 0);
    }
}
