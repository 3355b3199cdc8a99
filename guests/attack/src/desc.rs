//! `desc.*`: segment descriptors a guest installs with `update_descriptor` and `set_gdt`. Code
//! and data descriptors of DPL 0 must come out with DPL 3 (the guest kernel runs in ring 3);
//! system descriptors (TSS, LDT, task gates) must be refused; call gates must not lead to the
//! hypervisor's code; a GDT page must not stay writable.
//!
//! Scratch page 8 is the descriptor page; 9 a second page for `set_gdt`.

use guest_abi::hypercall::Hypercall;
use guest_abi::runtime::hypercall;
use guest_abi::{PAGE_SHIFT, XenError};

use crate::mem::{self, RO, RW, scratch};
use crate::mmu::hypervisor_frame;
use crate::report::{OK, Report, Want, err};

const DESC_PAGE: usize = 8;
const GDT_PAGE: usize = 9;

/// 64-bit code, present, DPL 0, execute/read.
const CODE64_DPL0: u64 = 0x0020_9a00_0000_ffff;
/// Data, present, DPL 0, read/write.
const DATA_DPL0: u64 = 0x00cf_9200_0000_ffff;
/// Available 64-bit TSS (system type 9), present, DPL 0.
const TSS: u64 = 0x0000_8900_0000_0067;
/// LDT (system type 2), present, DPL 0.
const LDT: u64 = 0x0000_8200_0000_0fff;
/// Task gate (type 5), present, DPL 3.
const TASK_GATE: u64 = 0x0000_e500_0028_0000;
/// A 64-bit call gate (type 0xc), present, DPL 3, to `sel:0x1000`.
const fn call_gate(sel: u64) -> u64 {
    0x0000_ec00_0000_1000 | (sel << 16)
}
/// Xen's ring-0 code selector.
const HYPERVISOR_CS: u64 = 0xe008;
/// The DPL bits of a descriptor.
const DPL: u64 = 3 << 45;

fn update_descriptor(maddr: u64, desc: u64) -> i64 {
    // SAFETY: the descriptor page is a scratch page nothing loads a selector from.
    unsafe { hypercall::raw(Hypercall::UpdateDescriptor, [maddr, desc, 0, 0, 0]) }
}

fn set_gdt(frames: &[u64], entries: u64) -> i64 {
    // SAFETY: the guest's own selectors are the flat ones in the hypervisor's reserved part
    // of the GDT, which set_gdt does not touch; the frame list is valid for the call.
    unsafe {
        hypercall::raw(
            Hypercall::SetGdt,
            [frames.as_ptr() as u64, entries, 0, 0, 0],
        )
    }
}

fn read_desc(slot: usize) -> u64 {
    let p = scratch(DESC_PAGE) as *const u64;
    // SAFETY: the descriptor page is mapped (read-only or writable) while this runs.
    unsafe { p.add(slot).read_volatile() }
}

pub fn run(r: &mut Report) {
    let page = mem::mfn_of(scratch(DESC_PAGE));
    let maddr = |slot: u64| (page << PAGE_SHIFT) + 8 * slot;
    mem::clear(DESC_PAGE);
    // Xen lets a guest update descriptors in any page of its own that is not a page table,
    // even one it has mapped writable (it could write the page itself).
    r.ret(
        "desc.update_descriptor into a page mapped writable",
        update_descriptor(maddr(9), DATA_DPL0),
        OK,
    );
    let _ = mem::remap(DESC_PAGE, page, RO);

    for (slot, desc, names) in [
        (
            1,
            CODE64_DPL0,
            [
                "desc.update_descriptor code DPL 0 (accepted as DPL 3)",
                "desc.update_descriptor code DPL 0 stored with DPL 3",
            ],
        ),
        (
            2,
            DATA_DPL0,
            [
                "desc.update_descriptor data DPL 0 (accepted as DPL 3)",
                "desc.update_descriptor data DPL 0 stored with DPL 3",
            ],
        ),
    ] {
        let ret = update_descriptor(maddr(slot), desc);
        r.ret(names[0], ret, OK);
        if ret == 0 {
            let d = read_desc(slot as usize);
            r.check(names[1], d & DPL == DPL, format_args!("stored {d:#x}"));
        }
    }
    for (name, slot, desc, expect) in [
        ("desc.update_descriptor TSS", 3, TSS, err(XenError::Inval)),
        (
            "desc.update_descriptor LDT descriptor",
            4,
            LDT,
            err(XenError::Inval),
        ),
        (
            "desc.update_descriptor task gate",
            5,
            TASK_GATE,
            err(XenError::Inval),
        ),
        (
            "desc.update_descriptor call gate to the hypervisor's CS",
            6,
            call_gate(HYPERVISOR_CS),
            err(XenError::Inval),
        ),
        (
            "desc.update_descriptor call gate to the guest's CS",
            8,
            call_gate(0xe033),
            err(XenError::Inval).xen(Want::Ok),
        ),
        (
            "desc.update_descriptor misaligned address",
            0,
            0,
            err(XenError::Inval),
        ),
    ] {
        let at = if slot == 0 { maddr(1) + 4 } else { maddr(slot) };
        r.ret(name, update_descriptor(at, desc), expect);
    }
    let _ = mem::remap(DESC_PAGE, page, RW);
    let hv = hypervisor_frame();
    r.ret(
        "desc.update_descriptor in a hypervisor frame",
        update_descriptor(hv << PAGE_SHIFT, 0),
        err(XenError::Inval),
    );
    r.ret(
        "desc.update_descriptor in our running L4",
        update_descriptor(mem::l4() << PAGE_SHIFT, 0),
        err(XenError::Inval),
    );

    // set_gdt: frames must be ours, not writable, of at most 14 pages of descriptors.
    let gdt_page = mem::mfn_of(scratch(GDT_PAGE));
    mem::clear(GDT_PAGE);
    mem::poke(GDT_PAGE, 1, CODE64_DPL0);
    r.ret(
        "desc.set_gdt of a page mapped writable",
        set_gdt(&[gdt_page], 512),
        err(XenError::Inval),
    );
    r.ret(
        "desc.set_gdt of a hypervisor frame",
        set_gdt(&[hv], 512),
        err(XenError::Inval),
    );
    r.ret(
        "desc.set_gdt with 7169 entries (into the hypervisor's part)",
        set_gdt(&[gdt_page; 15], 7169),
        err(XenError::Inval),
    );
    let _ = mem::remap(GDT_PAGE, gdt_page, RO);
    let ret = set_gdt(&[gdt_page], 512);
    r.ret(
        "desc.set_gdt of a read-only page with a DPL 0 code descriptor",
        ret,
        OK,
    );
    if ret == 0 {
        r.ret(
            "desc.map the GDT page writable",
            mem::uvm(scratch(DESC_PAGE), (gdt_page << PAGE_SHIFT) | RW),
            err(XenError::Busy),
        );
        let _ = mem::remap(DESC_PAGE, page, RW);
        r.ret(
            "desc.update_descriptor TSS into the live GDT",
            update_descriptor((gdt_page << PAGE_SHIFT) + 16, TSS),
            err(XenError::Inval),
        );
        r.ret("desc.set_gdt back to no entries", set_gdt(&[], 0), OK);
    }
    let _ = mem::remap(GDT_PAGE, gdt_page, RW);
}
