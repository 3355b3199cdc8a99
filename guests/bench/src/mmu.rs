//! PV MMU benchmarks: one `mmu_update` and a batch of 512 on a scratch L1 table,
//! `update_va_mapping` with `UVMF_INVLPG`, pinning and unpinning a fresh four-level address
//! space, and `NEW_BASEPTR` between two address spaces.
//!
//! The scratch L1 is a spare page of the image, remapped read-only and hooked into the
//! highest free slot of the bootstrap L2 that maps `VIRT_BASE`; its entries map one of two
//! data pages of the image, and every update switches an entry to the other one (so the
//! hypervisor drops one reference and takes another each time).

use guest_abi::runtime::{VIRT_BASE, hypercall, start_info};
use guest_abi::xen::{MmuUpdate, MmuUpdateCmd, MmuextCmd, MmuextOp, UVMF_INVLPG};
use guest_abi::{DomId, PAGE_SHIFT, PAGE_SIZE, VirtAddr};

use crate::error::Error;
use crate::pt::{self, DATA, ENTRIES, Spare, TABLE};
use crate::run::{Spec, bench_each, failed};

/// L4 slots of the hypervisor (`HYPERVISOR_VIRT_START` to `_END`); it fills them itself.
const HYPERVISOR_SLOTS: core::ops::RangeInclusive<usize> = 256..=271;

pub fn run() {
    match Scratch::setup() {
        Ok(s) => {
            bench_single(&s);
            bench_va_mapping(&s);
            bench_batch(&s);
        }
        Err(e) => {
            for name in ["mmu_update_1", "update_va_mapping_invlpg", "mmu_update_512"] {
                failed(name, e);
            }
        }
    }
    match pin_setup() {
        Ok(l4) => bench_pin(l4),
        Err(e) => failed("pin_unpin_l4", e),
    }
    match switch_setup() {
        Ok(l4) => bench_switch(l4),
        Err(e) => failed("new_baseptr", e),
    }
}

fn mmu_update(reqs: &[MmuUpdate]) -> Result<(), Error> {
    let mut done = 0;
    // SAFETY: every request rewrites an entry of the scratch L1, which maps only the two
    // data pages at addresses nothing else uses.
    unsafe { hypercall::mmu_update(reqs, &mut done, DomId::SELF) }
        .map(drop)
        .map_err(|e| Error::xen("mmu_update", e))
}

fn mmuext(what: &'static str, cmd: MmuextCmd, mfn: u64) -> Result<(), Error> {
    let op = MmuextOp {
        cmd: cmd as u32,
        _hole: 0,
        arg1: mfn,
        arg2: 0,
    };
    let mut done = 0;
    // SAFETY: the tables pinned, unpinned and switched to are the benchmark's own and map
    // the kernel the same way (or not at all, for ones that are never loaded).
    unsafe { hypercall::mmuext_op(&[op], &mut done, DomId::SELF) }
        .map(drop)
        .map_err(|e| Error::xen(what, e))
}

/// The `ptr` of a checked update of the entry at machine address `maddr`.
fn normal_update(maddr: u64) -> u64 {
    maddr | MmuUpdateCmd::NormalPtUpdate as u64
}

/// The scratch L1, hooked in.
struct Scratch {
    /// Its machine address.
    l1: u64,
    /// The virtual address its entry 0 maps.
    va: u64,
    /// The two entry values the updates alternate between.
    values: [u64; 2],
}

impl Scratch {
    fn setup() -> Result<Self, Error> {
        let l1 = Spare::ScratchL1;
        l1.make_read_only()?;
        let first = pt::index(VIRT_BASE, 2);
        let slot = (first + 1..ENTRIES)
            .rev()
            .find(|&i| pt::read_entry(VIRT_BASE, 2, i).is_ok_and(|e| e & 1 == 0))
            .ok_or(Error::Text("no free slot in the bootstrap L2"))?;
        let l2 = pt::table_of(VIRT_BASE, 2)?;
        mmu_update(&[MmuUpdate {
            ptr: normal_update((l2 << PAGE_SHIFT) + 8 * slot as u64),
            val: (l1.mfn() << PAGE_SHIFT) | TABLE,
        }])
        .map_err(|_| Error::Text("hooking the scratch L1 into the L2 failed"))?;
        Ok(Self {
            l1: l1.mfn() << PAGE_SHIFT,
            va: (VIRT_BASE & !((1 << 30) - 1)) + ((slot as u64) << 21),
            values: [Spare::DataA, Spare::DataB].map(|p| (p.mfn() << PAGE_SHIFT) | DATA),
        })
    }

    fn request(&self, entry: usize, which: u32) -> MmuUpdate {
        MmuUpdate {
            ptr: normal_update(self.l1 + 8 * entry as u64),
            val: self.values[which as usize & 1],
        }
    }
}

fn bench_single(s: &Scratch) {
    bench_each(Spec::new("mmu_update_1", 200), |i| {
        mmu_update(&[s.request(0, i)])
    });
}

fn bench_va_mapping(s: &Scratch) {
    let va = VirtAddr(s.va + PAGE_SIZE);
    bench_each(Spec::new("update_va_mapping_invlpg", 200), |i| {
        // SAFETY: the address is in the scratch range, which only the benchmarks use.
        unsafe { hypercall::update_va_mapping(va, s.values[i as usize & 1], UVMF_INVLPG) }
            .map(drop)
            .map_err(|e| Error::xen("update_va_mapping", e))
    });
}

fn bench_batch(s: &Scratch) {
    let batch = |which| core::array::from_fn::<_, ENTRIES, _>(|e| s.request(e, which));
    let batches = [batch(0), batch(1)];
    bench_each(Spec::new("mmu_update_512", 8), |i| {
        mmu_update(&batches[i as usize & 1])
    });
}

/// Builds the fresh address space: an L4 whose slot 0 leads through an L3 and an L2 to an
/// L1 whose 512 entries map a data page; all four made read-only. Returns the L4's frame.
fn pin_setup() -> Result<u64, Error> {
    let mut table = [0u64; ENTRIES];
    table.fill((Spare::DataA.mfn() << PAGE_SHIFT) | DATA);
    Spare::PinL1.fill(&table);
    table.fill(0);
    for (page, next) in [
        (Spare::PinL2, Spare::PinL1),
        (Spare::PinL3, Spare::PinL2),
        (Spare::PinL4, Spare::PinL3),
    ] {
        table[0] = (next.mfn() << PAGE_SHIFT) | TABLE;
        page.fill(&table);
    }
    for page in [Spare::PinL1, Spare::PinL2, Spare::PinL3, Spare::PinL4] {
        page.make_read_only()?;
    }
    Ok(Spare::PinL4.mfn())
}

/// `PIN_L4_TABLE` (validating all four levels) then `UNPIN_TABLE` (releasing them).
fn bench_pin(l4: u64) {
    bench_each(Spec::new("pin_unpin_l4", 8), |_| {
        mmuext("mmuext_op(PIN_L4_TABLE)", MmuextCmd::PinL4Table, l4)?;
        mmuext("mmuext_op(UNPIN_TABLE)", MmuextCmd::UnpinTable, l4)
    });
}

/// A second address space: a copy of the bootstrap L4 (so it maps the kernel through the
/// same L3 tables), the hypervisor's slots left empty, read-only and pinned. Returns its
/// frame.
fn switch_setup() -> Result<u64, Error> {
    let base = start_info().pt_base as *const [u64; ENTRIES];
    // SAFETY: `pt_base` is the bootstrap L4, mapped read-only in the bootstrap region.
    let mut table = unsafe { base.read_volatile() };
    table[HYPERVISOR_SLOTS].fill(0);
    Spare::SwitchL4.fill(&table);
    Spare::SwitchL4.make_read_only()?;
    let l4 = Spare::SwitchL4.mfn();
    mmuext("mmuext_op(PIN_L4_TABLE)", MmuextCmd::PinL4Table, l4)?;
    Ok(l4)
}

/// `NEW_BASEPTR` to the copy and back: the cost is per switch.
fn bench_switch(l4: u64) {
    let home = pt::l4_mfn();
    bench_each(Spec::new("new_baseptr", 100).ops(2), |_| {
        mmuext("mmuext_op(NEW_BASEPTR)", MmuextCmd::NewBaseptr, l4)?;
        mmuext("mmuext_op(NEW_BASEPTR)", MmuextCmd::NewBaseptr, home)
    });
}
