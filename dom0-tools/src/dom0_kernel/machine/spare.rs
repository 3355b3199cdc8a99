//! Maps dom0's memory beyond its bootstrap region ([`super::super::spare::plan`]) for the
//! heap: for each L1 table of the plan, its frame is zeroed through a `mapping` slot, hung
//! into the region's L2 table with `mmu_update` (the hypervisor validates it as an L1),
//! then filled with the heap's frames, 512 entries per `mmu_update`. Page tables are read
//! through the bootstrap mapping (the hypervisor maps them read-only there), frames found
//! with the P2M list and the M2P table.

use alloc::vec::Vec;

use guest_abi::arch::MACH2PHYS_VIRT_START;
use guest_abi::boot::{PAGE_FLAGS, UPPER_TABLE_FLAGS};
use guest_abi::runtime::{hypercall, virt_base};
use guest_abi::xen::{MmuUpdate, MmuUpdateCmd, StartInfo};
use guest_abi::{DomId, Mfn, PAGE_SHIFT, PAGE_SIZE, Pfn, VirtAddr, XenError};

use super::super::spare::{SparePlan, plan};
use super::mapping;

const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Reads entry `index` of the page table in frame `mfn`, through the bootstrap mapping.
fn read_entry(mfn: Mfn, index: u64) -> u64 {
    let m2p = MACH2PHYS_VIRT_START as *const u64;
    // SAFETY: the M2P is mapped read-only in every PV guest and `mfn` is one of our own
    // page-table frames, which lie in the bootstrap region (kernel module assumptions).
    let pfn = unsafe { m2p.add(mfn.0 as usize).read_volatile() };
    let table = (virt_base() + (pfn << PAGE_SHIFT)) as *const u64;
    // SAFETY: the bootstrap page tables are mapped read-only in the bootstrap region;
    // `index` is below 512 (callers mask it).
    unsafe { table.add(index as usize).read_volatile() }
}

/// The MFN of our PFN `pfn`, from the P2M list (inside the bootstrap region).
fn mfn_of(si: &StartInfo, pfn: Pfn) -> Mfn {
    let p2m = si.mfn_list as *const u64;
    // SAFETY: the hypervisor maps the P2M list, `nr_pages` entries, at `mfn_list`;
    // callers pass PFNs below `nr_pages`.
    Mfn(unsafe { p2m.add(pfn.0 as usize).read_volatile() })
}

fn update(reqs: &[MmuUpdate]) -> Result<(), XenError> {
    let mut done = 0;
    // SAFETY: the updates only touch L2 entries and L1 tables of addresses past the
    // bootstrap region, which nothing in dom0 uses yet.
    unsafe { hypercall::mmu_update(reqs, &mut done, DomId::SELF) }.map(|_| ())
}

/// Entry `index` of the table in frame `table` := `val`.
fn pte(table: Mfn, index: u64, val: u64) -> MmuUpdate {
    MmuUpdate {
        ptr: table.addr() + index * 8 + u64::from(MmuUpdateCmd::NormalPtUpdate.raw()),
        val,
    }
}

/// Maps dom0's spare memory; returns the plan carried out, or `None` when there is none.
pub fn map_spare(si: &StartInfo) -> Result<Option<SparePlan>, XenError> {
    let base = VirtAddr(virt_base());
    let Some(p) = plan(base, VirtAddr(si.pt_base), si.nr_pt_frames, si.nr_pages) else {
        return Ok(None);
    };
    // The L2 table that maps p.va: L4 -> L3 -> L2.
    let mut table = mfn_of(si, Pfn((si.pt_base - base.0) >> PAGE_SHIFT));
    for level in [4, 3] {
        let entry = read_entry(table, p.va.table_index(level) as u64);
        if entry & 1 == 0 {
            return Ok(None); // No table there to extend.
        }
        table = Mfn((entry & ADDR_MASK) >> PAGE_SHIFT);
    }
    let l2 = table;
    let first = p.va.table_index(2) as u64;
    // Drop whatever the L2 maps there first, so no frame of ours stays mapped.
    let clear: Vec<MmuUpdate> = (0..p.tables).map(|i| pte(l2, first + i, 0)).collect();
    update(&clear)?;
    let mut entries = Vec::with_capacity(512);
    for i in 0..p.tables {
        let l1 = mfn_of(si, p.table_pfn(i));
        mapping::map(DomId::SELF, l1)?.write(0, &[0; PAGE_SIZE as usize])?;
        update(&[pte(l2, first + i, l1.addr() | UPPER_TABLE_FLAGS.bits())])?;
        entries.clear();
        entries.extend((i * 512..((i + 1) * 512).min(p.pages)).map(|k| {
            let mfn = mfn_of(si, p.page_pfn(k));
            pte(l1, k % 512, mfn.addr() | PAGE_FLAGS.bits())
        }));
        update(&entries)?;
    }
    Ok(Some(p))
}
