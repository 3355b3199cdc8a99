//! The kernel's heap: [`HEAP_SIZE`] bytes of `.bss` behind `linked_list_allocator`, the
//! global allocator of the `alloc` collections the toolstack uses. Running out of heap
//! panics (Rust's default allocation error handler), which crashes dom0.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use linked_list_allocator::LockedHeap;

/// Bytes of heap. A domain's builder needs about 24 bytes per page of the domain (its P2M
/// three times over), 1.5 MiB for a 256 MiB domain; the rest is small.
pub const HEAP_SIZE: usize = 16 << 20;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; HEAP_SIZE]>);

// SAFETY: the arena is only reached through the allocator, which hands out disjoint
// blocks and locks itself.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; HEAP_SIZE]));

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

static READY: AtomicBool = AtomicBool::new(false);

/// Gives the arena to the allocator, before anything allocates (later calls do nothing).
pub fn init() {
    if READY.swap(true, Ordering::Relaxed) {
        return;
    }
    // SAFETY: the arena is static and unused by anything else, and it is handed over
    // once (READY), to an allocator that is still empty.
    unsafe { ALLOCATOR.lock().init(ARENA.0.get().cast::<u8>(), HEAP_SIZE) };
}
