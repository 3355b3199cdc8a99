//! What the boot loader handed over: where the image lies, the multiboot2 information, and
//! the memory boot sets aside for the frame allocator's bitmaps.

unsafe extern "C" {
    static __image_phys_start: u8;
    static __image_phys_end: u8;
}

/// Where the hypervisor's image lies in physical memory (from the linker script).
pub fn image_range() -> crate::mm::PhysRange {
    // Linker-defined symbols: only their addresses are taken.
    crate::mm::PhysRange {
        start: &raw const __image_phys_start as u64,
        end: &raw const __image_phys_end as u64,
    }
}

/// The multiboot2 boot information GRUB left at physical address `mbi_phys`.
pub fn boot_information(
    mbi_phys: u32,
) -> Result<multiboot2::BootInformation<'static>, multiboot2::LoadError> {
    // SAFETY: GRUB passes the physical address of the boot information; the boot page tables
    // direct-map the first 4 GiB, where GRUB places it, and its frames are reserved from the
    // allocator before anything is allocated, so it stays as GRUB wrote it.
    unsafe {
        multiboot2::BootInformation::load(super::paging::phys_to_virt(u64::from(mbi_phys))
            as *const multiboot2::BootInformationHeader)
    }
}

/// The frame allocator's two bitmaps, `words` words each, at physical address `at`: memory
/// below 4 GiB that boot reserved for them (called once).
pub fn frame_bitmaps(at: u64, words: usize) -> (&'static mut [u64], &'static mut [u64]) {
    // SAFETY: the range is usable RAM below 4 GiB (direct-mapped by the boot tables), reserved
    // by boot so no frame in it is ever handed out, and boot calls this once: nothing else
    // refers to it.
    unsafe {
        let base = super::paging::phys_to_virt(at) as *mut u64;
        (
            core::slice::from_raw_parts_mut(base, words),
            core::slice::from_raw_parts_mut(base.add(words), words),
        )
    }
}
