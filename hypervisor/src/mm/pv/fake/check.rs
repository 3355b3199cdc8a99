//! The reference checker: recomputes every reference and type count from the frame contents,
//! the pins, the shares, the base pointers and the references the caller holds, and checks
//! the five invariants of the module comment of `mm::pv` (`docs/PV-MMU.md`). It relies on the
//! code under test only for the adjustment it applies to entries and for the per-level flag
//! rules, which it checks again against its own list of refused flags.

extern crate std;

use std::collections::HashMap;
use std::vec;
use std::vec::Vec;

use super::super::pte::{self, check_flags};
use super::super::{
    DomId, DomainConfig, ENTRIES, Effect, FrameInfo, FrameStore, GLOBAL, GNTTAB, Level, PAT, PCD,
    PRESENT, PSE, PWT, PageType, RW, SUPERPAGE_FRAMES, TlbScope, VcpuMm, adjust, entry_mfn,
    guest_addr_ok, is_guest_slot,
};
use super::{RESERVED, Table, hyp_entry};
use crate::mm::Mfn;

/// Holders of references, recomputed from scratch.
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

/// The flags a present entry of `level` may not have, given the domain's configuration
/// (`docs/PV-MMU.md`, "Entries: allowed and refused"): written out here, independently of the
/// allow-lists the code under test uses.
fn refused_flags(level: Level, c: &DomainConfig) -> u64 {
    match level {
        Level::L1 if c.iomem_access => GNTTAB,
        Level::L1 => GNTTAB | PWT | PCD | PAT,
        Level::L2 if c.superpages => PWT | PCD | GLOBAL,
        Level::L2 => PWT | PCD | GLOBAL | PSE,
        Level::L3 => PWT | PCD | GLOBAL | PSE,
        Level::L4 => PWT | PCD | GLOBAL | PAT,
    }
}

/// Checks every invariant of the frame table and the vCPUs' base pointers, with no references
/// held by the hypervisor.
pub fn check<const D: usize>(ft: &Table<D>, vcpus: &[VcpuMm]) {
    check_with(ft, vcpus, &[]);
}

/// Checks every invariant of the frame table and the vCPUs' base pointers. Each of `held`
/// carries one extra general and type reference (taken with `get_page_and_type`).
pub fn check_with<const D: usize>(ft: &Table<D>, vcpus: &[VcpuMm], held: &[Mfn]) {
    check_all(ft, vcpus, held, &[]);
}

/// [`check_with`], where the L1 entries at `grant_slots` (table, slot) may also be grant
/// mappings: a frame of any domain, as the grant table allowed.
pub fn check_all<const D: usize>(
    ft: &Table<D>,
    vcpus: &[VcpuMm],
    held: &[Mfn],
    grant_slots: &[(Mfn, usize)],
) {
    let limit = ft.store().frame_limit();
    let info = |m: u64| *ft.frame(Mfn(m)).expect("in RAM");
    let n = limit as usize;
    let mut x = Expect {
        refs: vec![0; n],
        types: vec![0; n],
        ty: vec![None; n],
    };
    for &m in held {
        let t = info(m.0).page_type();
        x.hold(m.0, Some(t), "get_page_and_type");
    }
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
        let d = ft.lookup(owner).expect("page table of an unknown domain");
        let c = *ft.domain(d).expect("domain").config();
        let rules = pte::Rules {
            superpages: c.superpages,
            iomem: c.iomem_access,
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
            let bad = e & refused_flags(level, &c);
            assert_eq!(
                bad, 0,
                "mfn {t:#x}[{slot}] = {e:#x}: refused flags {bad:#x}"
            );
            assert_eq!(adjust(level, e), e, "mfn {t:#x}[{slot}] not adjusted");
            let m = entry_mfn(e).0;
            let granted = level == Level::L1 && grant_slots.contains(&(Mfn(t), slot));
            let mappable = |m: u64| {
                let target = info(m).owner();
                target == Some(owner)
                    || (level == Level::L1 && (c.privileged || granted) && target.is_some())
            };
            match level {
                Level::L1 if m >= limit || info(m).owner() == Some(DomId::IO) => {
                    assert!(c.iomem_access, "mfn {t:#x}[{slot}] maps I/O");
                }
                Level::L1 => {
                    assert!(mappable(m), "mfn {t:#x}[{slot}] maps {m:#x}");
                    let ty = (e & RW != 0).then_some(PageType::Writable);
                    x.hold(m, ty, "writable L1 entry");
                }
                Level::L2 if e & PSE != 0 => {
                    assert!(c.superpages && m.is_multiple_of(SUPERPAGE_FRAMES));
                    for p in m..m + SUPERPAGE_FRAMES {
                        assert!(mappable(p), "superpage {t:#x}[{slot}] maps {p:#x}");
                        let ty = (e & RW != 0).then_some(PageType::Writable);
                        x.hold(p, ty, "superpage");
                    }
                }
                _ => {
                    assert!(
                        m < limit && mappable(m),
                        "mfn {t:#x}[{slot}] references {m:#x}"
                    );
                    // Invariant 4: the level below, validated (checked with the counts).
                    x.hold(m, Some(level.entry_type()), "table entry");
                }
            }
        }
    }
    for v in vcpus {
        if ft.lookup(v.domain()).is_none() {
            assert!(
                v.kernel_table().is_none() && v.user_table().is_none(),
                "base pointer of vanished domain {}",
                v.domain()
            );
            continue;
        }
        for l4 in [v.kernel_table(), v.user_table()].into_iter().flatten() {
            // Invariant 5.
            assert_eq!(info(l4.0).owner(), Some(v.domain()), "base pointer {l4}");
            x.hold(l4.0, Some(PageType::L4), "base pointer");
        }
    }
    let mut owned = HashMap::<DomId, u64>::new();
    for m in 0..limit {
        let f = info(m);
        assert_eq!(
            u64::from(f.count()),
            x.refs[m as usize],
            "refs of mfn {m:#x}: {f:?}"
        );
        assert_eq!(
            u64::from(f.type_count()),
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

/// Whether the change from `before` to `after` (every frame's record) needs a flush: a frame
/// went back to the pool, or changed from one type to another.
pub fn needs_flush(before: &[FrameInfo], after: &[FrameInfo]) -> bool {
    before.iter().zip(after).any(|(b, a)| {
        (b.owner().is_some() && a.owner().is_none())
            || (b.page_type() != PageType::None && a.page_type() != b.page_type())
    })
}

/// Checks an effect an operation of `vcpu` asked for, after the operation: addresses are the
/// guest's, a loaded kernel table is the vCPU's, an LDT is aligned and at most 8192 entries.
pub fn check_effect(e: Effect, vcpu: &VcpuMm) {
    match e {
        Effect::InvalidatePage { va, scope: _ } => {
            assert!(guest_addr_ok(va), "invalidation of {va:#x}");
        }
        Effect::LoadKernelTable(mfn) => {
            assert_eq!(vcpu.kernel_table(), Some(mfn), "loaded table is the vCPU's");
        }
        Effect::LoadLdt { base, entries } => {
            assert!(entries <= 8192, "LDT of {entries} entries");
            assert!(entries == 0 || (base & 0xfff == 0 && guest_addr_ok(base)));
        }
        Effect::FlushTlb(TlbScope::Local | TlbScope::AllVcpus | TlbScope::VcpuMask(_))
        | Effect::FlushCache { .. } => {}
    }
}
