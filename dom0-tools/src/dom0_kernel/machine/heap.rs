//! The kernel's heap, the global allocator of the `alloc` collections the toolstack uses:
//! [`HEAP_SIZE`] bytes of `.bss`, then dom0's memory beyond its bootstrap region
//! (`spare`), which holds what does not fit in the first (a bzImage's decompressed
//! kernel). Both are `linked_list_allocator` heaps; running out of both panics (Rust's
//! default allocation error handler), which crashes dom0.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use guest_abi::println;
use guest_abi::xen::StartInfo;
use linked_list_allocator::LockedHeap;

use super::spare;

/// Bytes of `.bss` heap. A domain's builder needs about 24 bytes per page of the domain
/// (its P2M three times over), 1.5 MiB for a 256 MiB domain; the rest is small.
pub const HEAP_SIZE: usize = 16 << 20;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; HEAP_SIZE]>);

// SAFETY: the arena is only reached through the allocator, which hands out disjoint
// blocks and locks itself.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; HEAP_SIZE]));

/// The arena first, then the spare memory.
struct Heaps {
    arena: LockedHeap,
    spare: LockedHeap,
}

impl Heaps {
    fn in_arena(ptr: *mut u8) -> bool {
        let start = ARENA.0.get() as usize;
        (start..start + HEAP_SIZE).contains(&(ptr as usize))
    }
}

// SAFETY: each block comes from one of two sound allocators and goes back to the one it
// came from (told by its address: the arena's range or not).
unsafe impl GlobalAlloc for Heaps {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on.
        let ptr = unsafe { self.arena.alloc(layout) };
        if ptr.is_null() {
            // SAFETY: as above.
            unsafe { self.spare.alloc(layout) }
        } else {
            ptr
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if Self::in_arena(ptr) {
            // SAFETY: `ptr` came from the arena's allocator (its address says so).
            unsafe { self.arena.dealloc(ptr, layout) }
        } else {
            // SAFETY: `ptr` came from the spare allocator, the only other one.
            unsafe { self.spare.dealloc(ptr, layout) }
        }
    }
}

#[global_allocator]
static ALLOCATOR: Heaps = Heaps {
    arena: LockedHeap::empty(),
    spare: LockedHeap::empty(),
};

static READY: AtomicBool = AtomicBool::new(false);

/// Gives the arena to the allocator, then maps the spare memory and gives it too, before
/// anything else allocates (later calls do nothing).
pub fn init(si: &StartInfo) {
    if READY.swap(true, Ordering::Relaxed) {
        return;
    }
    // SAFETY: the arena is static and unused by anything else, and it is handed over
    // once (READY), to an allocator that is still empty.
    unsafe {
        ALLOCATOR
            .arena
            .lock()
            .init(ARENA.0.get().cast::<u8>(), HEAP_SIZE)
    };
    match spare::map_spare(si) {
        Ok(Some(p)) => {
            // SAFETY: map_spare mapped these pages writable for us alone; nothing else
            // refers to them, and they are handed over once.
            unsafe {
                ALLOCATOR
                    .spare
                    .lock()
                    .init(p.va.0 as *mut u8, p.bytes() as usize)
            };
        }
        Ok(None) => {}
        Err(e) => println!("dom0: cannot map the memory beyond the bootstrap region: {e}"),
    }
}
