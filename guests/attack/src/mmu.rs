//! `mmu.*`: page-table attacks. Writable mappings of the guest's own tables, mappings of
//! frames it does not own (freed, the hypervisor's), the M2P, the hypervisor's L4 slots,
//! linear page tables, a bad entry deep inside a table being pinned, unpinning the running
//! L4, a type change racing a mapping inside one multicall, superpages, machine addresses
//! outside RAM.
//!
//! Scratch pages (see `mem`): 0 is the victim whose mapping the cases replace (and restore),
//! 1 is given back to the hypervisor (and stays unmapped: a guard page after page 0), 2–5 form
//! a page-table tree, 6 is the frame of the multicall race, 7 a data page.

use guest_abi::arch::MACH2PHYS_VIRT_START;
use guest_abi::hypercall::Hypercall;
use guest_abi::runtime::hypercall;
use guest_abi::xen::{MmuextCmd, StartInfo};
use guest_abi::{DomId, PAGE_SHIFT, XenError};

use crate::mem::{self, PSE, RO, RW, TABLE, entry_mfn, mmuext, scratch, uvm};
use crate::report::{Expect, Got, OK, Report, Want, err};
use crate::traps::{got, trapped};

/// The victim page.
const VICTIM: usize = 0;
/// The page given back.
const FREED: usize = 1;
/// The tree: L4, L3, L2, L1.
const TREE: [usize; 4] = [2, 3, 4, 5];
/// The frame of the race.
const RACE: usize = 6;
/// A data page.
const DATA: usize = 7;
/// A free L4 slot in the guest half (the kernel lives in slot 511).
const FREE_L4_SLOT: u64 = 300;
/// A free slot of the L2 that maps the image.
const FREE_L2_SLOT: u64 = 500;

/// A page-table entry for `mfn`.
const fn pte(mfn: u64, flags: u64) -> u64 {
    (mfn << PAGE_SHIFT) | flags
}

/// Machine address of entry `slot` of table `mfn` (an `MMU_NORMAL_PT_UPDATE` request).
const fn slot_ptr(mfn: u64, slot: u64) -> u64 {
    (mfn << PAGE_SHIFT) + 8 * slot
}

/// `DOMID_IO`.
const DOMID_IO: u16 = 0x7ff1;
/// `DOMID_XEN`.
const DOMID_XEN: u16 = 0x7ff2;

fn self_dom() -> u64 {
    u64::from(DomId::SELF.0)
}

/// A frame of the hypervisor: what its L4 slot 256 (the M2P) points to in our L4.
pub fn hypervisor_frame() -> u64 {
    entry_mfn(mem::read_table(mem::l4(), 256))
}

/// The cases; `first` on the first pass, which gives the `FREED` page back (later passes reuse
/// the frame given back then) and tries the shared_info frame.
pub fn run(r: &mut Report, si: &StartInfo, first: bool) {
    let victim_va = scratch(VICTIM);
    let victim = mem::mfn_of(victim_va);
    let ([l4, l3, l2, l1], _) = mem::walk(victim_va);
    let victim_pte = mem::pte_maddr(victim_va);
    let restore = |r: &mut Report| {
        let ret = uvm(victim_va, pte(victim, RW));
        if ret != 0 {
            r.ret("mmu.restore the victim mapping", ret, OK);
        }
    };

    // Writable mappings of our own tables, through update_va_mapping and mmu_update.
    let tables = [("L1", l1), ("L2", l2), ("L3", l3), ("L4", l4)];
    for (i, (level, mfn)) in tables.into_iter().enumerate() {
        let names = [
            "mmu.update_va_mapping own L1 writable",
            "mmu.update_va_mapping own L2 writable",
            "mmu.update_va_mapping own L3 writable",
            "mmu.update_va_mapping own L4 writable",
        ];
        let _ = level;
        r.ret(names[i], uvm(victim_va, pte(mfn, RW)), err(XenError::Busy));
    }
    restore(r);
    for (i, (_, mfn)) in tables.into_iter().enumerate() {
        let names = [
            "mmu.mmu_update own L1 writable",
            "mmu.mmu_update own L2 writable",
            "mmu.mmu_update own L3 writable",
            "mmu.mmu_update own L4 writable",
        ];
        r.ret(
            names[i],
            mem::mmu_update(victim_pte, pte(mfn, RW), self_dom()),
            err(XenError::Busy),
        );
    }
    r.ret(
        "mmu.mmu_update (PRESERVE_AD) own L1 writable",
        mem::mmu_update(victim_pte | 2, pte(l1, RW), self_dom()),
        err(XenError::Busy),
    );
    restore(r);
    // The control: a read-only view of a table is how guests read them, and is allowed.
    r.ret(
        "mmu.update_va_mapping own L4 read-only (allowed)",
        uvm(victim_va, pte(l4, RO)),
        OK,
    );
    restore(r);

    // A frame given back to the hypervisor.
    let freed_va = scratch(FREED);
    let freed = mem::mfn_of(freed_va);
    if first {
        let unmapped = uvm(freed_va, 0);
        let released = mem::release(freed);
        r.check(
            "mmu.give a frame back (unmap, decrease_reservation)",
            unmapped == 0 && released == 1,
            format_args!("unmap {unmapped}, released {released}"),
        );
    }
    // Each of these is refused, so none changes the victim's mapping.
    for (name, ret, expect) in [
        (
            "mmu.update_va_mapping a freed frame writable",
            uvm(victim_va, pte(freed, RW)),
            err(XenError::Busy),
        ),
        (
            "mmu.update_va_mapping a freed frame read-only",
            uvm(victim_va, pte(freed, RO)),
            err(XenError::Busy),
        ),
        (
            "mmu.mmu_update write into a freed frame",
            mem::mmu_update(slot_ptr(freed, 0), 0x1234, self_dom()),
            err(XenError::Inval),
        ),
    ] {
        r.ret(name, ret, expect);
    }
    restore(r);

    // The hypervisor's frames.
    let hv = hypervisor_frame();
    // Page owners named through foreigndom: DOMID_IO for RAM, DOMID_XEN for a frame the
    // hypervisor did not share.
    for (name, ret, expect) in [
        (
            "mmu.update_va_mapping a hypervisor frame writable",
            uvm(victim_va, pte(hv, RW)),
            err(XenError::Busy),
        ),
        (
            "mmu.update_va_mapping a hypervisor frame read-only",
            uvm(victim_va, pte(hv, RO)),
            err(XenError::Busy),
        ),
        (
            "mmu.mmu_update write into a hypervisor frame",
            mem::mmu_update(slot_ptr(hv, 0), 0, self_dom()),
            err(XenError::Inval),
        ),
        (
            "mmu.mmu_update MACHPHYS_UPDATE of a hypervisor frame",
            mem::mmu_update(slot_ptr(hv, 0) | 1, 0x10, self_dom()),
            err(XenError::Inval),
        ),
        (
            "mmu.mmu_update MACHPHYS_UPDATE of our own frame (allowed)",
            mem::mmu_update(slot_ptr(victim, 0) | 1, mem::m2p(victim), self_dom()),
            OK,
        ),
        (
            "mmu.mmu_update map a hypervisor frame as DOMID_IO",
            mem::mmu_update(victim_pte, pte(hv, RW), u64::from(DOMID_IO)),
            err(XenError::Busy),
        ),
        (
            "mmu.mmu_update map a hypervisor frame read-only as DOMID_XEN",
            mem::mmu_update(victim_pte, pte(hv, RO), u64::from(DOMID_XEN)),
            err(XenError::Busy).domu(XenError::Perm),
        ),
    ] {
        r.ret(name, ret, expect);
    }
    restore(r);

    // The shared_info frame is the hypervisor's, shared writable with the guest: mapping it
    // writable is allowed, giving it back is not. First pass only: Xen takes the frame away
    // from the domain (a later pass could not map it).
    if first {
        let shared = si.shared_info >> PAGE_SHIFT;
        r.ret(
            "mmu.update_va_mapping shared_info writable (allowed: shared with the guest)",
            uvm(victim_va, pte(shared, RW)),
            OK,
        );
        restore(r);
        // Xen counts the extent as done (and frees nothing: the frame is not in the domain's
        // allocation, but the domain may no longer map it); we refuse it.
        r.case(
            "mmu.decrease_reservation of the shared_info frame frees nothing",
            Got::Value(mem::release(shared) as u64),
            crate::report::same(Want::Value(0)).xen(Want::Value(1)),
        );
    }

    // The M2P: readable, never writable.
    let value: u64;
    let trap = trapped!("mov rax, qword ptr [rcx]"; in("rcx") MACH2PHYS_VIRT_START + 8 * victim, out("rax") value);
    r.case(
        "mmu.read the M2P entry of our frame (allowed)",
        got(trap, value),
        crate::report::same(Want::Value(mem::m2p(victim))),
    );
    let trap = trapped!("mov qword ptr [rcx], rax"; in("rcx") MACH2PHYS_VIRT_START + 8 * victim, in("rax") 0u64);
    r.case("mmu.write the M2P", got(trap, 0), Expect::trap(14));
    r.ret(
        "mmu.update_va_mapping of the M2P's address",
        uvm(MACH2PHYS_VIRT_START, pte(victim, RW)),
        err(XenError::Inval),
    );
    r.ret(
        "mmu.update_va_mapping at a non-canonical address",
        uvm(0x0000_8000_0000_0000, pte(victim, RW)),
        err(XenError::Inval),
    );

    // The hypervisor's L4 slots.
    for (name, slot) in [
        ("mmu.mmu_update L4 slot 256 (M2P) to our L3", 256),
        ("mmu.mmu_update L4 slot 262 (direct map) to our L3", 262),
        ("mmu.mmu_update L4 slot 271 to our L3", 271),
    ] {
        r.ret(
            name,
            mem::mmu_update(slot_ptr(l4, slot), pte(l3, TABLE), self_dom()),
            err(XenError::Inval),
        );
    }
    r.ret(
        "mmu.mmu_update clear L4 slot 256",
        mem::mmu_update(slot_ptr(l4, 256), 0, self_dom()),
        err(XenError::Inval),
    );

    // Linear (recursive) page tables: read-only ones Xen accepts (we refuse them all),
    // writable ones give a writable view of a table and are refused everywhere.
    let linear = [
        (
            "mmu.linear L4 entry to its own L4, read-only",
            l4,
            FREE_L4_SLOT,
            l4,
            RO | 4,
        ),
        (
            "mmu.linear L2 entry to its own L2, read-only",
            l2,
            FREE_L2_SLOT,
            l2,
            RO | 4,
        ),
    ];
    for (name, table, slot, target, flags) in linear {
        let ret = mem::mmu_update(slot_ptr(table, slot), pte(target, flags), self_dom());
        r.ret(name, ret, err(XenError::Inval).xen(Want::Ok));
        if ret == 0 {
            let _ = mem::mmu_update(slot_ptr(table, slot), 0, self_dom());
        }
    }
    for (name, table, slot, target) in [
        (
            "mmu.linear L4 entry to its own L4, writable",
            l4,
            FREE_L4_SLOT,
            l4,
        ),
        (
            "mmu.linear L2 entry to its own L2, writable",
            l2,
            FREE_L2_SLOT,
            l2,
        ),
        ("mmu.L4 entry to an L2 (wrong level)", l4, FREE_L4_SLOT, l2),
        ("mmu.L2 entry to our L4 (wrong level)", l2, FREE_L2_SLOT, l4),
    ] {
        let ret = mem::mmu_update(slot_ptr(table, slot), pte(target, TABLE), self_dom());
        r.ret(name, ret, err(XenError::Inval));
        if ret == 0 {
            let _ = mem::mmu_update(slot_ptr(table, slot), 0, self_dom());
        }
    }

    // Superpages and reserved flags.
    let aligned = victim & !511;
    r.ret(
        "mmu.L2 superpage (PSE) entry",
        mem::mmu_update(
            slot_ptr(l2, FREE_L2_SLOT),
            pte(aligned, RW | PSE),
            self_dom(),
        ),
        err(XenError::Inval),
    );
    r.ret(
        "mmu.L3 1 GiB page (PSE) entry",
        mem::mmu_update(
            slot_ptr(l3, 0),
            pte(aligned & !0x3ffff, RW | PSE),
            self_dom(),
        ),
        err(XenError::Inval),
    );

    // Machine addresses outside RAM.
    r.ret(
        "mmu.mmu_update at a machine address beyond RAM",
        mem::mmu_update(0x000f_ffff_ffff_f000, 0, self_dom()),
        err(XenError::Inval),
    );
    r.ret(
        "mmu.mmu_update at the local APIC's address",
        mem::mmu_update(0xfee0_0000, 0, self_dom()),
        err(XenError::Inval),
    );
    r.ret(
        "mmu.mmu_update sub-command 7",
        mem::mmu_update(victim_pte | 7, pte(victim, RW), self_dom()),
        err(XenError::NoSys),
    );

    tree(r, hv, freed);
    unpin_running(r, l4, victim_va);
    race(r, victim_va);
    baseptr(r, hv, l1, freed);
    restore(r);
}

/// Gives back the frame of the running L4 (the last case: the domain keeps running on it, since
/// CR3 holds a reference), then tries to map it writable.
pub fn release_running_l4(r: &mut Report) {
    let l4 = mem::l4();
    r.case(
        "mmu.decrease_reservation of the running L4 (it stays while CR3 holds it)",
        Got::Ret(mem::release(l4)),
        crate::report::same(Want::Ok),
    );
    r.ret(
        "mmu.map the given-back running L4 writable",
        uvm(scratch(VICTIM), pte(l4, RW)),
        err(XenError::Busy),
    );
    let _ = uvm(scratch(VICTIM), pte(mem::mfn_of(scratch(VICTIM)), RW));
}

/// Builds the tree L4 → L3 → L2 → L1 in scratch pages 2–5 with `leaf` in L1 slot 5, makes it
/// read-only and tries to pin it; unpins on success and makes the pages writable again.
fn pin_tree(leaf: u64) -> i64 {
    let mfns = TREE.map(|i| mem::mfn_of(scratch(i)));
    for (k, &i) in TREE.iter().enumerate() {
        mem::clear(i);
        if k < 3 {
            mem::poke(i, 0, pte(mfns[k + 1], TABLE));
        }
    }
    mem::poke(TREE[3], 5, leaf);
    for (k, &i) in TREE.iter().enumerate() {
        let _ = mem::remap(i, mfns[k], RO);
    }
    let ret = mmuext(MmuextCmd::PinL4Table, mfns[0], 0);
    if ret == 0 {
        let _ = mmuext(MmuextCmd::UnpinTable, mfns[0], 0);
    }
    for (k, &i) in TREE.iter().enumerate() {
        let _ = mem::remap(i, mfns[k], RW);
    }
    ret
}

/// Pinning a tree with one bad entry three levels down.
fn tree(r: &mut Report, hv: u64, freed: u64) {
    let data = mem::mfn_of(scratch(DATA));
    let l2 = mem::mfn_of(scratch(TREE[2]));
    r.ret(
        "mmu.pin an L4 tree whose L1 maps our data page (allowed)",
        pin_tree(pte(data, RW)),
        OK,
    );
    r.ret(
        "mmu.pin an L4 tree whose L1 maps a hypervisor frame",
        pin_tree(pte(hv, RO)),
        err(XenError::Busy),
    );
    r.ret(
        "mmu.pin an L4 tree whose L1 maps a freed frame",
        pin_tree(pte(freed, RW)),
        err(XenError::Busy),
    );
    r.ret(
        "mmu.pin an L4 tree whose L1 maps its own L2 writable",
        pin_tree(pte(l2, RW)),
        err(XenError::Busy),
    );
    r.ret(
        "mmu.pin an L4 tree whose L1 has a reserved bit (GNTTAB, 62)",
        pin_tree(pte(data, RO) | (1 << 62)),
        err(XenError::Inval).xen(Want::Ok),
    );
    // Pinning a page still mapped writable, as a table.
    r.ret(
        "mmu.pin an L1 still mapped writable",
        mmuext(MmuextCmd::PinL1Table, data, 0),
        err(XenError::Inval),
    );
    r.ret(
        "mmu.pin a hypervisor frame as L1",
        mmuext(MmuextCmd::PinL1Table, hv, 0),
        err(XenError::Inval),
    );
    r.ret(
        "mmu.unpin a frame that is not pinned",
        mmuext(MmuextCmd::UnpinTable, data, 0),
        err(XenError::Inval),
    );
}

/// Unpinning the L4 that is in CR3 is allowed (the base pointer keeps its type), but it must
/// not become mappable writable.
fn unpin_running(r: &mut Report, l4: u64, victim_va: u64) {
    r.ret(
        "mmu.pin the running L4 again (already pinned)",
        mmuext(MmuextCmd::PinL4Table, l4, 0),
        err(XenError::Inval),
    );
    let ret = mmuext(MmuextCmd::UnpinTable, l4, 0);
    r.ret("mmu.unpin the running L4 (allowed, CR3 keeps it)", ret, OK);
    r.ret(
        "mmu.map the unpinned running L4 writable",
        uvm(victim_va, pte(l4, RW)),
        err(XenError::Busy),
    );
    if ret == 0 {
        r.ret(
            "mmu.pin the running L4 again",
            mmuext(MmuextCmd::PinL4Table, l4, 0),
            OK,
        );
    }
}

/// A multicall that turns a frame into a pinned L1 and then maps it writable, and one that
/// maps it writable and then pins it.
fn race(r: &mut Report, victim_va: u64) {
    let f_va = scratch(RACE);
    let f = mem::mfn_of(f_va);
    mem::clear(RACE);
    let pin = [MmuextCmd::PinL1Table as u64, f, 0];
    let mut done = 0u32;
    let ext = |ops: &[u64; 3], done: &mut u32| {
        [
            ops.as_ptr() as u64,
            1,
            done as *mut u32 as u64,
            self_dom(),
            0,
            0,
        ]
    };
    let mut calls = [
        multicall(Hypercall::UpdateVaMapping, [f_va, pte(f, RO), 2, 0, 0, 0]),
        multicall(Hypercall::MmuextOp, ext(&pin, &mut done)),
        multicall(
            Hypercall::UpdateVaMapping,
            [victim_va, pte(f, RW), 2, 0, 0, 0],
        ),
    ];
    let ret = run_multicall(&mut calls);
    let results = calls.map(|c| c[1] as i64);
    r.check(
        "mmu.multicall: pin an L1 then map it writable",
        ret == 0 && results[0] == 0 && results[1] == 0 && results[2] < 0,
        format_args!("multicall {ret}, results {results:?}"),
    );
    r.case(
        "mmu.multicall: the writable mapping of the new L1 is refused",
        Got::Ret(results[2]),
        err(XenError::Busy),
    );
    let _ = mmuext(MmuextCmd::UnpinTable, f, 0);
    let _ = uvm(victim_va, pte(mem::mfn_of(victim_va), RW));
    let _ = mem::remap(RACE, f, RW);

    let mut calls = [
        multicall(
            Hypercall::UpdateVaMapping,
            [victim_va, pte(f, RW), 2, 0, 0, 0],
        ),
        multicall(Hypercall::MmuextOp, ext(&pin, &mut done)),
    ];
    let ret = run_multicall(&mut calls);
    let results = calls.map(|c| c[1] as i64);
    r.check(
        "mmu.multicall: map a frame writable then pin it",
        ret == 0 && results[0] == 0,
        format_args!("multicall {ret}, results {results:?}"),
    );
    r.case(
        "mmu.multicall: pinning the frame mapped writable is refused",
        Got::Ret(results[1]),
        err(XenError::Inval),
    );
    let _ = mmuext(MmuextCmd::UnpinTable, f, 0);
}

/// `NEW_BASEPTR` with frames that are not a validated L4 of ours.
fn baseptr(r: &mut Report, hv: u64, l1: u64, freed: u64) {
    for (name, mfn) in [
        ("mmu.NEW_BASEPTR to a hypervisor frame", hv),
        ("mmu.NEW_BASEPTR to our L1", l1),
        ("mmu.NEW_BASEPTR to a freed frame", freed),
    ] {
        r.ret(
            name,
            mmuext(MmuextCmd::NewBaseptr, mfn, 0),
            err(XenError::Inval),
        );
    }
    r.ret(
        "mmu.NEW_USER_BASEPTR to a hypervisor frame",
        mmuext(MmuextCmd::NewUserBaseptr, hv, 0),
        err(XenError::Inval),
    );
    let l4 = mem::l4();
    r.ret(
        "mmu.CLEAR_PAGE of our L4",
        mmuext(MmuextCmd::ClearPage, l4, 0),
        err(XenError::Inval),
    );
    r.ret(
        "mmu.COPY_PAGE over our L4",
        mmuext(MmuextCmd::CopyPage, l4, mem::mfn_of(scratch(DATA))),
        err(XenError::Inval),
    );
    r.ret(
        "mmu.COPY_PAGE from a hypervisor frame",
        mmuext(MmuextCmd::CopyPage, mem::mfn_of(scratch(DATA)), hv),
        err(XenError::Inval),
    );
    r.ret(
        "mmu.SET_LDT in the hypervisor range",
        mmuext(MmuextCmd::SetLdt, 0xffff_8000_0000_0000, 16),
        err(XenError::Inval),
    );
    r.ret(
        "mmu.SET_LDT with 8193 entries",
        mmuext(MmuextCmd::SetLdt, scratch(DATA), 8193),
        err(XenError::Inval),
    );
    r.ret(
        "mmu.SET_LDT at a misaligned base",
        mmuext(MmuextCmd::SetLdt, scratch(DATA) + 8, 16),
        err(XenError::Inval),
    );
    r.ret(
        "mmu.mmuext_op unknown command 99",
        mmuext_raw(99),
        err(XenError::NoSys),
    );
}

fn mmuext_raw(cmd: u64) -> i64 {
    let op = [cmd, 0, 0];
    let mut done = 0u32;
    // SAFETY: an unknown command changes nothing.
    unsafe {
        hypercall::raw(
            Hypercall::MmuextOp,
            [op.as_ptr() as u64, 1, &raw mut done as u64, self_dom(), 0],
        )
    }
}

/// A multicall entry: `op`, result, six arguments.
pub fn multicall(op: Hypercall, args: [u64; 6]) -> [u64; 8] {
    let [a, b, c, d, e, f] = args;
    [u64::from(op.raw()), 0, a, b, c, d, e, f]
}

/// Runs a multicall; its raw result (each entry's result is in its word 1).
pub fn run_multicall<const N: usize>(calls: &mut [[u64; 8]; N]) -> i64 {
    // SAFETY: the entries are the cases' own, each refused or harmless (module comment).
    unsafe {
        hypercall::raw(
            Hypercall::Multicall,
            [calls.as_mut_ptr() as u64, N as u64, 0, 0, 0],
        )
    }
}
