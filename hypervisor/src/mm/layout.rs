//! The hypervisor's virtual address layout.
//!
//! Xen's x86-64 PV ABI reserves L4 slots 256–271 (`0xffff800000000000`–`0xffff87ffffffffff`)
//! for the hypervisor in every address space, guests' included. Xen fixes only the guest-visible
//! part of it (the read-only M2P table at its start); the rest is ours:
//!
//! | L4 slot | start                | what                                          |
//! |---------|----------------------|-----------------------------------------------|
//! | 256     | `0xffff800000000000` | machine-to-phys table, read-only to guests    |
//! | 261     | `0xffff828000000000` | hypervisor image (maps physical 0 and up)     |
//! | 262–271 | `0xffff830000000000` | direct map of all physical memory (5 TiB)     |

/// Start of the range every address space reserves for the hypervisor.
pub const HYPERVISOR_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// End (exclusive) of the hypervisor range.
pub const HYPERVISOR_VIRT_END: u64 = 0xffff_8800_0000_0000;
/// Where the M2P table is visible to guests (`MACH2PHYS_VIRT_START`).
pub const MACH2PHYS_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// Virtual address at which physical address 0 of the image window starts. The image is linked
/// at `IMAGE_VIRT_BASE + IMAGE_PHYS_BASE` (see `hypervisor/linker.ld`).
pub const IMAGE_VIRT_BASE: u64 = 0xffff_8280_0000_0000;
/// Physical address at which GRUB loads the image.
pub const IMAGE_PHYS_BASE: u64 = 0x20_0000;
/// Base of the direct map: physical address `p` is visible at `DIRECTMAP_BASE + p`.
pub const DIRECTMAP_BASE: u64 = 0xffff_8300_0000_0000;
/// Size of the direct-map window.
pub const DIRECTMAP_SIZE: u64 = HYPERVISOR_VIRT_END - DIRECTMAP_BASE;

/// The L4 slot that translates `va`.
pub const fn l4_slot(va: u64) -> usize {
    ((va >> 39) & 0x1ff) as usize
}

/// Whether `va` lies in the hypervisor's reserved range.
pub const fn in_hypervisor_range(va: u64) -> bool {
    va >= HYPERVISOR_VIRT_START && va < HYPERVISOR_VIRT_END
}

const _: () = assert!(l4_slot(HYPERVISOR_VIRT_START) == 256);
const _: () = assert!(l4_slot(HYPERVISOR_VIRT_END - 1) == 271);
const _: () = assert!(l4_slot(IMAGE_VIRT_BASE) == 261);
const _: () = assert!(l4_slot(DIRECTMAP_BASE) == 262);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_inside_the_reserved_range() {
        assert!(in_hypervisor_range(IMAGE_VIRT_BASE + IMAGE_PHYS_BASE));
        assert!(in_hypervisor_range(DIRECTMAP_BASE + DIRECTMAP_SIZE - 1));
        assert!(!in_hypervisor_range(HYPERVISOR_VIRT_END));
        assert!(!in_hypervisor_range(0xffff_ffff_8000_0000));
    }
}
