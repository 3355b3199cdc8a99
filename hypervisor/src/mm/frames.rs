//! The physical frame allocator.
//!
//! A bitmap with one bit per frame below the highest usable address (1 = free). It is built from
//! the firmware memory map minus reserved ranges (the hypervisor image, the multiboot2
//! information, the boot modules, the bitmap itself), so a reserved frame is never free. Frees
//! are checked: freeing a frame that is not allocated, or that the map never offered, is an
//! error rather than a silent corruption.

use super::{Mfn, PAGE_SIZE, PhysRange};

/// Why an allocator operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// No free frame (or no free run of the requested length) is left.
    OutOfMemory,
    /// The frame is already free.
    DoubleFree(Mfn),
    /// The frame was never usable memory, so it can never be freed.
    NotManaged(Mfn),
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfMemory => write!(f, "out of memory"),
            Self::DoubleFree(m) => write!(f, "{m} freed twice"),
            Self::NotManaged(m) => write!(f, "{m} is not allocatable memory"),
        }
    }
}

/// Bitmap frame allocator over caller-provided storage.
pub struct FrameAllocator<'a> {
    /// Bit `i` set: frame `i` is free.
    free_bits: &'a mut [u64],
    /// Bit `i` set: frame `i` is usable RAM that this allocator manages.
    managed_bits: &'a mut [u64],
    frames: u64,
    free: u64,
    managed: u64,
    /// Word index where the next search starts, so allocation is not quadratic.
    hint: usize,
}

impl<'a> FrameAllocator<'a> {
    /// Words of storage needed for each of the two bitmaps to cover frames below `max_addr`.
    pub const fn words_for(max_addr: u64) -> usize {
        (max_addr.div_ceil(PAGE_SIZE)).div_ceil(64) as usize
    }

    /// Builds the allocator: whole frames in `usable` become free, except those touched by any
    /// range in `reserved`. Frames beyond the storage's reach are left out.
    pub fn new(
        free_bits: &'a mut [u64],
        managed_bits: &'a mut [u64],
        usable: impl IntoIterator<Item = PhysRange>,
        reserved: &[PhysRange],
    ) -> Self {
        let words = free_bits.len().min(managed_bits.len());
        free_bits.fill(0);
        managed_bits.fill(0);
        let mut alloc = Self {
            free_bits,
            managed_bits,
            frames: words as u64 * 64,
            free: 0,
            managed: 0,
            hint: 0,
        };
        for range in usable {
            let (first, end) = range.whole_frames();
            for pfn in first..end.min(alloc.frames) {
                if !alloc.test(pfn, Bitmap::Managed) {
                    alloc.set(pfn, Bitmap::Managed, true);
                    alloc.set(pfn, Bitmap::Free, true);
                    alloc.managed += 1;
                    alloc.free += 1;
                }
            }
        }
        for range in reserved {
            let (first, end) = range.touched_frames();
            for pfn in first..end.min(alloc.frames) {
                if alloc.test(pfn, Bitmap::Managed) {
                    alloc.set(pfn, Bitmap::Managed, false);
                    alloc.set(pfn, Bitmap::Free, false);
                    alloc.managed -= 1;
                    alloc.free -= 1;
                }
            }
        }
        alloc
    }

    /// Number of free frames.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Number of frames the allocator manages (free or allocated).
    pub fn managed_frames(&self) -> u64 {
        self.managed
    }

    /// The highest frame number the allocator covers.
    pub fn max_frame(&self) -> u64 {
        self.frames.saturating_sub(1)
    }

    /// Whether `mfn` is currently free.
    pub fn is_free(&self, mfn: Mfn) -> bool {
        mfn.0 < self.frames && self.test(mfn.0, Bitmap::Free)
    }

    /// Takes one free frame.
    pub fn alloc(&mut self) -> Result<Mfn, FrameError> {
        let words = self.free_bits.len();
        for i in 0..words {
            let w = (self.hint + i) % words;
            let bits = self.free_bits[w];
            if bits != 0 {
                let pfn = w as u64 * 64 + u64::from(bits.trailing_zeros());
                self.set(pfn, Bitmap::Free, false);
                self.free -= 1;
                self.hint = w;
                return Ok(Mfn(pfn));
            }
        }
        Err(FrameError::OutOfMemory)
    }

    /// Takes `count` physically contiguous free frames whose first frame number is a multiple
    /// of `align` (in frames; 0 and 1 mean no alignment).
    pub fn alloc_contiguous(&mut self, count: u64, align: u64) -> Result<Mfn, FrameError> {
        self.alloc_contiguous_below(count, align, u64::MAX)
    }

    /// As [`alloc_contiguous`](Self::alloc_contiguous), with every frame below frame number
    /// `end` (for a device that addresses only so many bits). The lowest run that fits is taken.
    pub fn alloc_contiguous_below(
        &mut self,
        count: u64,
        align: u64,
        end: u64,
    ) -> Result<Mfn, FrameError> {
        if count == 0 || count > self.free {
            return Err(FrameError::OutOfMemory);
        }
        let align = align.max(1);
        let end = end.min(self.frames);
        let mut start: u64 = 0;
        while start.checked_add(count).is_some_and(|e| e <= end) {
            // Skip words with no free frame at all: most of a busy bitmap.
            if self.free_bits[(start / 64) as usize] == 0 {
                start = ((start / 64) + 1) * 64;
                start = start.next_multiple_of(align);
                continue;
            }
            match (start..start + count).find(|&pfn| !self.test(pfn, Bitmap::Free)) {
                None => {
                    for pfn in start..start + count {
                        self.set(pfn, Bitmap::Free, false);
                    }
                    self.free -= count;
                    return Ok(Mfn(start));
                }
                Some(busy) => start = (busy + 1).next_multiple_of(align),
            }
        }
        Err(FrameError::OutOfMemory)
    }

    /// Returns a frame to the pool.
    pub fn free(&mut self, mfn: Mfn) -> Result<(), FrameError> {
        if mfn.0 >= self.frames || !self.test(mfn.0, Bitmap::Managed) {
            return Err(FrameError::NotManaged(mfn));
        }
        if self.test(mfn.0, Bitmap::Free) {
            return Err(FrameError::DoubleFree(mfn));
        }
        self.set(mfn.0, Bitmap::Free, true);
        self.free += 1;
        Ok(())
    }

    fn bitmap(&self, which: Bitmap) -> &[u64] {
        match which {
            Bitmap::Free => self.free_bits,
            Bitmap::Managed => self.managed_bits,
        }
    }

    fn test(&self, pfn: u64, which: Bitmap) -> bool {
        self.bitmap(which)[(pfn / 64) as usize] & (1 << (pfn % 64)) != 0
    }

    fn set(&mut self, pfn: u64, which: Bitmap, value: bool) {
        let map = match which {
            Bitmap::Free => &mut *self.free_bits,
            Bitmap::Managed => &mut *self.managed_bits,
        };
        let word = &mut map[(pfn / 64) as usize];
        if value {
            *word |= 1 << (pfn % 64);
        } else {
            *word &= !(1 << (pfn % 64));
        }
    }
}

#[derive(Clone, Copy)]
enum Bitmap {
    Free,
    Managed,
}

/// Finds `size` bytes aligned to `align` inside `usable` that overlap none of `reserved`,
/// preferring the lowest address. Used to place the allocator's own bitmaps.
pub fn find_free_region(
    usable: impl IntoIterator<Item = PhysRange>,
    reserved: &[PhysRange],
    size: u64,
    align: u64,
) -> Option<u64> {
    let align = align.max(1);
    let mut best: Option<u64> = None;
    for region in usable {
        let mut start = region.start.checked_next_multiple_of(align)?;
        while let Some(end) = start.checked_add(size) {
            if end > region.end {
                break;
            }
            let candidate = PhysRange { start, end };
            match reserved.iter().find(|r| r.overlaps(&candidate)) {
                None => {
                    best = Some(best.map_or(start, |b| b.min(start)));
                    break;
                }
                Some(r) => match r.end.checked_next_multiple_of(align) {
                    Some(next) => start = next,
                    None => break,
                },
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::vec;
    use std::vec::Vec;

    const MIB: u64 = 1 << 20;

    fn storage(max: u64) -> (Vec<u64>, Vec<u64>) {
        let w = FrameAllocator::words_for(max);
        (vec![0; w], vec![0; w])
    }

    #[test]
    fn never_hands_out_reserved_frames() {
        let usable = [PhysRange::new(0, 640 << 10), PhysRange::new(MIB, 15 * MIB)];
        // The image, the multiboot info (unaligned, straddling frames) and a module.
        let reserved = [
            PhysRange::new(2 * MIB, 3 * MIB),
            PhysRange::new(0x90_0100, 0x2000),
            PhysRange::new(10 * MIB + 123, MIB),
        ];
        let (mut a, mut b) = storage(16 * MIB);
        let mut fa = FrameAllocator::new(&mut a, &mut b, usable, &reserved);
        let mut got = BTreeSet::new();
        while let Ok(m) = fa.alloc() {
            assert!(got.insert(m.0), "{m} handed out twice");
            let frame = PhysRange::new(m.addr(), PAGE_SIZE);
            assert!(
                !reserved.iter().any(|r| r.overlaps(&frame)),
                "{m} is reserved"
            );
            assert!(
                usable
                    .iter()
                    .any(|u| u.start <= frame.start && frame.end <= u.end)
            );
        }
        assert_eq!(fa.free_frames(), 0);
        assert_eq!(got.len() as u64, fa.managed_frames());
        // 160 + 3840 frames, minus 768 image, 3 info, 257 module.
        assert_eq!(got.len(), 160 + 3840 - 768 - 3 - 257);
    }

    #[test]
    fn exhaustion_is_an_error_and_frees_are_reusable() {
        let (mut a, mut b) = storage(MIB);
        let mut fa = FrameAllocator::new(&mut a, &mut b, [PhysRange::new(0, 4 * PAGE_SIZE)], &[]);
        let frames: Vec<_> = (0..4).map(|_| fa.alloc().unwrap()).collect();
        assert_eq!(fa.alloc(), Err(FrameError::OutOfMemory));
        fa.free(frames[2]).unwrap();
        assert_eq!(fa.alloc(), Ok(frames[2]));
        assert_eq!(fa.alloc(), Err(FrameError::OutOfMemory));
    }

    #[test]
    fn bad_frees_are_refused() {
        let (mut a, mut b) = storage(MIB);
        let mut fa = FrameAllocator::new(
            &mut a,
            &mut b,
            [PhysRange::new(0, 8 * PAGE_SIZE)],
            &[PhysRange::new(0, PAGE_SIZE)],
        );
        let m = fa.alloc().unwrap();
        fa.free(m).unwrap();
        assert_eq!(fa.free(m), Err(FrameError::DoubleFree(m)));
        assert_eq!(fa.free(Mfn(0)), Err(FrameError::NotManaged(Mfn(0))));
        assert_eq!(
            fa.free(Mfn(1 << 40)),
            Err(FrameError::NotManaged(Mfn(1 << 40)))
        );
        assert_eq!(fa.free_frames(), 7);
    }

    #[test]
    fn contiguous_runs_respect_alignment_and_holes() {
        let (mut a, mut b) = storage(4 * MIB);
        let mut fa = FrameAllocator::new(
            &mut a,
            &mut b,
            [PhysRange::new(0, 4 * MIB)],
            &[PhysRange::new(0x1000, 0x1000)],
        );
        let run = fa.alloc_contiguous(16, 16).unwrap();
        assert_eq!(run.0 % 16, 0);
        assert!(
            run.0 >= 16,
            "frame 1 is reserved, so the run cannot start at 0"
        );
        for i in 0..16 {
            assert!(!fa.is_free(Mfn(run.0 + i)));
        }
        assert_eq!(fa.alloc_contiguous(2048, 1), Err(FrameError::OutOfMemory));
        assert_eq!(fa.alloc_contiguous(0, 1), Err(FrameError::OutOfMemory));
    }

    #[test]
    fn contiguous_runs_below_a_limit() {
        let (mut a, mut b) = storage(4 * MIB);
        let mut fa = FrameAllocator::new(&mut a, &mut b, [PhysRange::new(0, 4 * MIB)], &[]);
        let low = fa.alloc_contiguous_below(64, 64, 128).unwrap();
        assert!(low.0 + 64 <= 128);
        let next = fa.alloc_contiguous_below(64, 64, 128).unwrap();
        assert!(next.0 + 64 <= 128 && next != low);
        assert_eq!(
            fa.alloc_contiguous_below(64, 64, 128),
            Err(FrameError::OutOfMemory),
            "nothing left below the limit, though plenty above"
        );
        assert!(fa.alloc_contiguous_below(64, 64, 1 << 40).is_ok());
    }

    #[test]
    fn free_region_avoids_reserved() {
        let usable = [PhysRange::new(0, MIB), PhysRange::new(2 * MIB, 6 * MIB)];
        let reserved = [PhysRange::new(2 * MIB, MIB), PhysRange::new(0, MIB)];
        let at = find_free_region(usable, &reserved, 64 << 10, PAGE_SIZE).unwrap();
        assert_eq!(at, 3 * MIB);
        assert_eq!(
            find_free_region(usable, &reserved, 16 * MIB, PAGE_SIZE),
            None
        );
    }

    proptest! {
        #[test]
        fn alloc_free_sequences_keep_the_books(
            ops in proptest::collection::vec(any::<(bool, u8)>(), 1..300),
            holes in proptest::collection::vec((0u64..256, 1u64..8), 0..6),
        ) {
            let reserved: Vec<_> =
                holes.iter().map(|&(f, n)| PhysRange::new(f * PAGE_SIZE + 7, n * PAGE_SIZE)).collect();
            let (mut a, mut b) = storage(MIB);
            let mut fa = FrameAllocator::new(&mut a, &mut b, [PhysRange::new(0, MIB)], &reserved);
            let total = fa.managed_frames();
            let mut held: Vec<Mfn> = Vec::new();
            for (alloc, pick) in ops {
                if alloc {
                    match fa.alloc() {
                        Ok(m) => {
                            prop_assert!(!held.contains(&m));
                            let frame = PhysRange::new(m.addr(), PAGE_SIZE);
                            prop_assert!(!reserved.iter().any(|r| r.overlaps(&frame)));
                            held.push(m);
                        }
                        Err(e) => {
                            prop_assert_eq!(e, FrameError::OutOfMemory);
                            prop_assert_eq!(held.len() as u64, total);
                        }
                    }
                } else if !held.is_empty() {
                    let m = held.swap_remove(pick as usize % held.len());
                    prop_assert_eq!(fa.free(m), Ok(()));
                }
                prop_assert_eq!(fa.free_frames() + held.len() as u64, total);
            }
        }
    }
}
