//! The guest's own page tables, as a PV kernel sees them: machine frames of its pages from
//! the P2M list, the bootstrap tables' virtual addresses through the M2P table (they are
//! mapped read-only in the bootstrap region), walks to the machine address of an entry, and
//! the spare pages of the image the benchmarks turn into page tables.

use core::cell::UnsafeCell;

use guest_abi::arch::{MACH2PHYS_VIRT_START, PteFlags};
use guest_abi::runtime::{VIRT_BASE, hypercall, start_info};
use guest_abi::xen::UVMF_INVLPG;
use guest_abi::{PAGE_SHIFT, PAGE_SIZE, VirtAddr};

use crate::error::Error;

/// Entries per table.
pub const ENTRIES: usize = 512;
/// Flags of a page-table entry that points to a table: present, writable, user, accessed.
pub const TABLE: u64 = PteFlags::PRESENT.bits()
    | PteFlags::RW.bits()
    | PteFlags::USER.bits()
    | PteFlags::ACCESSED.bits();
/// Flags of a writable kernel data mapping: present, writable, accessed, dirty.
pub const DATA: u64 = PteFlags::PRESENT.bits()
    | PteFlags::RW.bits()
    | PteFlags::ACCESSED.bits()
    | PteFlags::DIRTY.bits();
/// Flags of a read-only kernel mapping.
pub const READ_ONLY: u64 = DATA & !PteFlags::RW.bits();
const ADDR: u64 = PteFlags::ADDR_MASK;

/// The pages of the image the benchmarks use, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spare {
    /// Replaced by the shared info frame.
    SharedInfo = 0,
    /// A scratch L1 table, hooked into a free slot of the bootstrap L2.
    ScratchL1,
    /// A data page the scratch mappings point to.
    DataA,
    /// The other data page.
    DataB,
    /// The fresh address space that is pinned and unpinned: its L4.
    PinL4,
    /// Its L3.
    PinL3,
    /// Its L2.
    PinL2,
    /// Its L1.
    PinL1,
    /// A copy of the bootstrap L4, the second address space for `NEW_BASEPTR`.
    SwitchL4,
    /// Replaced by the grant-table frame.
    GrantTable,
    /// Where the grant map benchmark maps a grant.
    GrantWindow,
}

const SPARES: usize = Spare::GrantWindow as usize + 1;

#[repr(C, align(4096))]
struct Page([u64; ENTRIES]);

#[repr(transparent)]
struct Pages(UnsafeCell<[Page; SPARES]>);

// SAFETY: one vCPU; the pages are only reached through raw pointers (`Spare::ptr`).
unsafe impl Sync for Pages {}

static PAGES: Pages = Pages(UnsafeCell::new([const { Page([0; ENTRIES]) }; SPARES]));

impl Spare {
    /// The page's virtual address.
    pub fn va(self) -> u64 {
        self.ptr() as u64
    }

    /// The page as 512 words.
    pub fn ptr(self) -> *mut [u64; ENTRIES] {
        // SAFETY: in bounds of the array.
        unsafe { (&raw mut (*PAGES.0.get())[self as usize].0) }
    }

    /// Its machine frame.
    pub fn mfn(self) -> u64 {
        mfn_of(self.va())
    }

    /// Fills the page (which must still be mapped writable) with `entries`.
    pub fn fill(self, entries: &[u64; ENTRIES]) {
        // SAFETY: the page is ours, mapped writable while the caller fills it, and nothing
        // holds a reference into it.
        unsafe { self.ptr().write_volatile(*entries) }
    }

    /// Maps the page back onto its own frame, writable.
    pub fn remap_own(self) -> Result<(), Error> {
        self.map_frame(self.mfn())
    }

    /// Maps frame `mfn` writable over the page.
    pub fn map_frame(self, mfn: u64) -> Result<(), Error> {
        let pte = (mfn << PAGE_SHIFT) | DATA;
        // SAFETY: only this spare page's mapping changes; nothing holds a reference into it.
        unsafe { hypercall::update_va_mapping(VirtAddr(self.va()), pte, UVMF_INVLPG) }
            .map(drop)
            .map_err(|err| Error::xen("update_va_mapping", err))
    }

    /// Remaps the page read-only (so the hypervisor accepts it as a page table).
    pub fn make_read_only(self) -> Result<(), Error> {
        let pte = (self.mfn() << PAGE_SHIFT) | READ_ONLY;
        // SAFETY: only this page's mapping changes, to read-only; the benchmarks write it
        // through hypercalls from now on.
        unsafe { hypercall::update_va_mapping(VirtAddr(self.va()), pte, UVMF_INVLPG) }
            .map(drop)
            .map_err(|err| Error::xen("update_va_mapping(read-only)", err))
    }
}

/// The machine frame of the bootstrap region's page at `va`, from the P2M list.
pub fn mfn_of(va: u64) -> u64 {
    let si = start_info();
    let pfn = (va - VIRT_BASE) >> PAGE_SHIFT;
    assert!(pfn < si.nr_pages, "{va:#x} is not in the bootstrap region");
    // SAFETY: the builder maps the P2M list (nr_pages entries) in the bootstrap region,
    // which stays mapped; `pfn` is below nr_pages.
    unsafe {
        (si.mfn_list as *const u64)
            .add(pfn as usize)
            .read_volatile()
    }
}

/// The machine frame of the bootstrap L4.
pub fn l4_mfn() -> u64 {
    mfn_of(start_info().pt_base)
}

/// The virtual address of page table `mfn`: one of the bootstrap tables or one of ours.
fn table_va(mfn: u64) -> Result<u64, Error> {
    let si = start_info();
    // SAFETY: the hypervisor maps the read-only M2P table at MACH2PHYS_VIRT_START, with an
    // entry for every frame of ours; a volatile read because it may change.
    let pfn = unsafe {
        (MACH2PHYS_VIRT_START as *const u64)
            .add(mfn as usize)
            .read_volatile()
    };
    let va = VIRT_BASE.wrapping_add(pfn << PAGE_SHIFT);
    let bootstrap = si.pt_base..si.pt_base + si.nr_pt_frames * PAGE_SIZE;
    if bootstrap.contains(&va) || va == Spare::ScratchL1.va() {
        Ok(va)
    } else {
        Err(Error::Text("page table outside the bootstrap tables"))
    }
}

/// Reads entry `index` of table `mfn`.
fn entry(mfn: u64, index: usize) -> Result<u64, Error> {
    let va = table_va(mfn)?;
    // SAFETY: `table_va` checked that the table is mapped (read-only) in the bootstrap
    // region or is our scratch table; `index` is below 512.
    Ok(unsafe { (va as *const u64).add(index % ENTRIES).read_volatile() })
}

/// The index of `va` in its level-`level` table (1 to 4).
pub fn index(va: u64, level: u32) -> usize {
    ((va >> (PAGE_SHIFT + 9 * (level - 1))) & 511) as usize
}

/// The machine frame of the level-`level` table (1 to 3) on the way to `va`, walking from
/// the bootstrap L4.
pub fn table_of(va: u64, level: u32) -> Result<u64, Error> {
    let mut mfn = l4_mfn();
    for l in (level + 1..=4).rev() {
        let e = entry(mfn, index(va, l))?;
        if e & PteFlags::PRESENT.bits() == 0 {
            return Err(Error::Text("no page table on the way"));
        }
        if l < 4 && e & PteFlags::PSE.bits() != 0 {
            return Err(Error::Text("superpage on the way"));
        }
        mfn = (e & ADDR) >> PAGE_SHIFT;
    }
    Ok(mfn)
}

/// Entry `index` of the level-`level` table on the way to `va`.
pub fn read_entry(va: u64, level: u32, index: usize) -> Result<u64, Error> {
    entry(table_of(va, level)?, index)
}
