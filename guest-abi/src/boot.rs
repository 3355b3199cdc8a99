//! The start-of-day layout of a PV domain: a pure function from a kernel image and the
//! domain's size to where everything goes, plus the bootstrap page tables, the initial
//! registers and the `start_info` contents. The hypervisor (for dom0) and the toolstack
//! (for domUs) both build domains with it.
//!
//! The layout is the one `xen.h` promises a PV guest:
//! 1. the domain starts in one contiguous virtual region from `VIRT_BASE`, mapped 1:1 onto
//!    its first pseudo-physical frames (virtual page `i` of the region is PFN `i`);
//! 2. the region ends on a 4 MiB boundary, with at least 512 KiB of padding after the last
//!    bootstrap element;
//! 3. in order: kernel, ramdisk (if any), P2M list (one `u64` MFN per PFN), `start_info`,
//!    (not for dom0:) xenstore page and console page, bootstrap page tables, boot stack;
//!    each element starts on a page boundary;
//! 4. everything is mapped writable except the page tables, which are read-only.
//!
//! A domU whose kernel gives `XEN_ELFNOTE_INIT_P2M` gets its P2M list at that address
//! instead, after the region's frames, with page tables of its own ([`p2m`]). The
//! hypervisor's dom0 builder writes the list through the region, so dom0 keeps it there.
//!
//! The page tables are laid out as one L4, then the L3s, L2s and L1s, each level in
//! address order. Their number depends on the region's size, which depends on their
//! number; [`plan_boot`] finds the smallest consistent count.

use core::fmt;

use zerocopy::FromZeros;

use crate::arch::{
    CpuUserRegs, FLAT_KERNEL_CS, FLAT_KERNEL_DS, FLAT_KERNEL_SS, HYPERVISOR_VIRT_END,
    HYPERVISOR_VIRT_START, PteFlags,
};
use crate::image::KernelImage;
use crate::types::{EvtchnPort, Mfn, PAGE_SHIFT, PAGE_SIZE, Pfn, VirtAddr};
use crate::xen::{
    MAX_GUEST_CMDLINE, START_INFO_MAGIC_X86_64, SifFlags, StartInfo, StartInfoConsole,
};

pub mod p2m;
pub use p2m::P2mMapping;

/// The region's end is aligned to this.
pub const REGION_ALIGN: u64 = 4 << 20;
/// Minimum padding after the last bootstrap element.
pub const MIN_PADDING: u64 = 512 << 10;
/// Flags of the bootstrap L4, L3 and L2 entries.
pub const UPPER_TABLE_FLAGS: PteFlags = PteFlags::PRESENT
    .union(PteFlags::RW)
    .union(PteFlags::USER)
    .union(PteFlags::ACCESSED)
    .union(PteFlags::DIRTY);
/// Flags of a bootstrap L1 entry for an ordinary page.
pub const PAGE_FLAGS: PteFlags = PteFlags::PRESENT
    .union(PteFlags::RW)
    .union(PteFlags::USER)
    .union(PteFlags::ACCESSED);
/// Flags of a bootstrap L1 entry for a page-table page (read-only).
pub const PAGE_TABLE_PAGE_FLAGS: PteFlags = PteFlags::PRESENT
    .union(PteFlags::USER)
    .union(PteFlags::ACCESSED);
/// `rflags` at the entry point: interrupts (as Xen sees them) enabled.
pub const INITIAL_RFLAGS: u64 = 1 << 9;

/// What the builder knows about the domain besides its kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootRequest {
    /// Pages the domain owns (PFNs `0..nr_pages`).
    pub nr_pages: u64,
    /// Ramdisk size in bytes; 0 for none.
    pub ramdisk_len: u64,
    /// `start_info.flags`. With [`SifFlags::INITDOMAIN`] the domain is dom0: no xenstore
    /// or console page (dom0 uses `console_io`).
    pub flags: SifFlags,
}

/// Why a domain cannot be laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// `VIRT_BASE` is not page aligned.
    VirtBaseUnaligned,
    /// The region would run past the end of the address space or its canonical half.
    AddressOverflow,
    /// The region overlaps the hypervisor's reserved virtual range.
    OverlapsHypervisor,
    /// The P2M list at `INIT_P2M` runs into the bootstrap region.
    P2mOverlapsRegion,
    /// The bootstrap region needs more pages than the domain has.
    NotEnoughMemory {
        /// Pages the bootstrap region covers.
        needed: u64,
        /// Pages the domain has.
        available: u64,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VirtBaseUnaligned => write!(f, "VIRT_BASE is not page aligned"),
            Self::AddressOverflow => write!(f, "the bootstrap region leaves the address space"),
            Self::OverlapsHypervisor => write!(f, "the bootstrap region overlaps the hypervisor"),
            Self::P2mOverlapsRegion => {
                write!(f, "the P2M list at INIT_P2M runs into the bootstrap region")
            }
            Self::NotEnoughMemory { needed, available } => {
                write!(
                    f,
                    "the bootstrap region needs {needed} pages, the domain has {available}"
                )
            }
        }
    }
}

impl core::error::Error for LayoutError {}

/// A page-aligned run of pages in the bootstrap region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub start: VirtAddr,
    /// Length in pages.
    pub pages: u64,
}

impl Region {
    /// End (exclusive).
    pub const fn end(&self) -> VirtAddr {
        VirtAddr(self.start.0 + self.pages * PAGE_SIZE)
    }

    /// Whether `va` lies in the region.
    pub const fn contains(&self, va: VirtAddr) -> bool {
        va.0 >= self.start.0 && va.0 < self.end().0
    }
}

/// Where each start-of-day element of a PV domain goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootLayout {
    /// Start of the region (`VIRT_BASE`), the address of PFN 0.
    pub virt_base: VirtAddr,
    /// End (exclusive) of the mapped region.
    pub virt_end: VirtAddr,
    /// The kernel's pages.
    pub kernel: Region,
    /// The ramdisk's pages, if there is a ramdisk.
    pub ramdisk: Option<Region>,
    /// Ramdisk length in bytes.
    pub ramdisk_len: u64,
    /// The P2M list, at its virtual address: in the region, or at `INIT_P2M` (then
    /// [`Self::p2m_mapping`] says where its frames are).
    pub p2m: Region,
    /// The P2M list's own mapping, when it is at `INIT_P2M`.
    pub p2m_mapping: Option<P2mMapping>,
    /// The `start_info` page.
    pub start_info: Region,
    /// The xenstore ring page (domU only).
    pub xenstore: Option<Region>,
    /// The console ring page (domU only).
    pub console: Option<Region>,
    /// The bootstrap page tables: the L4 first.
    pub page_tables: Region,
    /// The boot stack.
    pub stack: Region,
    /// Entry point.
    pub entry: VirtAddr,
    /// The page to fill with hypercall stubs, if the kernel asked for one.
    pub hypercall_page: Option<VirtAddr>,
    /// Pages of the domain.
    pub nr_pages: u64,
    /// `start_info.flags`.
    pub flags: SifFlags,
    /// Number of page tables at each level: `[L1, L2, L3, L4]`.
    pub tables_per_level: [u64; 4],
}

/// Pages of `bytes` bytes, rounded up.
const fn pages_for(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE)
}

/// Number of level-`level` tables (1 = L1) needed to map `[start, end)`.
const fn tables_needed(start: u64, end: u64, level: u32) -> u64 {
    let shift = PAGE_SHIFT + 9 * level;
    ((end - 1) >> shift) - (start >> shift) + 1
}

fn region_tables(start: u64, end: u64) -> [u64; 4] {
    [1, 2, 3, 4].map(|level| tables_needed(start, end, level))
}

/// The next free address of the region being laid out.
struct Cursor(u64);

impl Cursor {
    /// The next `pages` pages.
    fn take(&mut self, pages: u64) -> Result<Region, LayoutError> {
        let start = self.0;
        self.0 = pages
            .checked_mul(PAGE_SIZE)
            .and_then(|bytes| start.checked_add(bytes))
            .ok_or(LayoutError::AddressOverflow)?;
        Ok(Region {
            start: VirtAddr(start),
            pages,
        })
    }
}

/// Computes the start-of-day layout of a domain running `kernel`.
pub fn plan_boot(kernel: &KernelImage<'_>, req: &BootRequest) -> Result<BootLayout, LayoutError> {
    let base = kernel.virt_base;
    if !base.is_multiple_of(PAGE_SIZE) {
        return Err(LayoutError::VirtBaseUnaligned);
    }
    let mut cursor = Cursor(base);

    // KernelImage::parse guarantees base <= kstart < kend; checked anyway, since the
    // image's fields are public.
    let kstart = kernel.virt_kstart - kernel.virt_kstart % PAGE_SIZE;
    let gap = kstart
        .checked_sub(base)
        .ok_or(LayoutError::AddressOverflow)?;
    let kernel_len = kernel
        .virt_kend
        .checked_sub(kstart)
        .ok_or(LayoutError::AddressOverflow)?;
    cursor.take(gap / PAGE_SIZE)?; // Pages between VIRT_BASE and the kernel.
    let kernel_region = cursor.take(pages_for(kernel_len))?;
    let ramdisk = match req.ramdisk_len {
        0 => None,
        len => Some(cursor.take(pages_for(len))?),
    };
    let p2m_bytes = req
        .nr_pages
        .checked_mul(8)
        .ok_or(LayoutError::AddressOverflow)?;
    let p2m_pages = pages_for(p2m_bytes);
    let dom0 = req.flags.contains(SifFlags::INITDOMAIN);
    let init_p2m = kernel
        .notes
        .init_p2m
        .filter(|&va| !dom0 && p2m_pages > 0 && va < base && va.is_multiple_of(PAGE_SIZE));
    let p2m = match init_p2m {
        Some(va) => Region {
            start: VirtAddr(va),
            pages: p2m_pages,
        },
        None => cursor.take(p2m_pages)?,
    };
    let start_info = cursor.take(1)?;
    let (xenstore, console) = if dom0 {
        (None, None)
    } else {
        (Some(cursor.take(1)?), Some(cursor.take(1)?))
    };
    let pt_start = cursor.0;

    // Solve "tables needed to map the region" = "tables in the region" from below.
    let mut nr_tables = 0u64;
    let (virt_end, tables) = loop {
        let stack_end = pt_start
            .checked_add(
                (nr_tables + 1)
                    .checked_mul(PAGE_SIZE)
                    .ok_or(LayoutError::AddressOverflow)?,
            )
            .ok_or(LayoutError::AddressOverflow)?;
        let mut end = stack_end
            .checked_next_multiple_of(REGION_ALIGN)
            .ok_or(LayoutError::AddressOverflow)?;
        if end - stack_end < MIN_PADDING {
            end = end
                .checked_add(REGION_ALIGN)
                .ok_or(LayoutError::AddressOverflow)?;
        }
        check_range(base, end)?;
        let tables = region_tables(base, end);
        let needed: u64 = tables.iter().sum();
        if needed <= nr_tables {
            break (end, tables);
        }
        nr_tables = needed;
    };
    let page_tables = cursor.take(nr_tables)?;
    let stack = cursor.take(1)?;

    let mapped = (virt_end - base) / PAGE_SIZE;
    let p2m_mapping = match init_p2m {
        Some(va) => {
            let end = p2m.end().0;
            if end > base {
                return Err(LayoutError::P2mOverlapsRegion);
            }
            check_range(va, end)?;
            Some(P2mMapping::new(VirtAddr(va), p2m_pages, Pfn(mapped), base))
        }
        None => None,
    };
    let needed = mapped + p2m_mapping.map_or(0, |m| m.frames());
    if needed > req.nr_pages {
        return Err(LayoutError::NotEnoughMemory {
            needed,
            available: req.nr_pages,
        });
    }
    Ok(BootLayout {
        virt_base: VirtAddr(base),
        virt_end: VirtAddr(virt_end),
        kernel: kernel_region,
        ramdisk,
        ramdisk_len: req.ramdisk_len,
        p2m,
        p2m_mapping,
        start_info,
        xenstore,
        console,
        page_tables,
        stack,
        entry: VirtAddr(kernel.entry),
        hypercall_page: kernel.hypercall_page.map(VirtAddr),
        nr_pages: req.nr_pages,
        flags: req.flags,
        tables_per_level: tables,
    })
}

/// Checks that `[start, end)` is a canonical range clear of the hypervisor.
fn check_range(start: u64, end: u64) -> Result<(), LayoutError> {
    let (first, last) = (VirtAddr(start), VirtAddr(end - 1));
    if !first.is_canonical() || !last.is_canonical() || (start >> 63) != ((end - 1) >> 63) {
        return Err(LayoutError::AddressOverflow);
    }
    if start < HYPERVISOR_VIRT_END && end > HYPERVISOR_VIRT_START {
        return Err(LayoutError::OverlapsHypervisor);
    }
    Ok(())
}

/// Inputs to `start_info` that only the caller knows.
#[derive(Clone, Copy, Debug)]
pub struct StartInfoParams<'a> {
    /// Machine address of the domain's shared info page.
    pub shared_info_maddr: u64,
    /// Event channel of the xenstore ring (domU).
    pub store_evtchn: EvtchnPort,
    /// Event channel of the console ring (domU).
    pub console_evtchn: EvtchnPort,
    /// The kernel command line (cut to 1023 bytes).
    pub cmdline: &'a [u8],
}

/// One entry of a bootstrap page table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtEntry {
    /// The table (a frame of [`BootLayout::page_tables`]).
    pub table: Pfn,
    /// Level of the table (4 = L4 ... 1 = L1).
    pub level: u32,
    /// Index in the table.
    pub index: usize,
    /// The frame the entry points to: a lower-level table, or for an L1 the mapped page.
    pub target: Pfn,
    /// The entry's flags.
    pub flags: PteFlags,
}

impl BootLayout {
    /// The PFN behind a virtual address of the region.
    pub const fn pfn_of(&self, va: VirtAddr) -> Pfn {
        Pfn((va.0 - self.virt_base.0) >> PAGE_SHIFT)
    }

    /// Pages the bootstrap mapping covers (PFNs `0..mapped_pages()`).
    pub const fn mapped_pages(&self) -> u64 {
        (self.virt_end.0 - self.virt_base.0) >> PAGE_SHIFT
    }

    /// The L4 table's frame.
    pub const fn l4_pfn(&self) -> Pfn {
        self.pfn_of(self.page_tables.start)
    }

    /// First frame of the level-`level` tables (1 = L1).
    fn first_table(&self, level: u32) -> u64 {
        let above: u64 = self.tables_per_level[level as usize..].iter().sum();
        self.l4_pfn().0 + above
    }

    /// The frame of the level-`level` table that maps `va` (the P2M mapping's own, or the
    /// region's).
    fn table_for(&self, level: u32, va: u64) -> Pfn {
        if level == 4 {
            return self.l4_pfn();
        }
        if let Some(own) = self.p2m_mapping.and_then(|m| m.own_table(level, va)) {
            return own;
        }
        let shift = PAGE_SHIFT + 9 * level;
        let index = (va >> shift).wrapping_sub(self.virt_base.0 >> shift);
        Pfn(self.first_table(level).wrapping_add(index))
    }

    /// The first frame of the P2M list.
    pub fn p2m_pfn(&self) -> Pfn {
        self.p2m_mapping
            .map_or_else(|| self.pfn_of(self.p2m.start), |m| m.first_pfn)
    }

    /// Every page-table frame with its level: the region's, L4 first, then the P2M
    /// mapping's (for typing and pinning).
    pub fn page_table_frames(&self) -> impl Iterator<Item = (Pfn, u32)> + '_ {
        let region = (1..=4u32).rev().flat_map(move |level| {
            let first = self.first_table(level);
            (first..first + self.tables_per_level[level as usize - 1])
                .map(move |pfn| (Pfn(pfn), level))
        });
        region.chain(
            self.p2m_mapping
                .into_iter()
                .flat_map(P2mMapping::table_frames),
        )
    }

    /// The entry of the level-`level` table mapping `va` that points to `target`.
    fn entry(&self, level: u32, va: u64, target: Pfn, flags: PteFlags) -> PtEntry {
        PtEntry {
            table: self.table_for(level, va),
            level,
            index: VirtAddr(va).table_index(level),
            target,
            flags,
        }
    }

    /// The entries of the P2M mapping: its tables hung under the region's L4 (or a table
    /// shared with the region), and the list's pages, writable.
    fn p2m_entries(&self) -> impl Iterator<Item = PtEntry> + '_ {
        let m = self.p2m_mapping;
        let tables = (1..=3u32).rev().flat_map(move |level| {
            m.into_iter().flat_map(move |m| {
                m.table_starts(level).filter_map(move |va| {
                    let own = m.own_table(level, va)?;
                    Some(self.entry(level + 1, va, own, UPPER_TABLE_FLAGS))
                })
            })
        });
        let pages = m.into_iter().flat_map(move |m| {
            m.pages()
                .map(move |(va, pfn)| self.entry(1, va, pfn, PAGE_FLAGS))
        });
        tables.chain(pages)
    }

    /// Every present entry of the bootstrap page tables; all other entries are zero.
    /// The caller translates PFNs to MFNs and writes `mfn << 12 | flags`.
    pub fn page_table_entries(&self) -> impl Iterator<Item = PtEntry> + '_ {
        (1..=4u32)
            .rev()
            .flat_map(move |level| {
                let step = 1u64 << (PAGE_SHIFT + 9 * (level - 1));
                let first = self.virt_base.0 & !(step - 1);
                let count = (self.virt_end.0 - 1 - first) / step + 1;
                (0..count).map(move |i| {
                    let va = first + i * step;
                    let (target, flags) = if level == 1 {
                        let flags = if self.page_tables.contains(VirtAddr(va)) {
                            PAGE_TABLE_PAGE_FLAGS
                        } else {
                            PAGE_FLAGS
                        };
                        (self.pfn_of(VirtAddr(va)), flags)
                    } else {
                        (self.table_for(level - 1, va), UPPER_TABLE_FLAGS)
                    };
                    self.entry(level, va, target, flags)
                })
            })
            .chain(self.p2m_entries())
    }

    /// The registers at the entry point: `rip` = entry, `rsp` = top of the boot stack,
    /// `rsi` = `start_info`, flat kernel selectors. (CR3 is the L4, [`Self::l4_pfn`].)
    pub fn initial_registers(&self) -> CpuUserRegs {
        CpuUserRegs {
            rip: self.entry.0,
            rsp: self.stack.end().0,
            rsi: self.start_info.start.0,
            cs: FLAT_KERNEL_CS,
            ss: FLAT_KERNEL_SS,
            ds: FLAT_KERNEL_DS,
            es: FLAT_KERNEL_DS,
            rflags: INITIAL_RFLAGS,
            ..CpuUserRegs::default()
        }
    }

    /// The `start_info` to write into the start info page; `mfn_of` is the domain's P2M.
    pub fn start_info(
        &self,
        params: &StartInfoParams<'_>,
        mfn_of: impl Fn(Pfn) -> Mfn,
    ) -> StartInfo {
        let mut si = StartInfo::new_zeroed();
        si.magic[..START_INFO_MAGIC_X86_64.len()].copy_from_slice(START_INFO_MAGIC_X86_64);
        si.nr_pages = self.nr_pages;
        si.shared_info = params.shared_info_maddr;
        si.flags = self.flags.bits();
        if let (Some(store), Some(console)) = (self.xenstore, self.console) {
            si.store_mfn = mfn_of(self.pfn_of(store.start)).0;
            si.store_evtchn = params.store_evtchn.0;
            si.console = StartInfoConsole {
                mfn: mfn_of(self.pfn_of(console.start)).0,
                evtchn: params.console_evtchn.0,
                _hole: 0,
            };
        } else {
            si.console = StartInfoConsole::dom0(0, 0);
        }
        si.pt_base = self.page_tables.start.0;
        si.nr_pt_frames = self.page_tables.pages;
        si.mfn_list = self.p2m.start.0;
        if let Some(m) = self.p2m_mapping {
            si.first_p2m_pfn = m.first_pfn.0;
            si.nr_p2m_frames = m.frames();
        }
        if let Some(ramdisk) = self.ramdisk {
            si.mod_start = ramdisk.start.0;
            si.mod_len = self.ramdisk_len;
        }
        let len = params.cmdline.len().min(MAX_GUEST_CMDLINE - 1);
        si.cmd_line[..len].copy_from_slice(&params.cmdline[..len]);
        si
    }
}
