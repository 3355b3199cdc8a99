//! The P2M list where the kernel asks for it (`XEN_ELFNOTE_INIT_P2M`; Linux: 512 GiB, L4
//! slot 1), outside the bootstrap region, as Xen's domain builder places it
//! (`xg_dom_core.c: xc_dom_build_image`, `xg_dom_x86.c: alloc_p2m_list_x86_64`):
//! - only for an address below `VIRT_BASE` and page aligned; otherwise the list stays in
//!   the region (Xen drops the note the same way); a list running into the region is an
//!   error;
//! - its frames follow the bootstrap region's (`first_p2m_pfn` = the region's page count):
//!   the list's pages, then the page tables that map it at its address, L3s, then L2s,
//!   then L1s (the L4 is the region's, and a table the region already has at some level
//!   is shared, not repeated);
//! - `start_info.mfn_list` is that address, `first_p2m_pfn`/`nr_p2m_frames` cover the list
//!   and its tables; the list is mapped writable and its tables nowhere.

use crate::types::{PAGE_SHIFT, PAGE_SIZE, Pfn, VirtAddr};

/// The P2M list mapped at `INIT_P2M`, with its own page tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct P2mMapping {
    /// Where the list is mapped (`INIT_P2M`).
    pub va: VirtAddr,
    /// The list's first frame; its tables follow the list.
    pub first_pfn: Pfn,
    /// Pages of the list.
    pub list_pages: u64,
    /// Tables the mapping adds at levels 1, 2 and 3.
    pub tables_per_level: [u64; 3],
}

const fn shift(level: u32) -> u32 {
    PAGE_SHIFT + 9 * (level - 1)
}

impl P2mMapping {
    /// The mapping of `list_pages` pages at `va` (below the region at `region_start`),
    /// its frames from `first_pfn` on.
    pub(super) fn new(va: VirtAddr, list_pages: u64, first_pfn: Pfn, region_start: u64) -> Self {
        let end = va.0 + list_pages * PAGE_SIZE;
        let tables_per_level = [1, 2, 3].map(|level| {
            let (lo, hi) = (va.0 >> shift(level + 1), (end - 1) >> shift(level + 1));
            // The region's table that maps its first byte may map our last too.
            let shared = hi == region_start >> shift(level + 1);
            hi - lo + 1 - u64::from(shared)
        });
        Self {
            va,
            first_pfn,
            list_pages,
            tables_per_level,
        }
    }

    /// Frames of the list and its tables (`nr_p2m_frames`).
    pub fn frames(&self) -> u64 {
        self.list_pages + self.tables_per_level.iter().sum::<u64>()
    }

    /// The first frame of the level-`level` tables (1 to 3), L3s first.
    fn first_table(&self, level: u32) -> u64 {
        let above: u64 = self.tables_per_level[level as usize..].iter().sum();
        self.first_pfn.0 + self.list_pages + above
    }

    /// This mapping's own level-`level` table (1 to 3) that maps `va`, if it has one.
    pub(super) fn own_table(&self, level: u32, va: u64) -> Option<Pfn> {
        let count = *self.tables_per_level.get(level.checked_sub(1)? as usize)?;
        let i = (va >> shift(level + 1)).checked_sub(self.va.0 >> shift(level + 1))?;
        (i < count).then(|| Pfn(self.first_table(level) + i))
    }

    /// Every table of the mapping with its level, L3s first.
    pub(super) fn table_frames(self) -> impl Iterator<Item = (Pfn, u32)> {
        (1..=3u32).rev().flat_map(move |level| {
            let first = self.first_table(level);
            (first..first + self.tables_per_level[level as usize - 1])
                .map(move |pfn| (Pfn(pfn), level))
        })
    }

    /// The address each own level-`level` table (1 to 3) starts mapping, in order.
    pub(super) fn table_starts(self, level: u32) -> impl Iterator<Item = u64> {
        let s = shift(level + 1);
        let first = self.va.0 >> s;
        (0..self.tables_per_level[level as usize - 1]).map(move |i| (first + i) << s)
    }

    /// The address of each page of the list, with its frame.
    pub(super) fn pages(self) -> impl Iterator<Item = (u64, Pfn)> {
        (0..self.list_pages).map(move |i| (self.va.0 + i * PAGE_SIZE, Pfn(self.first_pfn.0 + i)))
    }
}
