//! The hypervisor's heap: a fixed run of frames handed to a linked-list allocator at boot.

use super::paging::phys_to_virt;
use crate::mm::frames::{FrameAllocator, FrameError};
use crate::mm::{Mfn, PAGE_SIZE};

#[global_allocator]
static HEAP: linked_list_allocator::LockedHeap = linked_list_allocator::LockedHeap::empty();

/// Takes `bytes` (rounded up to frames) from `frames` for the heap, once, at boot. Returns
/// the heap's first frame.
pub fn init(frames: &mut FrameAllocator<'_>, bytes: u64) -> Result<Mfn, FrameError> {
    let pages = bytes.div_ceil(PAGE_SIZE);
    let start = frames.alloc_contiguous(pages, 1)?;
    let mut heap = HEAP.lock();
    if heap.size() == 0 {
        // SAFETY: the frames were just allocated for the heap alone, are direct-mapped, and are
        // never freed; an empty heap has never been given memory, so this is the only `init`.
        unsafe {
            heap.init(
                phys_to_virt(start.addr()) as *mut u8,
                (pages * PAGE_SIZE) as usize,
            )
        };
    }
    Ok(start)
}
