//! The shared ring of `io/ring.h`: a header of four free-running `u32` indexes and padding,
//! then a power-of-two array of entries, each the union of a request and a response.
//!
//! The frontend produces requests (`req_prod`) and consumes responses; the backend consumes
//! requests and produces responses (`rsp_prod`). `req_event` / `rsp_event` say at which
//! index the other side wants an event. Indexes wrap; an entry's slot is `index % size`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `RING_IDX`.
pub type RingIdx = u32;

/// The header of a shared ring (`struct NAME_sring` without its `ring[]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SringHeader {
    /// Requests produced by the frontend.
    pub req_prod: RingIdx,
    /// The backend wants an event when `req_prod` passes this.
    pub req_event: RingIdx,
    /// Responses produced by the backend.
    pub rsp_prod: RingIdx,
    /// The frontend wants an event when `rsp_prod` passes this.
    pub rsp_event: RingIdx,
    /// Per-protocol private bytes (`pvt`), unused by blkif.
    pub pvt: [u8; 4],
    /// Padding up to the entries.
    pub pad: [u8; 44],
}

/// Byte offset of a field of [`SringHeader`] in the page.
pub const REQ_PROD_OFFSET: usize = 0;
/// Byte offset of `req_event`.
pub const REQ_EVENT_OFFSET: usize = 4;
/// Byte offset of `rsp_prod`.
pub const RSP_PROD_OFFSET: usize = 8;
/// Byte offset of `rsp_event`.
pub const RSP_EVENT_OFFSET: usize = 12;
/// Byte offset of the first entry.
pub const RING_ENTRIES_OFFSET: usize = core::mem::size_of::<SringHeader>();

/// Entries in a ring of `bytes` bytes (header included) whose entries are `entry_size`
/// bytes: the room left after the header, rounded down to a power of two
/// (`__CONST_RING_SIZE`). Zero if nothing fits.
pub const fn ring_size(bytes: usize, entry_size: usize) -> u32 {
    if entry_size == 0 || bytes <= RING_ENTRIES_OFFSET {
        return 0;
    }
    let n = (bytes - RING_ENTRIES_OFFSET) / entry_size;
    if n == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

/// Whether the side that advanced a producer index from `old` to `new` must notify the
/// other side, given the other side's event index (`RING_PUSH_*_AND_CHECK_NOTIFY`).
pub const fn needs_notify(old: RingIdx, new: RingIdx, event: RingIdx) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_down_to_powers_of_two() {
        assert_eq!(ring_size(4096, 112), 32);
        assert_eq!(ring_size(4096 << 1, 112), 64);
        assert_eq!(ring_size(4096 << 4, 112), 512);
        assert_eq!(ring_size(64, 112), 0);
        assert_eq!(ring_size(4096, 0), 0);
    }

    #[test]
    fn notify_when_the_event_index_was_crossed() {
        assert!(needs_notify(0, 1, 1));
        assert!(!needs_notify(1, 2, 1));
        assert!(needs_notify(u32::MAX, 1, 0));
    }
}
