//! The reference model: recomputes every count from the frame contents, the pins and the base
//! pointers, and checks the five invariants of the module comment. Independent of the code under
//! test except for the per-level flag rules and the adjustment it applies.

use std::vec;
use std::vec::Vec;

use super::super::entry::{self, check_flags};
use super::super::*;
use super::fake::{RESERVED, Table, hyp_entry};
use crate::mm::Mfn;

struct Expect {
    refs: Vec<u64>,
    types: Vec<u64>,
    ty: Vec<Option<(PageType, &'static str)>>,
}

impl Expect {
    /// One more holder of a general reference on `m`, and of a type reference if `ty` is given.
    fn hold(&mut self, m: u64, ty: Option<PageType>, why: &'static str) {
        self.refs[m as usize] += 1;
        let Some(ty) = ty else { return };
        self.types[m as usize] += 1;
        match self.ty[m as usize] {
            // Invariants 1 and 2: one type per frame, so a page table is never mapped writable.
            Some((other, by)) if other != ty => {
                panic!("mfn {m:#x} is needed as {other:?} (by {by}) and {ty:?} (by {why})")
            }
            _ => self.ty[m as usize] = Some((ty, why)),
        }
    }
}

fn owner_config(ft: &Table, owner: DomId) -> Option<DomainConfig> {
    let d = ft.lookup(owner)?;
    Some(*ft.domain(d).unwrap().config())
}

/// Checks every invariant of the frame table and the vCPUs' base pointers.
pub fn check(ft: &Table, vcpus: &[VcpuMm]) {
    let limit = ft.store().frame_limit();
    let info = |m: u64| *ft.frame(Mfn(m)).unwrap();
    let mut x = Expect {
        refs: vec![0; limit as usize],
        types: vec![0; limit as usize],
        ty: vec![None; limit as usize],
    };
    for t in 0..limit {
        let f = info(t);
        if f.is_allocated() {
            x.refs[t as usize] += 1;
        }
        if f.is_shared() {
            x.hold(t, Some(f.page_type()), "share");
        }
        if f.is_pinned() {
            assert!(f.page_type().is_page_table(), "mfn {t:#x} pinned: {f:?}");
            x.hold(t, Some(f.page_type()), "pin");
        }
        let Some(level) = f.page_type().level() else {
            continue;
        };
        if f.type_count() == 0 {
            continue;
        }
        assert!(f.is_validated(), "mfn {t:#x} in use unvalidated: {f:?}");
        let owner = f.owner().expect("page table without owner");
        let config = owner_config(ft, owner).expect("page table of unknown domain");
        let rules = entry::Rules {
            superpages: config.superpages,
            iomem: config.iomem_access,
        };
        for slot in 0..ENTRIES {
            let e = ft.store().read_entry(Mfn(t), slot);
            if !is_guest_slot(level, slot) {
                assert_eq!(e, hyp_entry(slot), "mfn {t:#x} hypervisor slot {slot}");
                continue;
            }
            if e & PRESENT == 0 {
                continue;
            }
            // Invariant 3: allowed flags, installed as adjusted, only mappable frames.
            check_flags(level, e, rules)
                .unwrap_or_else(|err| panic!("mfn {t:#x}[{slot}] = {e:#x}: {err}"));
            assert_eq!(adjust(level, e), e, "mfn {t:#x}[{slot}] not adjusted");
            let m = entry_mfn(e).0;
            let same_owner = |m: u64| {
                let target = info(m).owner();
                target == Some(owner)
                    || (level == Level::L1 && config.privileged && target.is_some())
            };
            match level {
                Level::L1 if m >= limit || info(m).owner() == Some(DomId::IO) => {
                    assert!(config.iomem_access, "mfn {t:#x}[{slot}] maps I/O");
                }
                Level::L1 => {
                    assert!(same_owner(m), "mfn {t:#x}[{slot}] maps {m:#x}");
                    let ty = (e & RW != 0).then_some(PageType::Writable);
                    x.hold(m, ty, "writable L1 entry");
                }
                Level::L2 if e & PSE != 0 => {
                    assert!(config.superpages && m.is_multiple_of(SUPERPAGE_FRAMES));
                    for p in m..m + SUPERPAGE_FRAMES {
                        assert!(same_owner(p), "superpage {t:#x}[{slot}] maps {p:#x}");
                        let ty = (e & RW != 0).then_some(PageType::Writable);
                        x.hold(p, ty, "superpage");
                    }
                }
                _ => {
                    assert!(same_owner(m), "mfn {t:#x}[{slot}] references {m:#x}");
                    // Invariant 4: the level below, validated (checked with the counts).
                    x.hold(m, Some(level.entry_type()), "table entry");
                }
            }
        }
    }
    for v in vcpus {
        for l4 in [v.kernel_table(), v.user_table()].into_iter().flatten() {
            // Invariant 5.
            assert_eq!(info(l4.0).owner(), Some(v.domain()), "base pointer {l4}");
            x.hold(l4.0, Some(PageType::L4), "base pointer");
        }
    }
    let mut owned = std::collections::HashMap::<DomId, u64>::new();
    for m in 0..limit {
        let f = info(m);
        assert_eq!(
            f.count() as u64,
            x.refs[m as usize],
            "refs of mfn {m:#x}: {f:?}"
        );
        assert_eq!(
            f.type_count() as u64,
            x.types[m as usize],
            "types of mfn {m:#x}: {f:?}"
        );
        if let Some((ty, _)) = x.ty[m as usize] {
            assert_eq!(f.page_type(), ty, "type of mfn {m:#x}");
            assert!(f.is_validated(), "mfn {m:#x} used unvalidated: {f:?}");
        }
        let in_pool = ft.pool().free.contains(&m);
        match f.owner() {
            None => {
                assert_eq!(f, FrameInfo::FREE, "mfn {m:#x}");
                assert_eq!(in_pool, m >= RESERVED, "mfn {m:#x} pool membership");
            }
            Some(owner) => {
                assert!(!in_pool, "mfn {m:#x} owned and free");
                if !f.is_shared() && !owner.is_reserved() {
                    assert!(f.count() > 0, "mfn {m:#x} owned without references");
                    *owned.entry(owner).or_default() += 1;
                }
            }
        }
    }
    for dom in ft.domains.iter().flatten() {
        let n = owned.remove(&dom.id()).unwrap_or(0);
        assert_eq!(dom.tot_pages(), n, "tot_pages of {}", dom.id());
        assert!(n <= dom.config().max_pages || dom.is_dying());
    }
    assert!(owned.is_empty(), "frames of vanished domains: {owned:?}");
}
