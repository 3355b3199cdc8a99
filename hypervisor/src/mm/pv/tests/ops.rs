//! `mmu_update`, `mmuext_op` and `update_va_mapping`.

use std::vec;
use std::vec::Vec;

use super::super::*;
use super::fake::*;
use crate::mm::Mfn;
use guest_abi::XenError;

const P: u64 = PRESENT;

#[test]
fn mmu_update_batch_stops_at_the_first_failure() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let t = w.running_tree(d);
    let data = w.alloc(d, 3);
    let slot = |i: u64| t.l1.addr() + 8 * i;
    let reqs = [
        MmuUpdate {
            ptr: slot(0),
            val: pte(data[0], P | RW),
        },
        MmuUpdate {
            ptr: slot(1),
            val: pte(data[1], P),
        },
        MmuUpdate {
            ptr: slot(2),
            val: pte(t.l2, P | RW),
        },
        MmuUpdate {
            ptr: slot(3),
            val: pte(data[2], P),
        },
    ];
    let o = w.ft.mmu_update(d.d, u32::from(DomId::SELF.0), reqs.map(Ok));
    assert_eq!(o.result.done, 2);
    assert_eq!(
        o.result.result,
        Err(PvMmError::WritableConflict { mfn: t.l2 })
    );
    assert_eq!(w.peek(t.l1, 1), adjust(Level::L1, pte(data[1], P)));
    assert_eq!(w.peek(t.l1, 3), 0, "nothing after the failure");
    w.check();
    // A guest-memory fault part-way is reported at its index.
    let reqs = [Ok(reqs[3]), Err(PvMmError::Fault)];
    let o = w.ft.mmu_update(d.d, u32::from(DomId::SELF.0), reqs);
    assert_eq!(o.result.done, 1);
    assert_eq!(o.result.result, Err(PvMmError::Fault));
    // Unknown sub-commands.
    for cmd in 4..8 {
        assert_eq!(
            w.update_as(d, u32::from(DomId::SELF.0), slot(5) | cmd, 0),
            Err(PvMmError::UnknownCommand(cmd as u32))
        );
    }
    w.check();
}

#[test]
fn updates_replace_references() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let t = w.running_tree(d);
    let [a, b] = w.frames(d);
    w.update(d, t.l1, 9, pte(a, P | RW)).unwrap();
    assert_eq!((w.info(a).count(), w.info(a).type_count()), (2, 1));
    // Same frame, read-only: the writable type goes.
    w.update(d, t.l1, 9, pte(a, P)).unwrap();
    assert_eq!((w.info(a).count(), w.info(a).type_count()), (2, 0));
    // Another frame: the old one's reference goes.
    w.update(d, t.l1, 9, pte(b, P | RW)).unwrap();
    assert_eq!(w.info(a).count(), 1);
    assert_eq!(w.info(b).count(), 2);
    w.check();
    // An L2 entry to a fresh L1 validates it; removing it devalidates it.
    let [l1b] = w.frames(d);
    w.poke(l1b, 0, pte(a, P | RW));
    w.update(d, t.l2, 3, pte(l1b, P)).unwrap();
    assert_eq!(w.info(l1b).page_type(), PageType::L1);
    assert_eq!(w.info(a).type_count(), 1);
    w.update(d, t.l2, 3, 0).unwrap();
    assert_eq!(w.info(l1b).type_count(), 0);
    assert!(!w.info(l1b).is_validated());
    assert_eq!(w.info(a).type_count(), 0);
    w.check();
}

#[test]
fn flag_only_changes_and_preserve_ad() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let t = w.running_tree(d);
    let [a] = w.frames(d);
    w.update(d, t.l1, 1, pte(a, P | RW | ACCESSED | DIRTY))
        .unwrap();
    let counts = |w: &World| (w.info(a).count(), w.info(a).type_count());
    let before = counts(&w);
    // Fast path: clearing A/D, setting NX.
    w.update(d, t.l1, 1, pte(a, P | RW | NX)).unwrap();
    assert_eq!(counts(&w), before);
    assert_eq!(w.peek(t.l1, 1), adjust(Level::L1, pte(a, P | RW | NX)));
    // Still checked: a refused flag is refused on the fast path too.
    assert!(w.update(d, t.l1, 1, pte(a, P | RW | PCD)).is_err());
    // PRESERVE_AD keeps the A/D the entry has.
    w.poke(t.l1, 1, w.peek(t.l1, 1) | DIRTY | ACCESSED);
    let ptr = (t.l1.addr() + 8) | mmu::PT_UPDATE_PRESERVE_AD;
    w.update_as(d, u32::from(DomId::SELF.0), ptr, pte(a, P | RW))
        .unwrap();
    assert_eq!(w.peek(t.l1, 1) & (ACCESSED | DIRTY), ACCESSED | DIRTY);
    assert_eq!(counts(&w), before);
    w.check();
}

#[test]
fn ordinary_pages_can_be_written_through_mmu_update() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let t = w.running_tree(d);
    let [page] = w.frames(d);
    // Unused frame: written as is (no checks, it is not a table).
    w.update(d, page, 5, pte(t.l4, P | RW)).unwrap();
    assert_eq!(w.peek(page, 5), pte(t.l4, P | RW));
    assert_eq!(w.info(page).type_count(), 0);
    // Mapped writable: the same.
    w.update(d, t.l1, 0, pte(page, P | RW)).unwrap();
    w.update(d, page, 6, 77).unwrap();
    assert_eq!(w.peek(page, 6), 77);
    // That content is validated when the frame becomes a table: refused here.
    w.update(d, t.l1, 0, 0).unwrap();
    assert_eq!(
        w.pin(d, Level::L1, page),
        Err(PvMmError::WritableConflict { mfn: t.l4 })
    );
    w.check();
}

#[test]
fn machphys_update() {
    let mut w = World::new(64);
    let d0 = w.domain(0, dom0(32));
    let d = w.domain(1, domu(16));
    let [mine] = w.frames(d);
    let [dom0s] = w.frames(d0);
    let self_fd = u32::from(DomId::SELF.0);
    w.update_as(d, self_fd, mine.addr() | mmu::MACHPHYS_UPDATE, 0x1234)
        .unwrap();
    assert_eq!(w.ft.m2p().get(mine), Pfn(0x1234));
    assert_eq!(
        w.update_as(d, self_fd, dom0s.addr() | mmu::MACHPHYS_UPDATE, 1),
        Err(PvMmError::BadReference { mfn: dom0s })
    );
    // dom0 may set a domU's entries through the foreign form; never for a foreign table owner.
    let fd = u32::from(d.d.id().0);
    w.update_as(d0, fd, mine.addr() | mmu::MACHPHYS_UPDATE, 0x99)
        .unwrap();
    assert_eq!(w.ft.m2p().get(mine), Pfn(0x99));
    let pt_fd = (u32::from(d.d.id().0) + 1) << 16;
    assert_eq!(
        w.update_as(d0, pt_fd | fd, mine.addr() | mmu::MACHPHYS_UPDATE, 1),
        Err(PvMmError::NotPermitted)
    );
}

#[test]
fn foreign_domains_in_mmu_update() {
    let mut w = World::new(96);
    let d0 = w.domain(0, dom0(32));
    let du = w.domain(1, domu(16));
    let dv = w.domain(2, domu(16));
    let t0 = w.running_tree(d0);
    let tu = w.running_tree(du);
    let [page] = w.frames(du);
    let fd_u = u32::from(du.d.id().0);
    // Only the privileged may name another domain; naming oneself is an error; unknown: ESRCH.
    assert_eq!(
        w.update_as(dv, fd_u, tu.l1.addr(), 0),
        Err(PvMmError::NotPermitted)
    );
    assert_eq!(
        w.update_as(du, fd_u, tu.l1.addr(), 0),
        Err(PvMmError::NoSuchDomain(du.d.id()))
    );
    assert_eq!(
        w.update_as(d0, 77, t0.l1.addr(), 0),
        Err(PvMmError::NoSuchDomain(DomId(77)))
    );
    assert_eq!(
        w.update_as(dv, 77 << 16, t0.l1.addr(), 0),
        Err(PvMmError::NoSuchDomain(DomId(76)))
    );
    // dom0 maps a domU frame writable in its own tables.
    w.update_as(d0, fd_u, t0.l1.addr() + 8, pte(page, P | RW))
        .unwrap();
    assert_eq!(w.info(page).type_count(), 1);
    w.check();
    // Which keeps the domU from making it a page table.
    assert!(w.pin(du, Level::L1, page).is_err());
    // Higher levels never reference foreign frames.
    assert_eq!(
        w.update_as(d0, fd_u, t0.l2.addr() + 8, pte(page, P)),
        Err(PvMmError::BadTable { mfn: t0.l2 })
    );
    // dom0 edits the domU's tables (page-table owner form).
    let pt_u = (fd_u + 1) << 16;
    let [other] = w.frames(du);
    w.update_as(d0, pt_u | u32::from(DomId::SELF.0), tu.l1.addr() + 16, 0)
        .unwrap();
    w.update_as(d0, pt_u | fd_u, tu.l1.addr() + 16, pte(other, P))
        .unwrap();
    w.update_as(
        d0,
        pt_u | u32::from(DomId::SELF.0),
        tu.l1.addr() + 24,
        pte(other, P),
    )
    .unwrap();
    w.check();
    // Only with the domain's own frames: not dom0's (which Xen would allow), nor a third's.
    let mine = t0.l1;
    for fd in [DomId::SELF.0, d0.d.id().0, dv.d.id().0, DomId::XEN.0] {
        let entry = pte(mine, P);
        let r = w.update_as(d0, pt_u | u32::from(fd), tu.l1.addr() + 32, entry);
        assert!(r.is_err(), "foreigndom {fd:#x}");
    }
    w.check();
    // The domU goes; the frame dom0 maps stays (and keeps the domain's accounting) until
    // unmapped.
    let report = w.destroy(du);
    assert_eq!(report.still_referenced, 1);
    assert!(w.ft.lookup(du.d.id()).is_some());
    w.check();
    w.update(d0, t0.l1, 1, 0).unwrap();
    assert_eq!(w.info(page).owner(), None);
    assert!(w.ft.lookup(du.d.id()).is_none());
    w.check();
}

#[test]
fn pin_and_unpin() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let t = w.tree(d);
    w.pin(d, Level::L4, t.l4).unwrap();
    assert_eq!(
        w.pin(d, Level::L4, t.l4),
        Err(PvMmError::AlreadyPinned { mfn: t.l4 })
    );
    // Pinning as another level than it has.
    assert!(w.pin(d, Level::L3, t.l4).is_err());
    // Lower levels may be pinned as well (Linux pins L1s and the vsyscall L3).
    w.pin(d, Level::L1, t.l1).unwrap();
    assert_eq!(w.info(t.l1).type_count(), 2);
    w.check();
    assert_eq!(w.unpin(d, t.l2), Err(PvMmError::NotPinned { mfn: t.l2 }));
    w.unpin(d, t.l4).unwrap();
    assert_eq!(w.info(t.l3).type_count(), 0);
    assert_eq!(w.info(t.l1).type_count(), 1, "its own pin");
    w.unpin(d, t.l1).unwrap();
    w.check();
    assert_eq!(
        w.pin(d, Level::L1, Mfn(0x10_0000)),
        Err(PvMmError::BadReference {
            mfn: Mfn(0x10_0000)
        })
    );
    assert_eq!(
        w.unpin(d, Mfn(0x10_0000)),
        Err(PvMmError::BadReference {
            mfn: Mfn(0x10_0000)
        })
    );
}

#[test]
fn unpinning_the_table_in_use_as_cr3_succeeds() {
    // Xen returns 0: the base pointer holds its own type reference, so the table stays
    // validated until the vCPU switches away from it.
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let t = w.running_tree(d);
    assert_eq!(w.info(t.l4).type_count(), 2);
    w.unpin(d, t.l4).unwrap();
    assert_eq!(w.info(t.l4).type_count(), 1);
    assert!(w.info(t.l4).is_validated());
    w.check();
    let t2 = w.tree(d);
    w.take_flush();
    assert_eq!(
        w.new_baseptr(d, t2.l4),
        Ok(vec![Effect::LoadKernelTable(t2.l4)])
    );
    assert_eq!(w.info(t.l4).type_count(), 0);
    assert!(!w.info(t.l3).is_validated());
    w.check();
}

#[test]
fn new_baseptr() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let other = w.domain(2, domu(16));
    let t = w.tree(d);
    // Validated on the spot (no pin needed), and loaded.
    assert_eq!(
        w.new_baseptr(d, t.l4),
        Ok(vec![Effect::LoadKernelTable(t.l4)])
    );
    assert_eq!(w.vcpus[d.vcpu].kernel_table(), Some(t.l4));
    // The same table again: just a reload.
    assert_eq!(
        w.new_baseptr(d, t.l4),
        Ok(vec![Effect::LoadKernelTable(t.l4)])
    );
    assert_eq!(w.info(t.l4).type_count(), 1);
    w.check();
    // A frame that fails validation leaves the vCPU as it was.
    let bad = w.tree(d);
    w.poke(bad.l1, 0, pte(Mfn(3), P));
    assert_eq!(
        w.new_baseptr(d, bad.l4),
        Err(PvMmError::NotMappable { mfn: Mfn(3) })
    );
    // So does a frame that is not an L4 candidate, or not the domain's.
    assert!(w.new_baseptr(d, t.l1).is_err());
    let theirs = w.alloc(other, 1)[0];
    assert_eq!(
        w.new_baseptr(d, theirs),
        Err(PvMmError::BadReference { mfn: theirs })
    );
    assert_eq!(w.vcpus[d.vcpu].kernel_table(), Some(t.l4));
    w.check();
    // The user base pointer: set, replaced, cleared with 0.
    let u = w.tree(d);
    w.ext(d, MmuextCmd::NewUserBaseptr, u.l4.0, 0).unwrap();
    assert_eq!(w.vcpus[d.vcpu].user_table(), Some(u.l4));
    w.check();
    w.ext(d, MmuextCmd::NewUserBaseptr, 0, 0).unwrap();
    assert_eq!(w.vcpus[d.vcpu].user_table(), None);
    assert_eq!(w.info(u.l4).type_count(), 0);
    w.check();
    // Never for another domain, even a privileged caller's foreign one.
    let d0 = w.domain(0, dom0(16));
    assert_eq!(
        w.ext_as(d0, d.d.id().0, MmuextCmd::NewBaseptr, t.l4.0, 0),
        Err(PvMmError::NotPermitted)
    );
    // Nor with another domain's vCPU.
    let vcpu = &mut w.vcpus[other.vcpu];
    let o = w.ft.mmuext_op(d.d, vcpu, DomId::SELF.0, [], |_| Ok(()));
    assert_eq!(o.result.result, Err(PvMmError::NotPermitted));
}

#[test]
fn flush_operations_return_their_effects() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let va = 0x7fff_f000;
    let mask = 0x1000_0000;
    let cases = [
        (
            MmuextCmd::TlbFlushLocal,
            0,
            0,
            Some(Effect::FlushTlb(TlbScope::Local)),
        ),
        (
            MmuextCmd::InvlpgLocal,
            va,
            0,
            Some(Effect::InvalidatePage {
                scope: TlbScope::Local,
                va,
            }),
        ),
        (
            MmuextCmd::TlbFlushMulti,
            0,
            mask,
            Some(Effect::FlushTlb(TlbScope::VcpuMask(mask))),
        ),
        (
            MmuextCmd::InvlpgMulti,
            va,
            mask,
            Some(Effect::InvalidatePage {
                scope: TlbScope::VcpuMask(mask),
                va,
            }),
        ),
        (
            MmuextCmd::TlbFlushAll,
            0,
            0,
            Some(Effect::FlushTlb(TlbScope::AllVcpus)),
        ),
        (
            MmuextCmd::InvlpgAll,
            va,
            0,
            Some(Effect::InvalidatePage {
                scope: TlbScope::AllVcpus,
                va,
            }),
        ),
        // Non-canonical or hypervisor addresses are not flushed (and not an error).
        (MmuextCmd::InvlpgLocal, 0x8000_0000_0000, 0, None),
        (MmuextCmd::InvlpgAll, 0xffff_8000_0000_1000, 0, None),
    ];
    for (cmd, arg1, arg2, effect) in cases {
        let got = w.ext(d, cmd, arg1, arg2).unwrap();
        assert_eq!(got, effect.into_iter().collect::<Vec<_>>(), "{cmd:?}");
    }
    // An effect that cannot be carried out (an unreadable vCPU mask) fails the operation.
    let op = MmuextOp::new(MmuextCmd::TlbFlushMulti as u32, 0, mask);
    let vcpu = &mut w.vcpus[d.vcpu];
    let o =
        w.ft.mmuext_op(d.d, vcpu, DomId::SELF.0, [Ok(op), Ok(op)], |_| {
            Err(PvMmError::BadArgument)
        });
    assert_eq!(o.result.done, 0);
    assert_eq!(o.result.result, Err(PvMmError::BadArgument));
    // Caches: only with I/O access.
    assert_eq!(
        w.ext(d, MmuextCmd::FlushCache, 0, 0),
        Err(PvMmError::CacheFlushDenied)
    );
    assert_eq!(
        w.ext(d, MmuextCmd::FlushCacheGlobal, 0, 0),
        Err(PvMmError::BadArgument)
    );
    let d0 = w.domain(0, dom0(16));
    assert_eq!(
        w.ext(d0, MmuextCmd::FlushCacheGlobal, 0, 0),
        Ok(vec![Effect::FlushCache { all_cpus: true }])
    );
    // Nothing of this for a foreign domain.
    assert_eq!(
        w.ext_as(d0, d.d.id().0, MmuextCmd::TlbFlushLocal, 0, 0),
        Err(PvMmError::NotPermitted)
    );
}

#[test]
fn mmuext_commands_xen_does_not_offer() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    assert_eq!(
        w.ext(d, MmuextCmd::MarkSuper, 0, 0),
        Err(PvMmError::Unsupported)
    );
    assert_eq!(PvMmError::Unsupported.errno(), XenError::OpNotSupp);
    for cmd in [14u32, 21, 0xffff_ffff] {
        let op = MmuextOp::new(cmd, 0, 0);
        let vcpu = &mut w.vcpus[d.vcpu];
        let o =
            w.ft.mmuext_op(d.d, vcpu, DomId::SELF.0, [Ok(op)], |_| Ok(()));
        assert_eq!(o.result.result, Err(PvMmError::UnknownCommand(cmd)));
    }
    // Foreign forms: unprivileged, DOMID_XEN, unknown.
    let e = w.ext_as(d, DomId::XEN.0, MmuextCmd::TlbFlushLocal, 0, 0);
    assert_eq!(e, Err(PvMmError::NotPermitted));
    let e = w.ext_as(d, 55, MmuextCmd::TlbFlushLocal, 0, 0);
    assert_eq!(e, Err(PvMmError::NoSuchDomain(DomId(55))));
}

#[test]
fn set_ldt() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let base = 0x10_0000;
    assert_eq!(
        w.ext(d, MmuextCmd::SetLdt, base, 16),
        Ok(vec![Effect::LoadLdt { base, entries: 16 }])
    );
    assert_eq!(w.vcpus[d.vcpu].ldt(), (base, 16));
    // Unchanged: nothing to do.
    assert_eq!(w.ext(d, MmuextCmd::SetLdt, base, 16), Ok(vec![]));
    for (b, n) in [(base + 8, 16), (0xffff_8000_0000_0000, 16), (base, 8193)] {
        assert_eq!(
            w.ext(d, MmuextCmd::SetLdt, b, n),
            Err(PvMmError::BadArgument)
        );
    }
    // No entries: the base is ignored.
    assert_eq!(
        w.ext(d, MmuextCmd::SetLdt, 0xdead, 0),
        Ok(vec![Effect::LoadLdt {
            base: 0,
            entries: 0
        }])
    );
}

#[test]
fn clear_and_copy_page() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let other = w.domain(2, domu(16));
    let t = w.running_tree(d);
    let [a, b] = w.frames(d);
    w.poke(a, 3, 0x33);
    w.ext(d, MmuextCmd::CopyPage, b.0, a.0).unwrap();
    assert_eq!(w.peek(b, 3), 0x33);
    w.ext(d, MmuextCmd::ClearPage, a.0, 0).unwrap();
    assert_eq!(w.peek(a, 3), 0);
    // Not into a page table; from one is fine; not another domain's.
    assert!(w.ext(d, MmuextCmd::ClearPage, t.l1.0, 0).is_err());
    assert!(w.ext(d, MmuextCmd::CopyPage, t.l2.0, a.0).is_err());
    w.ext(d, MmuextCmd::CopyPage, a.0, t.l3.0).unwrap();
    assert_eq!(w.peek(a, 0), w.peek(t.l3, 0));
    let theirs = w.alloc(other, 1)[0];
    assert!(w.ext(d, MmuextCmd::ClearPage, theirs.0, 0).is_err());
    assert!(w.ext(d, MmuextCmd::CopyPage, a.0, theirs.0).is_err());
    w.check();
}

#[test]
fn update_va_mapping_walks_the_current_tables() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let [page] = w.frames(d);
    let va = 0x3000;
    // No page tables yet.
    assert_eq!(
        w.update_va(d, va, pte(page, P), 0),
        Err(PvMmError::NoL1Table { va })
    );
    let t = w.running_tree(d);
    assert_eq!(w.update_va(d, va, pte(page, P | RW), uvmf::NONE), Ok(None));
    assert_eq!(w.peek(t.l1, 3), adjust(Level::L1, pte(page, P | RW)));
    assert_eq!(w.ft.walk(t.l4, va), Some((t.l1, 3)));
    let mask = 0x5000;
    let flushes = [
        (
            uvmf::TLB_FLUSH | uvmf::LOCAL,
            Effect::FlushTlb(TlbScope::Local),
        ),
        (
            uvmf::TLB_FLUSH | uvmf::ALL,
            Effect::FlushTlb(TlbScope::AllVcpus),
        ),
        (
            uvmf::TLB_FLUSH | uvmf::MULTI | mask,
            Effect::FlushTlb(TlbScope::VcpuMask(mask)),
        ),
        (
            uvmf::INVLPG | uvmf::LOCAL,
            Effect::InvalidatePage {
                scope: TlbScope::Local,
                va,
            },
        ),
        (
            uvmf::INVLPG | uvmf::ALL,
            Effect::InvalidatePage {
                scope: TlbScope::AllVcpus,
                va,
            },
        ),
    ];
    for (flags, effect) in flushes {
        assert_eq!(w.update_va(d, va, pte(page, P), flags), Ok(Some(effect)));
    }
    // No L1 for the address, or not a guest address.
    for bad in [0x4000_0000, 0xffff_8000_0000_0000, 0x8000_0000_0000] {
        assert_eq!(
            w.update_va(d, bad, 0, uvmf::INVLPG),
            Err(PvMmError::NoL1Table { va: bad })
        );
    }
    // A refused entry gives no flush.
    assert!(
        w.update_va(d, va, pte(t.l1, P | RW), uvmf::TLB_FLUSH)
            .is_err()
    );
    w.check();
    // The foreign form: privileged only for present entries.
    let d0 = w.domain(0, dom0(32));
    let t0 = w.running_tree(d0);
    let _ = t0;
    let o =
        w.ft.update_va_mapping_otherdomain(d0.d, &w.vcpus[d0.vcpu], va, pte(page, P), 0, d.d.id());
    assert_eq!(o.result, Ok(None));
    let o =
        w.ft.update_va_mapping_otherdomain(d.d, &w.vcpus[d.vcpu], va, pte(page, P), 0, d0.d.id());
    assert_eq!(o.result, Err(PvMmError::NotPermitted));
    w.check();
}
