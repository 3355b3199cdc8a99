//! `memory.*`: machine memory for DMA. `XENMEM_exchange` of two of our own pages (unmapped
//! first) for one machine-contiguous extent below 4 GiB, its M2P entries and the new frames
//! mapped back; the exchange's refusals (a frame still mapped, an order beyond dom0's, lists
//! of different sizes); `XENMEM_machine_memory_map` (the MSI/local APIC window reserved, a
//! buffer too short refused).
//!
//! Safety: the two pages are this module's; nothing in Rust refers to their contents, and they
//! are mapped again (over the new frames) before returning. The P2M list the builder gave us is
//! updated for them.

use guest_abi::arch::{MACH2PHYS_VIRT_START, PteFlags};
use guest_abi::memory::{E820_RAM, E820_RESERVED, E820Entry, MemoryOp, XenMemoryExchange};
use guest_abi::runtime::hypercall;
use guest_abi::runtime::{AsmCell, VIRT_BASE};
use guest_abi::xen::{StartInfo, UVMF_INVLPG};
use guest_abi::{PAGE_SHIFT, VirtAddr, XenError};

use crate::check::{Report, Why, ensure, eq};
use crate::domain::mfn_of;

#[repr(C, align(8192))]
struct TwoPages([u8; 8192]);

/// The pages traded for a contiguous extent.
static PAGES: AsmCell<TwoPages> = AsmCell::new(TwoPages([0; 8192]));

/// The M2P entry of `mfn`.
fn m2p(mfn: u64) -> u64 {
    // SAFETY: the hypervisor maps the M2P read-only at MACH2PHYS_VIRT_START for every PV guest.
    unsafe { ((MACH2PHYS_VIRT_START + 8 * mfn) as *const u64).read_volatile() }
}

/// Maps page `i` of [`PAGES`] to `mfn` (0: unmaps it).
fn map_page(i: u64, mfn: u64) -> Result<u64, XenError> {
    let va = PAGES.addr() + (i << PAGE_SHIFT);
    let flags = PteFlags::PRESENT | PteFlags::RW | PteFlags::ACCESSED | PteFlags::DIRTY;
    let pte = if mfn == 0 {
        0
    } else {
        (mfn << PAGE_SHIFT) | flags.bits()
    };
    // SAFETY: the page is this module's and nothing refers to its contents.
    unsafe { hypercall::update_va_mapping(VirtAddr(va), pte, UVMF_INVLPG) }
}

/// Records `mfn` as page `i`'s machine frame in our P2M list.
fn set_p2m(si: &StartInfo, i: u64, mfn: u64) {
    let pfn = ((PAGES.addr() - VIRT_BASE) >> PAGE_SHIFT) + i;
    let list = si.mfn_list as *mut u64;
    // SAFETY: the builder maps the P2M list writable in the bootstrap region; `pfn` is one of
    // our image's pages, below nr_pages.
    unsafe { list.add(pfn as usize).write_volatile(mfn) };
}

/// The exchange of our two pages; returns the new extent's first frame.
fn exchange_pages(si: &StartInfo) -> Result<u64, Why> {
    let old = [mfn_of(si, PAGES.addr()), mfn_of(si, PAGES.addr() + 4096)];
    let pfn = (PAGES.addr() - VIRT_BASE) >> PAGE_SHIFT;
    for i in 0..2 {
        map_page(i, 0).map_err(|err| Why::Xen {
            what: "unmapping a page",
            err,
        })?;
    }
    let mut out = [pfn];
    // SAFETY: both frames are ours and no longer mapped.
    let (done, result) = unsafe { hypercall::memory_exchange(&old, 0, &mut out, 1, 32) };
    let new = out[0];
    let mapped_back = |frames: [u64; 2]| {
        for (i, &m) in frames.iter().enumerate() {
            let _ = map_page(i as u64, m);
            set_p2m(si, i as u64, m);
        }
    };
    if let Err(err) = result {
        mapped_back(old);
        return Err(Why::Xen {
            what: "XENMEM_exchange",
            err,
        });
    }
    mapped_back([new, new + 1]);
    eq("nr_exchanged", done, 2)?;
    ensure(
        new.is_multiple_of(2),
        "the extent is not aligned to its order",
    )?;
    ensure(new < 1 << 20, "the extent is above 4 GiB")?;
    ensure(
        !old.contains(&new),
        "the extent is one of the frames given up",
    )?;
    eq("M2P of the extent's first frame", m2p(new), pfn)?;
    eq("M2P of the extent's second frame", m2p(new + 1), pfn + 1)?;
    // The new frames are ours and writable through the mapping.
    let p = PAGES.addr() as *mut u64;
    // SAFETY: PAGES maps the new frames again; nothing else refers to them.
    let back = unsafe {
        p.add(600).write_volatile(0x5eed);
        p.add(600).read_volatile()
    };
    eq("a word written through the new mapping", back, 0x5eed)?;
    Ok(new)
}

fn exchange_checks(r: &mut Report, si: &StartInfo) {
    r.check(
        "memory.exchange 2 frames for an order-1 extent below 4 GiB",
        exchange_pages(si).map(drop),
    );
    // A frame still mapped (our first page) is refused; nothing was exchanged.
    let mapped = [mfn_of(si, PAGES.addr())];
    let mut out = [0u64];
    // SAFETY: the hypervisor refuses the exchange; the frame stays ours and mapped.
    let got = unsafe { hypercall::memory_exchange(&mapped, 0, &mut out, 0, 0) };
    r.check_eq(
        "memory.exchange of a mapped frame",
        got,
        (0, Err(XenError::Inval)),
    );
    // SAFETY: refused before any frame is looked at.
    let got = unsafe { hypercall::memory_exchange(&mapped, 0, &mut [0; 1], 19, 0) };
    r.check_eq(
        "memory.exchange order 19 beyond dom0's",
        got.1,
        Err(XenError::Perm),
    );
    // SAFETY: as above.
    let got = unsafe { hypercall::memory_exchange(&mapped, 0, &mut [0; 2], 0, 0) };
    r.check_eq(
        "memory.exchange of lists of different sizes",
        got.1,
        Err(XenError::Inval),
    );
    let mut exchange = XenMemoryExchange::default();
    exchange.in_.domid = 0x7ff0;
    exchange.out.domid = 0x7ff0;
    // SAFETY: nothing to exchange; the lists are null and never touched.
    let got = unsafe { hypercall::memory_op(MemoryOp::Exchange, &mut exchange) };
    r.check_eq("memory.exchange of nothing", got, Ok(0));
}

fn machine_map_checks(r: &mut Report) {
    let mut map = [E820Entry::default(); 64];
    let got = hypercall::machine_memory_map(&mut map);
    r.check(
        "memory.machine_memory_map: RAM, and the MSI window reserved",
        got.map_err(|err| Why::Xen {
            what: "machine_memory_map",
            err,
        })
        .and_then(|n| {
            let entries = &map[..n];
            let covers = |e: &E820Entry, a: u64| e.addr <= a && a - e.addr < e.size;
            ensure(entries.iter().any(|e| e.type_ == E820_RAM), "no RAM")?;
            ensure(
                entries.windows(2).all(|w| w[0].addr < w[1].addr),
                "entries out of order",
            )?;
            ensure(
                entries
                    .iter()
                    .any(|e| e.type_ == E820_RESERVED && covers(e, 0xfee0_0000)),
                "0xfee00000 is not in a reserved entry",
            )
        }),
    );
    let got = hypercall::machine_memory_map(&mut map[..1]);
    r.check_eq(
        "memory.machine_memory_map into one entry",
        got,
        Err(XenError::Inval),
    );
}

pub fn run(r: &mut Report, si: &StartInfo) {
    exchange_checks(r, si);
    machine_map_checks(r);
}
