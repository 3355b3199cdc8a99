//! The hypervisor's page tables: the image mapped with W^X permissions (and an unmapped guard
//! page below the boot stack), and a direct map of all physical memory, both inside the
//! hypervisor's reserved L4 slots. Built once at boot to replace the 2 MiB boot mapping.

use super::cpu::Features;
use crate::boot::acpi::PhysRead;
use crate::mm::frames::FrameAllocator;
use crate::mm::layout::{DIRECTMAP_BASE, DIRECTMAP_SIZE, IMAGE_VIRT_BASE};
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::control::{Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::structures::paging::mapper::MapToError;
use x86_64::structures::paging::{
    FrameAllocator as X86FrameAllocator, Mapper, OffsetPageTable, Page, PageSize, PageTable,
    PageTableFlags as Flags, PhysFrame, Size1GiB, Size2MiB, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

/// The boot page tables direct-map the first 4 GiB.
const BOOT_DIRECT_MAP_END: u64 = 4 << 30;

/// End (exclusive) of the physical range the active tables direct-map.
static DIRECT_MAP_END: AtomicU64 = AtomicU64::new(BOOT_DIRECT_MAP_END);

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_virt_end: u8;
    static BOOT_STACK_GUARD: u8;
}

fn symbol(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// The virtual address at which physical address `pa` is direct-mapped.
pub const fn phys_to_virt(pa: u64) -> u64 {
    DIRECTMAP_BASE + pa
}

/// Whether `[va, va + len)` lies in the mapped part of the hypervisor image.
pub fn in_image(va: u64, len: u64) -> bool {
    // SAFETY: linker-defined symbols; only their addresses are taken.
    let (start, end) = unsafe { (symbol(&__text_start), symbol(&__image_virt_end)) };
    va >= start && va.checked_add(len).is_some_and(|e| e <= end)
}

/// Reads physical memory through the direct map, refusing what it does not cover.
pub struct DirectMap;

impl PhysRead for DirectMap {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let end = DIRECT_MAP_END.load(Ordering::Relaxed);
        if addr.checked_add(buf.len() as u64).is_none_or(|e| e > end) {
            return false;
        }
        // SAFETY: the whole range is inside the direct map of the active tables (checked
        // above), so it is mapped readable; firmware tables are plain memory.
        let src =
            unsafe { core::slice::from_raw_parts(phys_to_virt(addr) as *const u8, buf.len()) };
        buf.copy_from_slice(src);
        true
    }
}

/// Why the page tables could not be built.
#[derive(Clone, Copy, Debug)]
pub enum PagingError {
    /// The frame allocator ran dry.
    OutOfFrames,
    /// A mapping overlapped an existing one (a layout bug).
    Overlap(u64),
}

struct Frames<'a, 'b>(&'a mut FrameAllocator<'b>);

// SAFETY: frames come from the allocator, which hands each free frame out once; frames the
// boot mapping cannot reach yet are refused, so the mapper can zero every frame it gets.
unsafe impl X86FrameAllocator<Size4KiB> for Frames<'_, '_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        let mfn = self.0.alloc().ok()?;
        if mfn.addr() >= DIRECT_MAP_END.load(Ordering::Relaxed) {
            return None;
        }
        PhysFrame::from_start_address(PhysAddr::new(mfn.addr())).ok()
    }
}

fn map_err<S: PageSize>(e: MapToError<S>, va: u64) -> PagingError {
    match e {
        MapToError::FrameAllocationFailed => PagingError::OutOfFrames,
        _ => PagingError::Overlap(va),
    }
}

/// Builds the final tables, direct-mapping `[0, phys_end)`, and switches to them.
/// Returns the number of bytes direct-mapped.
pub fn init(
    frames: &mut FrameAllocator<'_>,
    phys_end: u64,
    features: &Features,
) -> Result<u64, PagingError> {
    let phys_end = phys_end.clamp(BOOT_DIRECT_MAP_END, DIRECTMAP_SIZE);
    let mut alloc = Frames(frames);
    let root = alloc.allocate_frame().ok_or(PagingError::OutOfFrames)?;
    let root_va = phys_to_virt(root.start_address().as_u64());
    // SAFETY: `root` was just allocated, is direct-mapped, and nothing else refers to it.
    let root_table = unsafe {
        let table = &mut *(root_va as *mut PageTable);
        table.zero();
        table
    };
    // SAFETY: every frame the mapper touches lies below DIRECT_MAP_END, which the active
    // (boot) tables map at DIRECTMAP_BASE.
    let mut mapper = unsafe { OffsetPageTable::new(root_table, VirtAddr::new(DIRECTMAP_BASE)) };
    let nx = if features.nx {
        Flags::NO_EXECUTE
    } else {
        Flags::empty()
    };
    let table_flags = Flags::PRESENT | Flags::WRITABLE;

    // SAFETY: linker-defined symbols; only their addresses are taken.
    let (text, text_end, rodata_end, end, guard) = unsafe {
        (
            symbol(&__text_start),
            symbol(&__text_end),
            symbol(&__rodata_end),
            symbol(&__image_virt_end),
            symbol(&BOOT_STACK_GUARD),
        )
    };
    for va in (text..end).step_by(Size4KiB::SIZE as usize) {
        if va == guard {
            continue;
        }
        let flags = if va < text_end {
            Flags::PRESENT | Flags::GLOBAL
        } else if va < rodata_end {
            Flags::PRESENT | Flags::GLOBAL | nx
        } else {
            Flags::PRESENT | Flags::GLOBAL | Flags::WRITABLE | nx
        };
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
        let frame = PhysFrame::containing_address(PhysAddr::new(va - IMAGE_VIRT_BASE));
        // SAFETY: the image pages map the image's own frames, at the addresses it was linked for.
        unsafe { mapper.map_to_with_table_flags(page, frame, flags, table_flags, &mut alloc) }
            .map_err(|e| map_err(e, va))?
            .ignore();
    }

    let data = Flags::PRESENT | Flags::WRITABLE | Flags::GLOBAL | nx;
    if features.gib_pages {
        for pa in (0..phys_end).step_by(Size1GiB::SIZE as usize) {
            let page = Page::<Size1GiB>::containing_address(VirtAddr::new(phys_to_virt(pa)));
            let frame = PhysFrame::<Size1GiB>::containing_address(PhysAddr::new(pa));
            // SAFETY: the direct map aliases physical memory in the hypervisor's own range.
            unsafe { mapper.map_to_with_table_flags(page, frame, data, table_flags, &mut alloc) }
                .map_err(|e| map_err(e, pa))?
                .ignore();
        }
    } else {
        for pa in (0..phys_end).step_by(Size2MiB::SIZE as usize) {
            let page = Page::<Size2MiB>::containing_address(VirtAddr::new(phys_to_virt(pa)));
            let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(pa));
            // SAFETY: as above.
            unsafe { mapper.map_to_with_table_flags(page, frame, data, table_flags, &mut alloc) }
                .map_err(|e| map_err(e, pa))?
                .ignore();
        }
    }

    // SAFETY: the new tables map the image (code, stacks, GDT, IDT, TSS) at the same virtual
    // addresses as the boot tables, so execution continues; the boot identity map is no longer
    // used once we run in the high half.
    unsafe {
        Cr4::update(|f| f.insert(Cr4Flags::PAGE_GLOBAL));
        Cr3::write(root, Cr3Flags::empty());
    }
    let mapped = phys_end.next_multiple_of(if features.gib_pages {
        Size1GiB::SIZE
    } else {
        Size2MiB::SIZE
    });
    DIRECT_MAP_END.store(mapped, Ordering::Relaxed);
    Ok(mapped)
}

/// The hypervisor's L4 entries for slots 256–271, to be copied into every guest L4.
pub fn hypervisor_l4_entries() -> [u64; 16] {
    let (root, _) = Cr3::read();
    // SAFETY: the active root table is direct-mapped and only read here.
    let ours = unsafe { &*(phys_to_virt(root.start_address().as_u64()) as *const [u64; 512]) };
    let mut slots = [0u64; 16];
    slots.copy_from_slice(&ours[256..272]);
    slots
}

/// Maps `len` bytes of physical memory at `phys` read-only at `MACH2PHYS_VIRT_START`, readable
/// from ring 3 (guests read the M2P table natively), in the active (idle) page tables.
pub fn map_m2p(frames: &mut FrameAllocator<'_>, phys: u64, len: u64) -> Result<(), PagingError> {
    let (root, _) = Cr3::read();
    // SAFETY: the active root table is direct-mapped; only L4 slot 256, which nothing else
    // uses, is changed.
    let root_table =
        unsafe { &mut *(phys_to_virt(root.start_address().as_u64()) as *mut PageTable) };
    // SAFETY: the direct map covers every frame the mapper reaches.
    let mut mapper = unsafe { OffsetPageTable::new(root_table, VirtAddr::new(DIRECTMAP_BASE)) };
    let mut alloc = Frames(frames);
    let table_flags = Flags::PRESENT | Flags::WRITABLE | Flags::USER_ACCESSIBLE;
    let flags = Flags::PRESENT | Flags::USER_ACCESSIBLE | Flags::GLOBAL;
    for off in (0..len).step_by(Size4KiB::SIZE as usize) {
        let va = crate::mm::layout::MACH2PHYS_VIRT_START + off;
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
        let frame = PhysFrame::containing_address(PhysAddr::new(phys + off));
        // SAFETY: the M2P frames are reserved for the table; the mapping is read-only.
        unsafe { mapper.map_to_with_table_flags(page, frame, flags, table_flags, &mut alloc) }
            .map_err(|e| map_err(e, va))?
            .flush();
    }
    Ok(())
}
