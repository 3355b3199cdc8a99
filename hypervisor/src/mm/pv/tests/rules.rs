//! The per-level entry rules, validation, and the refusals of the issue.

use std::vec;

use super::super::*;
use super::fake::*;
use crate::mm::Mfn;
use guest_abi::XenError;

const P: u64 = PRESENT;

#[test]
fn errors_map_to_xens_errnos() {
    // The values themselves are guest-abi's, checked against xen/include/public/errno.h.
    let m = Mfn(1);
    assert_eq!(PvMmError::NotMappable { mfn: m }.errno(), XenError::Busy);
    assert_eq!(
        PvMmError::WritableConflict { mfn: m }.errno(),
        XenError::Busy
    );
    assert_eq!(PvMmError::IoMemory { mfn: m }.errno(), XenError::Perm);
    assert_eq!(
        PvMmError::HypervisorSlot { slot: 256 }.errno(),
        XenError::Inval
    );
    assert_eq!(PvMmError::UnknownCommand(9).errno(), XenError::NoSys);
    assert_eq!(PvMmError::NoSuchDomain(DomId(9)).errno(), XenError::Srch);
}

#[test]
fn adjustment_for_a_ring_3_kernel() {
    let m = Mfn(0x42);
    // Kernel page: user bit added, marked as the kernel's, not global.
    let k = adjust(Level::L1, pte(m, P | RW));
    assert_eq!(k, pte(m, P | RW | USER | GUEST_KERNEL));
    // User page: global added.
    let u = adjust(Level::L1, pte(m, P | USER));
    assert_eq!(u, pte(m, P | USER | GLOBAL));
    assert_eq!(adjust(Level::L2, pte(m, P)), pte(m, P | USER));
    assert_eq!(adjust(Level::L3, pte(m, P)), pte(m, P | USER));
    assert_eq!(adjust(Level::L4, pte(m, P)), pte(m, P | USER | ACCESSED));
    // Not-present entries are the guest's business.
    assert_eq!(adjust(Level::L1, 0xdead_beef_0000), 0xdead_beef_0000);
    // Adjusting twice changes nothing.
    for e in [k, u] {
        assert_eq!(adjust(Level::L1, e), e);
    }
}

/// A domain with one L1 it can fill, validated by pinning after each poke.
fn l1_verdict(config: DomainConfig, entry_flags: u64) -> Result<(), PvMmError> {
    let mut w = World::new(64);
    let d = w.domain(1, config);
    let [table, data] = w.frames(d);
    w.poke(table, 7, pte(data, entry_flags));
    let r = w.pin(d, Level::L1, table);
    w.check();
    r
}

#[test]
fn l1_flags() {
    let ok = |flags| l1_verdict(domu(8), flags);
    for flags in [
        P,
        P | RW,
        P | USER,
        P | RW | USER | ACCESSED | DIRTY | NX,
        P | GLOBAL,
        P | AVAIL,
        P | GUEST_KERNEL,
        P | (1 << 61),
    ] {
        assert_eq!(ok(flags), Ok(()), "{flags:#x}");
    }
    for bad in [PWT, PCD, PAT, GNTTAB] {
        assert_eq!(
            ok(P | bad),
            Err(PvMmError::BadFlags {
                level: 1,
                flags: bad
            })
        );
    }
    // Cache attributes are for domains with I/O access.
    let io = DomainConfig {
        iomem_access: true,
        ..domu(8)
    };
    assert_eq!(l1_verdict(io, P | PWT | PCD | PAT), Ok(()));
    assert!(l1_verdict(io, P | GNTTAB).is_err());
}

#[test]
fn higher_level_flags() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let t = w.tree(d);
    for (table, level, bad) in [
        (t.l2, Level::L2, PSE),
        (t.l2, Level::L2, GLOBAL),
        (t.l3, Level::L3, PSE),
        (t.l3, Level::L3, PCD),
        (t.l4, Level::L4, PWT),
        (t.l4, Level::L4, GLOBAL),
    ] {
        let good = w.peek(table, 0);
        w.poke(table, 0, good | bad);
        assert_eq!(
            w.pin(d, Level::L4, t.l4),
            Err(PvMmError::BadFlags {
                level: level.number(),
                flags: bad
            })
        );
        w.check();
        w.poke(table, 0, good);
    }
    // NX and the software bits are fine at every level.
    w.poke(t.l3, 0, w.peek(t.l3, 0) | NX | AVAIL | GNTTAB);
    assert_eq!(w.pin(d, Level::L4, t.l4), Ok(()));
    w.check();
}

#[test]
fn writable_mapping_of_own_page_table_is_refused() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let t = w.running_tree(d);
    // Read-only: fine (that is how a guest reads its tables).
    w.update(d, t.l1, 1, pte(t.l2, P)).unwrap();
    w.update(d, t.l1, 2, pte(t.l1, P)).unwrap();
    w.check();
    for table in [t.l1, t.l2, t.l3, t.l4] {
        assert_eq!(
            w.update(d, t.l1, 3, pte(table, P | RW)),
            Err(PvMmError::WritableConflict { mfn: table })
        );
        assert_eq!(
            PvMmError::WritableConflict { mfn: table }.errno(),
            XenError::Busy
        );
        w.check();
    }
    // Nor through update_va_mapping, nor inside a table being validated.
    assert_eq!(
        w.update_va(d, 0x5000, pte(t.l2, P | RW), 0),
        Err(PvMmError::WritableConflict { mfn: t.l2 })
    );
    let [l1] = w.frames(d);
    w.poke(l1, 0, pte(t.l3, P | RW));
    assert_eq!(
        w.pin(d, Level::L1, l1),
        Err(PvMmError::WritableConflict { mfn: t.l3 })
    );
    // An L1 that maps itself writable can never be validated.
    w.poke(l1, 0, pte(l1, P | RW));
    assert_eq!(
        w.pin(d, Level::L1, l1),
        Err(PvMmError::WritableConflict { mfn: l1 })
    );
    w.check();
}

#[test]
fn mapping_a_frame_of_another_domain_is_refused() {
    let mut w = World::new(64);
    let a = w.domain(1, domu(16));
    let b = w.domain(2, domu(16));
    let t = w.running_tree(a);
    let [theirs] = w.frames(b);
    for flags in [P, P | RW] {
        assert_eq!(
            w.update(a, t.l1, 0, pte(theirs, flags)),
            Err(PvMmError::NotMappable { mfn: theirs })
        );
    }
    // Nor a free frame, nor one of the hypervisor's own.
    let free = Mfn(*w.ft.pool().free.iter().next().unwrap());
    assert_eq!(
        w.update(a, t.l1, 0, pte(free, P)),
        Err(PvMmError::NotMappable { mfn: free })
    );
    assert_eq!(
        w.update(a, t.l1, 0, pte(Mfn(3), P)),
        Err(PvMmError::NotMappable { mfn: Mfn(3) })
    );
    // Nor as a page table.
    assert_eq!(
        w.update(a, t.l2, 1, pte(theirs, P)),
        Err(PvMmError::BadReference { mfn: theirs })
    );
    // Nor the other domain's table as one to update.
    assert_eq!(
        w.update(a, theirs, 0, 0),
        Err(PvMmError::BadTable { mfn: theirs })
    );
    w.check();
}

#[test]
fn hypervisor_frames_only_through_the_privileged_foreign_form() {
    let mut w = World::new(64);
    let d0 = w.domain(0, dom0(32));
    let du = w.domain(1, domu(16));
    let xen_frame = Mfn(5);
    let ro_frame = Mfn(6);
    w.ft.share_hypervisor_frame(xen_frame, DomId::XEN, true)
        .unwrap();
    w.ft.share_hypervisor_frame(ro_frame, DomId::XEN, false)
        .unwrap();
    let tu = w.running_tree(du);
    let t0 = w.running_tree(d0);
    w.check();
    assert_eq!(
        w.update(du, tu.l1, 0, pte(xen_frame, P)),
        Err(PvMmError::NotMappable { mfn: xen_frame })
    );
    let fd_xen = u32::from(DomId::XEN.0);
    let slot0 = tu.l1.addr();
    assert_eq!(
        w.update_as(du, fd_xen, slot0, pte(xen_frame, P)),
        Err(PvMmError::NotPermitted)
    );
    // dom0 maps it, writable; the read-only share refuses a writable mapping.
    w.update_as(d0, fd_xen, t0.l1.addr(), pte(xen_frame, P | RW))
        .unwrap();
    w.update_as(d0, fd_xen, t0.l1.addr() + 8, pte(ro_frame, P))
        .unwrap();
    assert_eq!(
        w.update_as(d0, fd_xen, t0.l1.addr() + 16, pte(ro_frame, P | RW)),
        Err(PvMmError::WritableConflict { mfn: ro_frame })
    );
    w.check();
    // It cannot be taken back while mapped.
    assert!(w.ft.unshare_hypervisor_frame(xen_frame).is_err());
    w.update(d0, t0.l1, 0, 0).unwrap();
    w.ft.unshare_hypervisor_frame(xen_frame).unwrap();
    w.check();
}

#[test]
fn hypervisor_l4_slots_are_never_the_guests() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let t = w.tree(d);
    // Whatever the guest leaves there is ignored by validation, then overwritten.
    w.poke(t.l4, 256, pte(t.l3, P | RW));
    w.poke(t.l4, 271, 0x1234_5678);
    w.pin(d, Level::L4, t.l4).unwrap();
    assert_eq!(w.info(t.l3).type_count(), 1);
    for slot in HYPERVISOR_SLOT_FIRST..=HYPERVISOR_SLOT_LAST {
        assert_eq!(w.peek(t.l4, slot), super::fake::hyp_entry(slot));
        assert_eq!(
            w.update(d, t.l4, slot, pte(t.l3, P)),
            Err(PvMmError::HypervisorSlot { slot })
        );
        assert_eq!(
            w.update(d, t.l4, slot, 0),
            Err(PvMmError::HypervisorSlot { slot })
        );
    }
    assert_eq!(
        PvMmError::HypervisorSlot { slot: 256 }.errno(),
        XenError::Inval
    );
    // Slots on either side are the guest's.
    let [l3b] = w.frames(d);
    w.update(d, t.l4, 255, pte(l3b, P)).unwrap();
    w.update(d, t.l4, 272, pte(l3b, P)).unwrap();
    w.check();
    // Devalidation skips them too.
    w.unpin(d, t.l4).unwrap();
    w.check();
}

#[test]
fn a_bad_entry_deep_inside_fails_the_pin_and_undoes_everything() {
    let mut w = World::new(64);
    let a = w.domain(1, domu(16));
    let b = w.domain(2, domu(16));
    let t = w.tree(a);
    let [theirs] = w.frames(b);
    let [data] = w.frames(a);
    // Good entries first, so that validation takes references before it fails.
    w.poke(t.l1, 0, pte(data, P | RW));
    w.poke(t.l1, 1, pte(t.l3, P));
    w.poke(t.l1, 300, pte(theirs, P));
    let before: std::vec::Vec<_> = [t.l4, t.l3, t.l2, t.l1, data, theirs]
        .iter()
        .map(|&m| w.info(m).count())
        .collect();
    assert_eq!(
        w.pin(a, Level::L4, t.l4),
        Err(PvMmError::NotMappable { mfn: theirs })
    );
    assert_eq!(
        PvMmError::NotMappable { mfn: theirs }.errno(),
        XenError::Busy
    );
    let after: std::vec::Vec<_> = [t.l4, t.l3, t.l2, t.l1, data, theirs]
        .iter()
        .map(|&m| w.info(m).count())
        .collect();
    assert_eq!(before, after);
    for m in [t.l4, t.l3, t.l2, t.l1, data] {
        assert_eq!(w.info(m).type_count(), 0, "{m}");
        assert!(!w.info(m).is_pinned());
    }
    w.check();
    // Fixed, the same tables validate.
    w.poke(t.l1, 300, 0);
    w.pin(a, Level::L4, t.l4).unwrap();
    assert_eq!(w.info(data).page_type(), PageType::Writable);
    w.check();
}

#[test]
fn linear_page_tables_are_refused() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let t = w.tree(d);
    // A read-only self map in an L4 (which Xen allows by default) is refused consistently:
    // during validation and as an update.
    w.poke(t.l4, 510, pte(t.l4, P));
    let self_map = Err(PvMmError::TypeConflict {
        mfn: t.l4,
        current: PageType::L4,
        wanted: PageType::L3,
    });
    assert_eq!(w.pin(d, Level::L4, t.l4), self_map);
    w.poke(t.l4, 510, 0);
    w.pin(d, Level::L4, t.l4).unwrap();
    assert_eq!(w.update(d, t.l4, 510, pte(t.l4, P)), self_map);
    // Nor an L2 that references an L2 (its own or another).
    assert_eq!(
        w.update(d, t.l2, 5, pte(t.l2, P)),
        Err(PvMmError::TypeConflict {
            mfn: t.l2,
            current: PageType::L2,
            wanted: PageType::L1
        })
    );
    assert!(w.update(d, t.l3, 5, pte(t.l3, P)).is_err());
    w.check();
}

#[test]
fn type_change_of_a_frame_still_mapped_writable_is_refused() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let t = w.running_tree(d);
    let [page] = w.frames(d);
    w.update(d, t.l1, 4, pte(page, P | RW)).unwrap();
    let busy = Err(PvMmError::TypeConflict {
        mfn: page,
        current: PageType::Writable,
        wanted: PageType::L1,
    });
    assert_eq!(w.pin(d, Level::L1, page), busy);
    assert_eq!(w.update(d, t.l2, 1, pte(page, P)), busy);
    w.check();
    // Unmapped, it can become a table; the type change asks for a flush of stale entries.
    w.update(d, t.l1, 4, 0).unwrap();
    w.take_flush();
    w.pin(d, Level::L1, page).unwrap();
    assert!(w.take_flush(), "writable -> L1 must flush");
    // Now it cannot be mapped writable.
    assert_eq!(
        w.update(d, t.l1, 4, pte(page, P | RW)),
        Err(PvMmError::WritableConflict { mfn: page })
    );
    w.check();
    // A fresh frame's first type needs no flush.
    let [fresh] = w.frames(d);
    w.take_flush();
    w.pin(d, Level::L1, fresh).unwrap();
    assert!(!w.take_flush());
}

#[test]
fn superpages_only_when_asked_for() {
    let mut w = World::new(1536);
    let sp = DomainConfig {
        superpages: true,
        ..domu(1100)
    };
    let plain = w.domain(1, domu(1100));
    let big = w.domain(2, sp);
    let tp = w.running_tree(plain);
    let tb = w.running_tree(big);
    // A 512-aligned, 512-frame extent for each.
    let mut list = VecList::new(vec![0]);
    let o = w.ft.populate_physmap(big.d, 1, 9, &mut list);
    assert_eq!(o.result, 1);
    let run = Mfn(list.items[0]);
    assert_eq!(run.0 % 512, 0);
    let mut list = VecList::new(vec![0]);
    let o = w.ft.populate_physmap(plain.d, 1, 9, &mut list);
    assert_eq!(o.result, 1);
    let run_p = Mfn(list.items[0]);
    assert_eq!(
        w.update(plain, tp.l2, 1, pte(run_p, P | RW | PSE)),
        Err(PvMmError::BadFlags {
            level: 2,
            flags: PSE
        })
    );
    // Misaligned: refused.
    assert_eq!(
        w.update(big, tb.l2, 1, pte(Mfn(run.0 + 1), P | PSE)),
        Err(PvMmError::Misaligned {
            mfn: Mfn(run.0 + 1)
        })
    );
    // A page table inside the run refuses a writable superpage over it.
    w.pin(big, Level::L1, Mfn(run.0 + 7)).unwrap();
    assert_eq!(
        w.update(big, tb.l2, 1, pte(run, P | RW | PSE)),
        Err(PvMmError::TypeConflict {
            mfn: Mfn(run.0 + 7),
            current: PageType::L1,
            wanted: PageType::Writable
        })
    );
    w.check();
    // Read-only over it is fine; writable once it is unpinned.
    w.update(big, tb.l2, 1, pte(run, P | PSE)).unwrap();
    w.check();
    w.unpin(big, Mfn(run.0 + 7)).unwrap();
    w.update(big, tb.l2, 1, pte(run, P | RW | PSE)).unwrap();
    assert_eq!(w.info(Mfn(run.0 + 100)).page_type(), PageType::Writable);
    w.check();
    // The walk does not go through a superpage.
    assert_eq!(
        w.update_va(big, 0x20_0000, 0, 0),
        Err(PvMmError::NoL1Table { va: 0x20_0000 })
    );
    // 1 GiB pages are never allowed.
    assert!(w.update(big, tb.l3, 1, pte(Mfn(0), P | PSE)).is_err());
    w.update(big, tb.l2, 1, 0).unwrap();
    w.check();
}

#[test]
fn io_memory_needs_io_access() {
    let mut w = World::new(64);
    let d0 = w.domain(0, dom0(32));
    let du = w.domain(1, domu(16));
    let io = Mfn(9);
    w.ft.mark_io_frame(io).unwrap();
    let beyond = Mfn(0x10_0000);
    let tu = w.running_tree(du);
    let t0 = w.running_tree(d0);
    for m in [io, beyond] {
        assert_eq!(
            w.update(du, tu.l1, 0, pte(m, P | RW)),
            Err(PvMmError::IoMemory { mfn: m })
        );
        w.update(d0, t0.l1, 0, pte(m, P | RW | PCD)).unwrap();
    }
    // No reference counting of I/O memory.
    assert_eq!(w.info(io).count(), 0);
    w.check();
    w.update(d0, t0.l1, 0, 0).unwrap();
    w.check();
}

#[test]
fn descriptor_pages() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let [gdt] = w.frames(d);
    let code_dpl0 = crate::x86::descriptors::code64(0);
    w.poke(gdt, 1, code_dpl0);
    w.poke(gdt, 2, crate::x86::descriptors::data(3));
    let o = w.ft.get_page_and_type(d.d, gdt, PageType::SegDesc);
    assert_eq!(o.result, Ok(()));
    // DPL raised to 3.
    assert_eq!(w.peek(gdt, 1), crate::x86::descriptors::code64(3));
    assert_eq!(w.info(gdt).page_type(), PageType::SegDesc);
    let t = w.running_tree(d);
    assert_eq!(
        w.update(d, t.l1, 0, pte(gdt, P | RW)),
        Err(PvMmError::WritableConflict { mfn: gdt })
    );
    assert_eq!(
        w.update(d, gdt, 1, 0),
        Err(PvMmError::BadTable { mfn: gdt })
    );
    let _ = w.ft.put_page_and_type(gdt);
    // Unused, it is an ordinary page again; a system descriptor (a TSS) written there makes
    // the next validation fail, and the type change asks for a flush.
    let tss = crate::x86::descriptors::tss(0x1000, 0x67);
    w.update(d, gdt, 4, tss[0]).unwrap();
    assert_eq!(w.info(gdt).page_type(), PageType::Writable);
    let o = w.ft.get_page_and_type(d.d, gdt, PageType::SegDesc);
    assert_eq!(
        o.result,
        Err(PvMmError::BadDescriptor { mfn: gdt, index: 4 })
    );
    assert!(o.flush_all_cpus);
    w.check();
}
