//! Physical memory: frame numbers, address ranges, the virtual layout, and frame allocation.

pub mod device_frames;
pub mod frames;
pub mod layout;
pub mod machine_map;
pub mod pv;

/// Size of a page and of a machine frame.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// Machine frame numbers are guest-abi's, the one set the whole hypervisor uses.
pub use guest_abi::Mfn;

/// A half-open physical address range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl PhysRange {
    /// The range `[start, start + len)`, saturating at the top of the address space.
    pub const fn new(start: u64, len: u64) -> Self {
        Self {
            start,
            end: start.saturating_add(len),
        }
    }

    /// Whether the two ranges share at least one byte.
    pub const fn overlaps(&self, other: &PhysRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Number of bytes in the range (zero when `end <= start`).
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole frames inside the range, as `[first, last + 1)` frame numbers.
    pub const fn whole_frames(&self) -> (u64, u64) {
        let first = self.start.div_ceil(PAGE_SIZE);
        let end = self.end / PAGE_SIZE;
        if end < first {
            (first, first)
        } else {
            (first, end)
        }
    }

    /// The frames touched by the range, including partial ones at either end.
    pub const fn touched_frames(&self) -> (u64, u64) {
        if self.is_empty() {
            return (0, 0);
        }
        (self.start / PAGE_SIZE, self.end.div_ceil(PAGE_SIZE))
    }
}
