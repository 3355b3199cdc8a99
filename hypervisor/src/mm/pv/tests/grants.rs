//! Grant mappings in page tables (`grant_pte`): installed and removed by the grant table, or
//! removed by the guest overwriting the entry, with exact counts throughout; a granter's page
//! table is never mapped writable; a domain dies with its frames mapped by another.

use super::super::*;
use super::fake::*;

const P: u64 = PRESENT;

impl World {
    fn map_grant(
        &mut self,
        dom: Dom,
        at: GrantPte,
        granter: Dom,
        entry: u64,
    ) -> Result<(), PvMmError> {
        let o = self
            .ft
            .map_grant(dom.d, &self.vcpus[dom.vcpu], at, granter.d.id(), entry);
        self.note(o)
    }

    fn unmap_grant(&mut self, dom: Dom, at: GrantPte, entry: u64) -> Result<(), PvMmError> {
        self.replace_grant(dom, at, entry, None)
    }

    fn replace_grant(
        &mut self,
        dom: Dom,
        at: GrantPte,
        entry: u64,
        new_va: Option<u64>,
    ) -> Result<(), PvMmError> {
        let o = self
            .ft
            .unmap_grant(dom.d, &self.vcpus[dom.vcpu], at, entry, new_va);
        self.note(o)
    }
}

#[test]
fn a_grant_mapping_holds_the_frame_until_removed() {
    let mut w = World::new(96);
    let back = w.domain(0, dom0(32));
    let front = w.domain(1, domu(16));
    let t = w.running_tree(back);
    let _ = w.running_tree(front);
    let [page] = w.frames(front);
    let entry = pte(page, P | RW);
    // By virtual address (slot 3 of the L1 maps 0x3000) and by machine address (slot 4).
    w.map_grant(back, GrantPte::Va(0x3000), front, entry)
        .unwrap();
    w.map_grant(
        back,
        GrantPte::Machine(t.l1.addr() + 32),
        front,
        pte(page, P),
    )
    .unwrap();
    assert_eq!(w.peek(t.l1, 3) & ADDR_MASK, page.addr());
    assert_eq!((w.info(page).count(), w.info(page).type_count()), (3, 1));
    w.check();
    // The frame cannot become a page table of its owner while mapped writable.
    assert!(w.pin(front, Level::L1, page).is_err());
    // Removing needs the entry as mapped.
    assert_eq!(
        w.unmap_grant(back, GrantPte::Va(0x3000), pte(page, P)),
        Err(PvMmError::GrantMismatch)
    );
    assert_eq!(
        w.unmap_grant(back, GrantPte::Va(0x5000), entry),
        Err(PvMmError::GrantMismatch)
    );
    w.unmap_grant(back, GrantPte::Va(0x3000), entry).unwrap();
    assert_eq!(w.peek(t.l1, 3), 0);
    // The guest overwriting the other entry drops its references too.
    w.update(back, t.l1, 4, 0).unwrap();
    assert_eq!((w.info(page).count(), w.info(page).type_count()), (1, 0));
    w.check();
}

#[test]
fn grant_mappings_go_only_where_they_may() {
    let mut w = World::new(96);
    let back = w.domain(0, dom0(32));
    let front = w.domain(1, domu(16));
    let t = w.running_tree(back);
    let tf = w.running_tree(front);
    let [page] = w.frames(front);
    // Not into another domain's table, not misaligned, not where no L1 maps.
    let into_front = GrantPte::Machine(tf.l1.addr() + 8);
    assert_eq!(
        w.map_grant(back, into_front, front, pte(page, P)),
        Err(PvMmError::GrantMismatch)
    );
    assert_eq!(
        w.map_grant(
            back,
            GrantPte::Machine(t.l1.addr() + 3),
            front,
            pte(page, P)
        ),
        Err(PvMmError::BadArgument)
    );
    assert_eq!(
        w.map_grant(back, GrantPte::Va(0x4000_0000), front, pte(page, P)),
        Err(PvMmError::NoL1Table { va: 0x4000_0000 })
    );
    // A frame the named granter does not own; the granter's page table writable.
    let [mine] = w.frames(back);
    assert!(
        w.map_grant(back, GrantPte::Va(0x3000), front, pte(mine, P))
            .is_err()
    );
    assert!(
        w.map_grant(back, GrantPte::Va(0x3000), front, pte(tf.l1, P | RW))
            .is_err()
    );
    // Never I/O memory or a frame beyond RAM, even for dom0.
    let io = Mfn(2);
    assert!(
        w.map_grant(back, GrantPte::Va(0x3000), front, pte(io, P))
            .is_err()
    );
    let beyond = Mfn(96 + 5);
    assert!(
        w.map_grant(back, GrantPte::Va(0x3000), back, pte(beyond, P))
            .is_err()
    );
    // Read-only is fine.
    w.map_grant(back, GrantPte::Va(0x3000), front, pte(tf.l1, P))
        .unwrap();
    w.check();
}

#[test]
fn a_granter_dies_with_its_frame_mapped_and_the_frame_outlives_it() {
    let mut w = World::new(96);
    let back = w.domain(0, dom0(32));
    let front = w.domain(1, domu(16));
    let t = w.running_tree(back);
    let [page] = w.frames(front);
    w.map_grant(back, GrantPte::Va(0x3000), front, pte(page, P | RW))
        .unwrap();
    let report = w.destroy(front);
    assert!(report.still_referenced >= 1);
    w.check();
    // The mapping still holds it; removing it frees the frame for good.
    w.unmap_grant(back, GrantPte::Va(0x3000), pte(page, P | RW))
        .unwrap();
    assert_eq!(w.info(page).count(), 0);
    let _ = t;
    w.check();
}

#[test]
fn unmap_and_replace_moves_another_entry_over_the_grant() {
    let mut w = World::new(96);
    let back = w.domain(0, dom0(32));
    let front = w.domain(1, domu(16));
    let t = w.running_tree(back);
    let [page] = w.frames(front);
    let [mine] = w.frames(back);
    let entry = pte(page, P | RW);
    w.map_grant(back, GrantPte::Va(0x3000), front, entry)
        .unwrap();
    w.update(back, t.l1, 5, pte(mine, P | RW)).unwrap();
    // Not by PTE address.
    assert_eq!(
        w.replace_grant(
            back,
            GrantPte::Machine(t.l1.addr() + 24),
            entry,
            Some(0x5000)
        ),
        Err(PvMmError::BadArgument)
    );
    w.replace_grant(back, GrantPte::Va(0x3000), entry, Some(0x5000))
        .unwrap();
    assert_eq!(w.peek(t.l1, 5), 0);
    assert_eq!(w.peek(t.l1, 3) & ADDR_MASK, mine.addr());
    assert_eq!(w.info(page).count(), 1);
    assert_eq!((w.info(mine).count(), w.info(mine).type_count()), (2, 1));
    w.check();
}
