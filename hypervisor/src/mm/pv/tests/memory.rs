//! Reservations and domain destruction.

use std::vec;

use super::super::*;
use super::fake::*;
use crate::mm::Mfn;

const P: u64 = PRESENT;

#[test]
fn increase_reservation_within_the_maximum() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(5));
    let mut list = VecList::new(vec![]);
    let o = w.ft.increase_reservation(d.d, 8, 0, &mut list);
    assert_eq!(o.result, 5);
    assert_eq!(w.ft.domain(d.d).unwrap().tot_pages(), 5);
    for &m in &list.items[..5] {
        let f = w.info(Mfn(m));
        assert_eq!(f.owner(), Some(d.d.id()));
        assert!(f.is_allocated());
        assert_eq!(f.count(), 1);
    }
    w.check();
    // Orders above the limit do nothing; a fault in the list stops there.
    w.ft.set_max_pages(d.d, 100).unwrap();
    assert_eq!(w.ft.increase_reservation(d.d, 1, 10, &mut list).result, 0);
    let mut list = VecList::new(vec![]);
    list.fail_at = Some(2);
    assert_eq!(w.ft.increase_reservation(d.d, 4, 0, &mut list).result, 2);
    // The frame whose number could not be reported stays the domain's (as in Xen).
    assert_eq!(w.ft.domain(d.d).unwrap().tot_pages(), 8);
    w.check();
}

#[test]
fn frames_are_scrubbed_before_they_change_owner() {
    let mut w = World::new(20);
    let a = w.domain(1, domu(4));
    let b = w.domain(2, domu(4));
    let frames = w.alloc(a, 4);
    for &m in &frames {
        w.poke(m, 17, 0x5ec7e7);
    }
    let mut list = VecList::new(frames.iter().map(|m| m.0).collect());
    let o = w.ft.decrease_reservation(a.d, 4, 0, &mut list);
    assert_eq!(o.result, 4);
    assert!(o.flush_all_cpus, "freed frames need a flush before reuse");
    for &m in &frames {
        assert_eq!(w.peek(m, 17), 0);
        assert_eq!(w.ft.m2p().get(m), Pfn::INVALID);
    }
    // Even a frame the pool hands out dirty is zeroed on assignment.
    w.poke(frames[0], 3, 1);
    let got = w.alloc(b, 4);
    for &m in &got {
        assert_eq!(w.peek(m, 3), 0);
    }
    w.check();
}

#[test]
fn populate_physmap_records_the_m2p() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(8));
    let mut list = VecList::new(vec![0x100, 0x200, 0x300]);
    assert_eq!(w.ft.populate_physmap(d.d, 3, 0, &mut list).result, 3);
    for (i, gpfn) in [0x100, 0x200, 0x300].into_iter().enumerate() {
        let mfn = Mfn(list.items[i]);
        assert_eq!(w.ft.m2p().get(mfn), Pfn(gpfn));
        assert_eq!(w.info(mfn).owner(), Some(d.d.id()));
    }
    // Order 1 extents: two frames each, consecutive pfns.
    let mut list = VecList::new(vec![0x400]);
    assert_eq!(w.ft.populate_physmap(d.d, 1, 1, &mut list).result, 1);
    let base = Mfn(list.items[0]);
    assert_eq!(base.0 % 2, 0);
    assert_eq!(w.ft.m2p().get(Mfn(base.0 + 1)), Pfn(0x401));
    // Beyond the maximum (3 + 2 + 4 > 8): nothing.
    let mut list = VecList::new(vec![0x500]);
    assert_eq!(w.ft.populate_physmap(d.d, 1, 2, &mut list).result, 0);
    w.check();
}

#[test]
fn decrease_reservation_of_a_frame_still_mapped() {
    let mut w = World::new(64);
    let d = w.domain(1, domu(16));
    let t = w.running_tree(d);
    let [page, pinned] = w.frames(d);
    w.update(d, t.l1, 1, pte(page, P | RW)).unwrap();
    w.pin(d, Level::L1, pinned).unwrap();
    let before = w.ft.domain(d.d).unwrap().tot_pages();
    let mut list = VecList::new(vec![page.0, pinned.0]);
    assert_eq!(w.ft.decrease_reservation(d.d, 2, 0, &mut list).result, 2);
    // The pinned one is unpinned and freed; the mapped one stays owned (and counted).
    assert_eq!(w.info(pinned).owner(), None);
    assert_eq!(w.info(page).owner(), Some(d.d.id()));
    assert!(!w.info(page).is_allocated());
    assert_eq!(w.ft.domain(d.d).unwrap().tot_pages(), before - 1);
    w.check();
    // Releasing it twice fails; unmapping it frees it.
    let mut list = VecList::new(vec![page.0]);
    assert_eq!(w.ft.decrease_reservation(d.d, 1, 0, &mut list).result, 1);
    w.check();
    w.update(d, t.l1, 1, 0).unwrap();
    assert_eq!(w.info(page).owner(), None);
    assert_eq!(w.ft.domain(d.d).unwrap().tot_pages(), before - 2);
    w.check();
    // Not the domain's: stops.
    let mut list = VecList::new(vec![page.0]);
    assert_eq!(w.ft.decrease_reservation(d.d, 1, 0, &mut list).result, 0);
    // Releasing a page table in use keeps it until its last user lets go.
    let mut list = VecList::new(vec![t.l2.0]);
    assert_eq!(w.ft.decrease_reservation(d.d, 1, 0, &mut list).result, 1);
    assert_eq!(w.info(t.l2).page_type(), PageType::L2);
    w.check();
}

#[test]
fn destroy_returns_every_frame() {
    let mut w = World::new(128);
    let d = w.domain(1, domu(40));
    let keep = w.domain(2, domu(8));
    let kept = w.alloc(keep, 3);
    let t = w.running_tree(d);
    let user = w.tree(d);
    w.ext(d, MmuextCmd::NewUserBaseptr, user.l4.0, 0).unwrap();
    let data = w.alloc(d, 10);
    for (i, &m) in data.iter().enumerate() {
        w.update(d, t.l1, i, pte(m, P | RW)).unwrap();
    }
    w.pin(d, Level::L1, data[9]).unwrap_err();
    w.update(d, t.l1, 9, 0).unwrap();
    w.pin(d, Level::L1, data[9]).unwrap();
    w.ext(d, MmuextCmd::SetLdt, 0x1000, 4).unwrap();
    w.check();
    let free_before = w.ft.pool().free.len();
    let report = w.destroy(d);
    assert_eq!(report.still_referenced, 0);
    assert_eq!(report.freed, 18);
    assert_eq!(w.ft.pool().free.len(), free_before + 18);
    assert!(w.ft.lookup(d.d.id()).is_none());
    assert_eq!(w.vcpus[d.vcpu].kernel_table(), None);
    assert_eq!(w.vcpus[d.vcpu].ldt(), (0, 0));
    assert!(w.take_flush());
    for &m in &kept {
        assert_eq!(w.info(m).owner(), Some(keep.d.id()));
    }
    w.check();
    // The handle is stale now, and the ID can be used again.
    assert_eq!(
        w.ft.domain(d.d).unwrap_err(),
        PvMmError::NoSuchDomain(d.d.id())
    );
    let again = w.ft.create_domain(d.d.id(), domu(4)).unwrap();
    assert!(w.ft.domain(again).is_ok());
}

#[test]
fn domain_table() {
    let mut w = World::new(32);
    w.domain(1, domu(1));
    assert_eq!(
        w.ft.create_domain(DomId(1), domu(1)),
        Err(PvMmError::DomainExists(DomId(1)))
    );
    assert_eq!(
        w.ft.create_domain(DomId::XEN, domu(1)),
        Err(PvMmError::BadArgument)
    );
    for id in 2..9 {
        w.ft.create_domain(DomId(id), domu(1)).unwrap();
    }
    assert_eq!(
        w.ft.create_domain(DomId(9), domu(1)),
        Err(PvMmError::OutOfMemory)
    );
    // Targets of memory operations.
    let d1 = w.ft.lookup(DomId(1)).unwrap();
    let d2 = w.ft.lookup(DomId(2)).unwrap();
    assert_eq!(w.ft.resolve_target(d1, DomId::SELF), Ok(d1));
    assert_eq!(w.ft.resolve_target(d1, DomId(1)), Ok(d1));
    assert_eq!(
        w.ft.resolve_target(d1, DomId(2)),
        Err(PvMmError::NotPermitted)
    );
    assert_eq!(
        w.ft.resolve_target(d1, DomId(99)),
        Err(PvMmError::NoSuchDomain(DomId(99)))
    );
    assert!(w.ft.check_privileged(d2).is_err());
}

/// A domain with pinned and loaded tables, mapped data and an LDT, for teardown tests.
fn busy_domain(w: &mut World, id: u16) -> Dom {
    let d = w.domain(id, domu(64));
    let t = w.running_tree(d);
    let data = w.alloc(d, 30);
    for (i, &m) in data.iter().enumerate() {
        w.update(d, t.l1, i, pte(m, P | RW)).unwrap();
    }
    w.update(d, t.l1, 29, 0).unwrap();
    w.pin(d, Level::L1, data[29]).unwrap();
    w.ext(d, MmuextCmd::SetLdt, 0x1000, 4).unwrap();
    w.check();
    d
}

#[test]
fn bounded_teardown_ends_where_the_whole_one_does() {
    let limits = TeardownLimits {
        records: 7,
        releases: 3,
    };
    let mut whole = World::new(160);
    let d = busy_domain(&mut whole, 1);
    let want = whole.destroy(d);
    let free_after = whole.ft.pool().free.len();

    let mut w = World::new(160);
    let d = busy_domain(&mut w, 1);
    let mut t = Teardown::default();
    assert!(!t.started());
    let mut passes = 0;
    let report = loop {
        let free_before = w.ft.pool().free.len();
        let done = w.destroy_step(d, &mut t, limits).unwrap();
        passes += 1;
        assert!(t.started());
        // Each released frame frees at most itself and, through devalidation, the tables
        // below it: a tree of four here.
        assert!(
            w.ft.pool().free.len() - free_before <= 4 * 3,
            "pass {passes}"
        );
        w.check();
        if let Some(r) = done {
            break r;
        }
        // Dying between passes (its accounting goes with its last frame, possibly before
        // the scan ends): no new frames, its vCPU holds no table any more.
        if let Ok(dom) = w.ft.domain(d.d) {
            assert!(dom.is_dying());
            let mut list = VecList::new(vec![0]);
            assert_eq!(w.ft.populate_physmap(d.d, 1, 0, &mut list).result, 0);
        }
        assert_eq!(w.vcpus[d.vcpu].kernel_table(), None);
        assert_eq!(w.vcpus[d.vcpu].ldt(), (0, 0));
        assert!(passes < 1000, "the teardown does not end");
    };
    assert_eq!(report, want);
    // 36 releases (two pins, 34 allocations), 3 a pass; the scan stops early once the
    // domain's last frame has gone.
    assert!(passes >= 36 / 3, "{passes} passes");
    assert_eq!(w.ft.pool().free.len(), free_after);
    assert!(w.ft.lookup(d.d.id()).is_none());
    // A pass after the end finds nothing left to do.
    assert_eq!(w.destroy_step(d, &mut t, limits), Ok(Some(report)));
}

#[test]
fn a_teardown_that_never_started_needs_the_domain() {
    let mut w = World::new(32);
    let d = w.domain(1, domu(4));
    w.destroy(d);
    let mut t = Teardown::default();
    assert_eq!(
        w.destroy_step(d, &mut t, TeardownLimits::UNLIMITED),
        Err(PvMmError::NoSuchDomain(d.d.id()))
    );
}

#[test]
fn frames_mapped_elsewhere_outlive_a_bounded_teardown() {
    let mut w = World::new(128);
    let d0 = w.domain(0, dom0(32));
    let t0 = w.running_tree(d0);
    let du = busy_domain(&mut w, 1);
    let [page] = w.frames(du);
    let fd_u = u32::from(du.d.id().0);
    w.update_as(d0, fd_u, t0.l1.addr() + 8, pte(page, P | RW))
        .unwrap();
    let limits = TeardownLimits {
        records: 16,
        releases: 2,
    };
    let mut t = Teardown::default();
    let report = loop {
        let done = w.destroy_step(du, &mut t, limits).unwrap();
        w.check();
        if let Some(r) = done {
            break r;
        }
        // dom0 may still map the dying domain's frames between passes, and let go again.
        w.update_as(d0, fd_u, t0.l1.addr() + 16, pte(page, P))
            .unwrap();
        w.update(d0, t0.l1, 2, 0).unwrap();
    };
    assert_eq!(report.still_referenced, 1);
    assert!(w.ft.lookup(du.d.id()).is_some());
    w.update(d0, t0.l1, 1, 0).unwrap();
    assert_eq!(w.info(page).owner(), None);
    assert!(w.ft.lookup(du.d.id()).is_none());
    w.check();
}
