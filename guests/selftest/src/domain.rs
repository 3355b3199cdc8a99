//! Facts about the running domain the checks need: machine frames from the P2M list, and
//! the shared info page, mapped by its machine address over a page of our own image.

use core::sync::atomic::{AtomicU64, Ordering};

use guest_abi::arch::PteFlags;
use guest_abi::runtime::hypercall;
use guest_abi::xen::{SharedInfo, StartInfo, UVMF_INVLPG};
use guest_abi::{PAGE_SHIFT, VirtAddr, XenError};

use guest_abi::runtime::AsmCell;
use guest_abi::runtime::VIRT_BASE;

/// A page-aligned page of the image whose mapping is replaced by the shared info frame.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

static SHARED_INFO_PAGE: AsmCell<Page> = AsmCell::new(Page([0; 4096]));
/// The virtual address of the shared info page once mapped (0 before).
static SHARED_INFO: AtomicU64 = AtomicU64::new(0);

/// The machine frame of the bootstrap region's page at virtual address `va`, from the
/// P2M list the builder mapped at `start_info.mfn_list`.
pub fn mfn_of(si: &StartInfo, va: u64) -> u64 {
    let pfn = (va - VIRT_BASE) >> PAGE_SHIFT;
    assert!(pfn < si.nr_pages, "{va:#x} is not in the bootstrap region");
    let list = si.mfn_list as *const u64;
    // SAFETY: the builder maps the P2M list (nr_pages entries) in the bootstrap region,
    // which stays mapped; `pfn` is below nr_pages.
    unsafe { list.add(pfn as usize).read_volatile() }
}

/// The machine frame of the bootstrap L4 table (`start_info.pt_base`).
pub fn l4_mfn(si: &StartInfo) -> u64 {
    mfn_of(si, si.pt_base)
}

/// Maps the shared info page (`start_info.shared_info` is its machine address) with
/// `update_va_mapping` over a page of the image.
pub fn map_shared_info(si: &StartInfo) -> Result<u64, XenError> {
    let va = SHARED_INFO_PAGE.addr();
    let flags = PteFlags::PRESENT | PteFlags::RW | PteFlags::ACCESSED | PteFlags::DIRTY;
    let pte = (si.shared_info & PteFlags::ADDR_MASK) | flags.bits();
    // SAFETY: the page is ours and nothing else uses it; replacing its frame by the shared
    // info frame changes no memory Rust relies on.
    let result = unsafe { hypercall::update_va_mapping(VirtAddr(va), pte, UVMF_INVLPG) };
    if result.is_ok() {
        SHARED_INFO.store(va, Ordering::Relaxed);
    }
    result
}

/// The shared info page, if [`map_shared_info`] succeeded.
pub fn shared_info() -> Option<*const SharedInfo> {
    match SHARED_INFO.load(Ordering::Relaxed) {
        0 => None,
        va => Some(va as *const SharedInfo),
    }
}

/// `vcpu_info[0].arch.cr2`: the hypervisor's record of the last page fault's address.
pub fn vcpu0_cr2() -> Option<u64> {
    let p = shared_info()?;
    // SAFETY: `p` maps the shared info page (map_shared_info); the hypervisor writes it
    // concurrently, hence a volatile read of one field through a raw pointer.
    Some(unsafe { (&raw const (*p).vcpu_info[0].arch.cr2).read_volatile() })
}

/// `vcpu_info[0].evtchn_upcall_mask`.
pub fn vcpu0_upcall_mask() -> Option<u8> {
    let p = shared_info()?;
    // SAFETY: as in `vcpu0_cr2`.
    Some(unsafe { (&raw const (*p).vcpu_info[0].evtchn_upcall_mask).read_volatile() })
}
