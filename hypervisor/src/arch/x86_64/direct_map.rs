//! Machine frames through the direct map, as safe functions: the rest of the hypervisor reads
//! and writes frames (page tables, shared pages, a domain's memory while it is built) only
//! through these, so that no `unsafe` is needed outside `arch`.
//!
//! # Safety
//! Every RAM frame below the highest machine frame ([`MAX_MFN`], set once the direct map
//! covers all of RAM) is direct-mapped at [`phys_to_virt`]. Frames are reached by word or by
//! byte, with volatile accesses, because guests may write the same frames at any moment; typed
//! views ([`view`]) exist only for types made entirely of atomics ([`InPlace`]). A frame number
//! at or beyond the limit is refused (reads give 0, writes are dropped) rather than trusted.
//! What these functions cannot know is *whose* frame it is: that a write goes to a frame its
//! caller may change is the caller's rule (the PV MMU's invariants), as before.

use super::paging::phys_to_virt;
use crate::mm::frames::{FrameAllocator, FrameError};
use crate::mm::{Mfn, PAGE_SIZE};
use core::sync::atomic::{AtomicU64, Ordering};

/// Words of a frame.
pub const WORDS: usize = PAGE_SIZE as usize / 8;

/// One past the highest machine frame that is direct-mapped RAM (0 until the direct map
/// covers all of RAM).
static MAX_MFN: AtomicU64 = AtomicU64::new(0);

/// Records that every RAM frame below `limit` is direct-mapped (boot calls it once the
/// hypervisor's own page tables, `paging::init`, are in place).
pub fn set_limit(limit: u64) {
    MAX_MFN.store(limit, Ordering::Relaxed);
}

/// The frame's first word, if the frame is direct-mapped RAM.
fn words(mfn: Mfn) -> Option<*mut u64> {
    (mfn.0 < MAX_MFN.load(Ordering::Relaxed)).then(|| phys_to_virt(mfn.addr()) as *mut u64)
}

/// Word `index` (modulo the frame's 512) of frame `mfn`.
pub fn read_word(mfn: Mfn, index: usize) -> u64 {
    match words(mfn) {
        // SAFETY: a direct-mapped RAM frame (module rules); the index stays inside it; an
        // aligned word is read whole.
        Some(w) => unsafe { w.add(index % WORDS).read_volatile() },
        None => 0,
    }
}

/// Writes word `index` (modulo 512) of frame `mfn`.
pub fn write_word(mfn: Mfn, index: usize, value: u64) {
    if let Some(w) = words(mfn) {
        // SAFETY: as for `read_word`.
        unsafe { w.add(index % WORDS).write_volatile(value) }
    }
}

/// Zeroes frame `mfn`.
pub fn zero(mfn: Mfn) {
    if let Some(w) = words(mfn) {
        // SAFETY: a whole direct-mapped RAM frame.
        unsafe { core::ptr::write_bytes(w as *mut u8, 0, PAGE_SIZE as usize) }
    }
}

/// Copies frame `src` over frame `dst` (which may be the same frame).
pub fn copy(dst: Mfn, src: Mfn) {
    if let (Some(d), Some(s)) = (words(dst), words(src)) {
        // SAFETY: two whole direct-mapped RAM frames; `copy` allows them to overlap.
        unsafe { core::ptr::copy(s, d, WORDS) }
    }
}

/// Writes `bytes` into frame `mfn` from byte `offset`; what would pass the end of the frame
/// is cut off. Returns how many bytes were written.
pub fn write_bytes(mfn: Mfn, offset: usize, bytes: &[u8]) -> usize {
    let Some(w) = words(mfn) else { return 0 };
    let n = bytes.len().min((PAGE_SIZE as usize).saturating_sub(offset));
    // SAFETY: `offset + n` is within the direct-mapped frame; `bytes` is ordinary memory of
    // the hypervisor, never the frame itself (a `&[u8]` of a guest frame is never made).
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), (w as *mut u8).add(offset), n) };
    n
}

/// Copies `len` bytes from byte `src_off` of frame `src` to byte `dst_off` of frame `dst`
/// (the same frame or overlapping ranges allowed). Returns false, copying nothing, when a
/// range would pass the end of its frame or a frame is not direct-mapped RAM.
pub fn copy_bytes(dst: Mfn, dst_off: usize, src: Mfn, src_off: usize, len: usize) -> bool {
    let page = PAGE_SIZE as usize;
    let fits = |off: usize| off.checked_add(len).is_some_and(|end| end <= page);
    let (Some(d), Some(s)) = (words(dst), words(src)) else {
        return false;
    };
    if !fits(dst_off) || !fits(src_off) {
        return false;
    }
    // SAFETY: both ranges lie inside direct-mapped RAM frames (checked); `copy` allows overlap.
    // Guests may write either frame meanwhile: the bytes copied are then theirs to define.
    unsafe {
        core::ptr::copy(
            (s as *const u8).add(src_off),
            (d as *mut u8).add(dst_off),
            len,
        )
    };
    true
}

/// Types that may be seen in place in a frame shared with a guest: `repr(C)`, made only of
/// atomics (the guest writes them concurrently), no larger than a frame, alignment at most 8.
///
/// # Safety
/// An implementation promises exactly that.
pub unsafe trait InPlace: Sync {}

// SAFETY: `SharedInfo` mirrors the shared-info page with atomics only and fits in a frame.
unsafe impl InPlace for crate::event::shared::SharedInfo {}
// SAFETY: `VcpuInfo` mirrors `struct vcpu_info` (64 bytes) with atomics only.
unsafe impl InPlace for crate::event::shared::VcpuInfo {}
// SAFETY: one atomic word (a grant entry's flags and domain id).
unsafe impl InPlace for core::sync::atomic::AtomicU32 {}

/// A `T` at byte `offset` of frame `mfn`, if it fits there and is aligned.
///
/// The view lives as long as the frame stays allocated to its purpose: callers keep the
/// frame (a shared-info frame for its domain's life, a `vcpu_info` frame with a type
/// reference) until the view is no longer used.
pub fn view<T: InPlace>(mfn: Mfn, offset: usize) -> Option<&'static T> {
    let fits =
        offset.is_multiple_of(align_of::<T>()) && offset + size_of::<T>() <= PAGE_SIZE as usize;
    let w = words(mfn).filter(|_| fits)?;
    // SAFETY: in range and aligned (checked), direct-mapped RAM; `T` is all atomics
    // (`InPlace`), so shared references to memory others write concurrently are sound.
    Some(unsafe { &*((w as *const u8).add(offset) as *const T) })
}

/// Allocates frames for a table of `n` `T`s that lives for the rest of the machine's life
/// (the frame table, the M2P) and returns its first frame and the table, every element set to
/// `fill`.
pub fn alloc_table<T: Copy>(
    frames: &mut FrameAllocator<'_>,
    n: usize,
    fill: T,
) -> Result<(Mfn, &'static mut [T]), FrameError> {
    let bytes = n.saturating_mul(size_of::<T>()) as u64;
    let first = frames.alloc_contiguous(bytes.div_ceil(PAGE_SIZE).max(1), 1)?;
    let base = phys_to_virt(first.addr()) as *mut T;
    // SAFETY: the frames were just allocated for this table alone, are direct-mapped and
    // page-aligned (so aligned for `T`), and are never freed: nothing else can refer to them.
    let table = unsafe {
        for i in 0..n {
            base.add(i).write(fill);
        }
        core::slice::from_raw_parts_mut(base, n)
    };
    Ok((first, table))
}

/// The bytes of physical memory `[start, start + len)` that the boot loader or firmware left
/// (modules, the BIOS area), which the frame allocator never hands out: read-only.
pub fn boot_bytes(start: u64, len: usize) -> &'static [u8] {
    // SAFETY: callers name memory below 4 GiB that the boot page tables and the direct map
    // both cover and that is reserved from the allocator (the multiboot modules, the BIOS
    // area); it is never written while the slice exists.
    unsafe { core::slice::from_raw_parts(phys_to_virt(start) as *const u8, len) }
}
