//! dom0's memory beyond its bootstrap mapping, for the heap: where it goes and which of
//! its frames become page tables. Pure; `machine::spare` carries it out.
//!
//! The hypervisor maps only the bootstrap region (`xen.h`: up to at least 512 KiB past the
//! boot stack, which follows the page tables, rounded up to 4 MiB); the PFNs after it are
//! dom0's but unmapped. They are mapped 1:1 right after the region, in the same 1 GiB (one
//! existing L2 table), by new L1 tables taken from the last of those PFNs. A 64 MiB dom0
//! has some 40 MiB there; a bzImage's kernel is decompressed into it.

use guest_abi::{PAGE_SIZE, Pfn, VirtAddr};

/// Bytes one L1 table maps.
pub const L1_SPAN: u64 = 512 * PAGE_SIZE;
/// Bytes one L2 table maps.
pub const L2_SPAN: u64 = 512 * L1_SPAN;
const PADDING: u64 = 512 << 10;
const REGION_ALIGN: u64 = 4 << 20;

/// What to map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SparePlan {
    /// The first byte mapped (the end of the bootstrap region, 2 MiB aligned).
    pub va: VirtAddr,
    /// The PFN mapped at `va`; the heap's pages are `first_pfn..first_pfn + pages`.
    pub first_pfn: Pfn,
    /// Pages mapped for the heap.
    pub pages: u64,
    /// L1 tables, at PFNs `first_pfn + pages ..`; table `i` maps `va + i * L1_SPAN`.
    pub tables: u64,
}

impl SparePlan {
    /// The PFN of L1 table `i`.
    pub const fn table_pfn(&self, i: u64) -> Pfn {
        Pfn(self.first_pfn.0 + self.pages + i)
    }

    /// The PFN of the heap's page `i`.
    pub const fn page_pfn(&self, i: u64) -> Pfn {
        Pfn(self.first_pfn.0 + i)
    }

    /// Bytes mapped for the heap.
    pub const fn bytes(&self) -> u64 {
        self.pages * PAGE_SIZE
    }
}

/// The plan for a domain of `nr_pages` pages whose bootstrap region starts at `virt_base`
/// and whose `nr_pt_frames` page tables start at `pt_base`; `None` when nothing is left
/// to map (or the start_info values make no sense).
pub fn plan(
    virt_base: VirtAddr,
    pt_base: VirtAddr,
    nr_pt_frames: u64,
    nr_pages: u64,
) -> Option<SparePlan> {
    let stack_end = nr_pt_frames
        .checked_add(1)?
        .checked_mul(PAGE_SIZE)?
        .checked_add(pt_base.0)?;
    let va = stack_end
        .checked_add(PADDING)?
        .checked_next_multiple_of(REGION_ALIGN)?;
    let first_pfn = va.checked_sub(virt_base.0)? / PAGE_SIZE;
    let spare = nr_pages.checked_sub(first_pfn)?;
    // The same L2 table: up to the next 1 GiB boundary.
    let room = (L2_SPAN - va % L2_SPAN) / PAGE_SIZE;
    let tables = spare.div_ceil(513).min(room.div_ceil(512));
    let pages = (spare - tables).min(room).min(tables * 512);
    (pages > 0).then_some(SparePlan {
        va: VirtAddr(va),
        first_pfn: Pfn(first_pfn),
        pages,
        tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0xffff_ffff_8000_0000;

    fn plan(pt_base: u64, nr_pt_frames: u64, nr_pages: u64) -> Option<SparePlan> {
        super::plan(VirtAddr(BASE), VirtAddr(pt_base), nr_pt_frames, nr_pages)
    }

    #[test]
    fn a_64_mib_dom0_maps_what_follows_its_region() {
        // Region: 6 MiB of kernel and ramdisk, 4 tables, stack; ends at 8 MiB.
        let p = plan(BASE + (6 << 20), 4, 16384).unwrap();
        assert_eq!(p.va.0, BASE + (8 << 20));
        assert_eq!(p.first_pfn, Pfn(2048));
        assert_eq!(p.pages + p.tables, 16384 - 2048);
        assert!(p.tables * 512 >= p.pages);
        assert!((p.tables - 1) * 512 < p.pages);
        assert_eq!(p.table_pfn(p.tables - 1), Pfn(16383));
        assert_eq!(p.page_pfn(0), p.first_pfn);
        assert_eq!(
            p.page_pfn(p.pages),
            p.table_pfn(0),
            "the tables follow the heap"
        );
    }

    #[test]
    fn the_padding_may_take_another_4_mib() {
        // The stack ends 256 KiB before a 4 MiB boundary: less than 512 KiB of padding.
        let pt = BASE + (4 << 20) - (256 << 10) - 5 * PAGE_SIZE;
        let p = plan(pt, 4, 16384).unwrap();
        assert_eq!(p.va.0, BASE + (8 << 20));
    }

    #[test]
    fn nothing_to_map() {
        assert_eq!(plan(BASE + (6 << 20), 4, 2048), None);
        assert_eq!(plan(BASE + (6 << 20), 4, 100), None);
        assert_eq!(plan(BASE - (64 << 20), 4, 1 << 20), None);
        assert_eq!(plan(u64::MAX - 100, 4, 1 << 20), None);
    }

    #[test]
    fn the_mapping_stays_in_one_l2_table() {
        // 4 GiB of dom0: only up to the end of the region's 1 GiB.
        let p = plan(BASE + (6 << 20), 4, 1 << 20).unwrap();
        assert_eq!(p.va.0 + p.bytes(), BASE + L2_SPAN);
        assert!(p.tables * 512 >= p.pages);
        assert!(p.table_pfn(p.tables - 1).0 < 1 << 20);
    }
}
