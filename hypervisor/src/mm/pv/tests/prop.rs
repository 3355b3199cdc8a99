//! Property tests: random sequences of updates, pins, unpins, base-pointer switches, frees and
//! destructions over three domains, checked after every step against the reference model, and
//! checked to change nothing when they fail.

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::super::*;
use super::fake::*;
use crate::mm::Mfn;

const FRAMES: u64 = 112;
const DOMAINS: u8 = 3;

/// Slots that collide often, including the hypervisor's L4 range and its edges.
const SLOTS: [usize; 9] = [0, 1, 2, 3, 255, 256, 271, 272, 511];

/// Flag combinations, good and bad.
const FLAGS: [u64; 14] = [
    0,
    PRESENT,
    PRESENT | RW,
    PRESENT | USER,
    PRESENT | RW | USER | ACCESSED | DIRTY,
    PRESENT | RW | NX,
    PRESENT | GLOBAL,
    PRESENT | PSE,
    PRESENT | RW | PSE,
    PRESENT | PCD,
    PRESENT | GNTTAB,
    PRESENT | GUEST_KERNEL | RW,
    0xabc0, // not present, garbage
    PRESENT | RW | USER | GLOBAL,
];

/// What an entry points at.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// The k-th frame the domain owns.
    Own(u8),
    /// The k-th frame another domain owns.
    Other(u8, u8),
    /// A hypervisor frame (shared with `DOMID_XEN`, or never managed).
    Hyp(bool),
    /// A frame outside RAM.
    Beyond,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Populate {
        dom: u8,
        n: u8,
    },
    Release {
        dom: u8,
        frame: u8,
    },
    /// Builds the four tables mapping address 0, optionally pinning and loading them.
    Tree {
        dom: u8,
        pin: bool,
        load: bool,
    },
    Update {
        dom: u8,
        table: u8,
        slot: u8,
        target: Target,
        flags: u8,
    },
    /// dom0 (domain 0) maps another domain's frame through the foreign form (`dom` 0: the
    /// hypervisor's shared frame, through `DOMID_XEN`).
    Foreign {
        table: u8,
        slot: u8,
        dom: u8,
        frame: u8,
        rw: bool,
    },
    /// dom0 edits another domain's table (page-table owner form), naming a page owner, and
    /// mapping the k-th frame of that domain or of dom0.
    ForeignTable {
        dom: u8,
        table: u8,
        slot: u8,
        fd: u8,
        dom0_frame: bool,
        frame: u8,
        flags: u8,
    },
    UpdateVa {
        dom: u8,
        va: u8,
        target: Target,
        flags: u8,
    },
    /// A grant mapping of `granter`'s k-th frame installed (or removed) by `dom` at a virtual
    /// address or in one of its tables by machine address.
    Grant {
        dom: u8,
        granter: u8,
        frame: u8,
        at: Option<(u8, u8)>,
        va: u8,
        rw: bool,
        unmap: bool,
    },
    Pin {
        dom: u8,
        level: u8,
        frame: u8,
    },
    Unpin {
        dom: u8,
        frame: u8,
    },
    NewBase {
        dom: u8,
        frame: u8,
    },
    NewUserBase {
        dom: u8,
        frame: Option<u8>,
    },
    Clear {
        dom: u8,
        frame: u8,
    },
    Destroy {
        dom: u8,
    },
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        8 => any::<u8>().prop_map(Target::Own),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(d, k)| Target::Other(d, k)),
        1 => any::<bool>().prop_map(Target::Hyp),
        1 => Just(Target::Beyond),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let dom = 0..DOMAINS;
    prop_oneof![
        2 => (dom.clone(), 1..6u8).prop_map(|(dom, n)| Op::Populate { dom, n }),
        1 => (dom.clone(), any::<u8>()).prop_map(|(dom, frame)| Op::Release { dom, frame }),
        1 => (dom.clone(), any::<bool>(), any::<bool>())
            .prop_map(|(dom, pin, load)| Op::Tree { dom, pin, load }),
        8 => (dom.clone(), any::<u8>(), any::<u8>(), target(), any::<u8>()).prop_map(
            |(dom, table, slot, target, flags)| Op::Update { dom, table, slot, target, flags }
        ),
        1 => (any::<u8>(), any::<u8>(), 0..DOMAINS, any::<u8>(), any::<bool>()).prop_map(
            |(table, slot, dom, frame, rw)| Op::Foreign { table, slot, dom, frame, rw }
        ),
        3 => (1..DOMAINS, any::<u8>(), any::<u8>(), 0..4u8, any::<bool>(), any::<u8>(), any::<u8>())
            .prop_map(|(dom, table, slot, fd, dom0_frame, frame, flags)| Op::ForeignTable {
                dom, table, slot, fd, dom0_frame, frame, flags
            }),
        4 => (dom.clone(), any::<u8>(), target(), any::<u8>()).prop_map(
            |(dom, va, target, flags)| Op::UpdateVa { dom, va, target, flags }
        ),
        3 => (
            dom.clone(),
            dom.clone(),
            any::<u8>(),
            proptest::option::of((any::<u8>(), any::<u8>())),
            any::<u8>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(dom, granter, frame, at, va, rw, unmap)| Op::Grant {
                dom, granter, frame, at, va, rw, unmap
            }),
        4 => (dom.clone(), 1..5u8, any::<u8>()).prop_map(
            |(dom, level, frame)| Op::Pin { dom, level, frame }
        ),
        2 => (dom.clone(), any::<u8>()).prop_map(|(dom, frame)| Op::Unpin { dom, frame }),
        2 => (dom.clone(), any::<u8>()).prop_map(|(dom, frame)| Op::NewBase { dom, frame }),
        1 => (dom.clone(), proptest::option::of(any::<u8>()))
            .prop_map(|(dom, frame)| Op::NewUserBase { dom, frame }),
        1 => (dom.clone(), any::<u8>()).prop_map(|(dom, frame)| Op::Clear { dom, frame }),
        1 => dom.prop_map(|dom| Op::Destroy { dom }),
    ]
}

/// The world the operations run in: dom0 (privileged, I/O access) and two domUs (one allowed
/// superpages), one vCPU each.
struct Sim {
    w: World,
    doms: Vec<Dom>,
    /// For domains re-created while their predecessor's ID is still taken.
    next_id: u16,
    /// L1 slots (table, slot) a grant mapping was ever installed in.
    grant_slots: Vec<(Mfn, usize)>,
}

fn config(i: u8) -> DomainConfig {
    match i {
        0 => dom0(40),
        1 => DomainConfig {
            superpages: true,
            ..domu(30)
        },
        _ => domu(30),
    }
}

impl Sim {
    fn new() -> Self {
        let mut w = World::new(FRAMES);
        w.ft.share_hypervisor_frame(Mfn(4), DomId::XEN, true)
            .unwrap();
        let doms = (0..DOMAINS)
            .map(|i| w.domain(u16::from(i), config(i)))
            .collect();
        Self {
            w,
            doms,
            next_id: 100,
            grant_slots: Vec::new(),
        }
    }

    /// The frames domain `i` owns, in order.
    fn owned(&self, i: u8) -> Vec<Mfn> {
        let id = self.doms[usize::from(i)].d.id();
        (0..FRAMES)
            .map(Mfn)
            .filter(|&m| self.w.info(m).owner() == Some(id))
            .collect()
    }

    fn pick(&self, i: u8, k: u8) -> Mfn {
        let owned = self.owned(i);
        if owned.is_empty() {
            Mfn(FRAMES - 1)
        } else {
            owned[usize::from(k) % owned.len()]
        }
    }

    fn target_mfn(&self, i: u8, t: Target) -> Mfn {
        match t {
            Target::Own(k) => self.pick(i, k),
            Target::Other(d, k) => self.pick((i + 1 + d % (DOMAINS - 1)) % DOMAINS, k),
            Target::Hyp(true) => Mfn(4),
            Target::Hyp(false) => Mfn(2),
            Target::Beyond => Mfn(FRAMES + 7),
        }
    }

    /// Applies one operation; `Some(result)` for those that must be atomic.
    fn apply(&mut self, op: Op) -> Option<Result<(), PvMmError>> {
        let doms = self.doms.clone();
        let dom = |i: u8| doms[usize::from(i)];
        match op {
            Op::Populate { dom: i, n } => {
                let mut list = VecList::new(std::vec![0; usize::from(n)]);
                let o = self
                    .w
                    .ft
                    .populate_physmap(dom(i).d, u32::from(n), 0, &mut list);
                self.w.flushed |= o.flush_all_cpus;
                None
            }
            Op::Release { dom: i, frame } => {
                let m = self.pick(i, frame);
                let mut list = VecList::new(std::vec![m.0]);
                let o = self.w.ft.decrease_reservation(dom(i).d, 1, 0, &mut list);
                self.w.flushed |= o.flush_all_cpus;
                None
            }
            Op::Tree { dom: i, pin, load } => {
                let free = self.w.ft.pool().free.len();
                let Ok(d) = self.w.ft.domain(dom(i).d) else {
                    return None;
                };
                if free < 4 || d.tot_pages() + 4 > d.config().max_pages {
                    return None;
                }
                let t = self.w.tree(dom(i));
                let pinned = if pin {
                    self.w.pin(dom(i), Level::L4, t.l4)
                } else {
                    Ok(())
                };
                let loaded = if load {
                    self.w.new_baseptr(dom(i), t.l4).map(drop)
                } else {
                    Ok(())
                };
                Some(pinned.and(loaded))
            }
            Op::Update {
                dom: i,
                table,
                slot,
                target,
                flags,
            } => {
                let table = self.pick(i, table);
                let slot = SLOTS[usize::from(slot) % SLOTS.len()];
                let m = self.target_mfn(i, target);
                let flags = FLAGS[usize::from(flags) % FLAGS.len()];
                Some(self.w.update(dom(i), table, slot, pte(m, flags)))
            }
            Op::Foreign {
                table,
                slot,
                dom: i,
                frame,
                rw,
            } => {
                let table = self.pick(0, table);
                let slot = SLOTS[usize::from(slot) % SLOTS.len()];
                let (fd, m) = match i {
                    0 => (DomId::XEN, Mfn(4)),
                    _ => (dom(i).d.id(), self.pick(i, frame)),
                };
                let flags = if rw { PRESENT | RW } else { PRESENT };
                let ptr = table.addr() + 8 * slot as u64;
                Some(
                    self.w
                        .update_as(dom(0), u32::from(fd.0), ptr, pte(m, flags)),
                )
            }
            Op::ForeignTable {
                dom: i,
                table,
                slot,
                fd,
                dom0_frame,
                frame,
                flags,
            } => {
                let table = self.pick(i, table);
                let slot = SLOTS[usize::from(slot) % SLOTS.len()];
                let m = self.pick(if dom0_frame { 0 } else { i }, frame);
                let flags = FLAGS[usize::from(flags) % FLAGS.len()];
                let fd = [DomId::SELF, dom(i).d.id(), dom(0).d.id(), DomId::XEN][usize::from(fd)];
                let pt = (u32::from(dom(i).d.id().0) + 1) << 16;
                let ptr = table.addr() + 8 * slot as u64;
                Some(
                    self.w
                        .update_as(dom(0), pt | u32::from(fd.0), ptr, pte(m, flags)),
                )
            }
            Op::UpdateVa {
                dom: i,
                va,
                target,
                flags,
            } => {
                let va = u64::from(va % 4) << 12;
                let m = self.target_mfn(i, target);
                let flags = FLAGS[usize::from(flags) % FLAGS.len()];
                Some(self.w.update_va(dom(i), va, pte(m, flags), 0).map(drop))
            }
            Op::Grant {
                dom: i,
                granter,
                frame,
                at,
                va,
                rw,
                unmap,
            } => {
                let at = match at {
                    Some((table, slot)) => {
                        let slot = SLOTS[usize::from(slot) % SLOTS.len()] as u64;
                        GrantPte::Machine(self.pick(i, table).addr() + 8 * slot)
                    }
                    None => GrantPte::Va(u64::from(va % 4) << 12),
                };
                let m = self.pick(granter, frame);
                let entry = pte(m, if rw { PRESENT | RW } else { PRESENT });
                let (d, g) = (dom(i), dom(granter).d.id());
                let slot = match at {
                    GrantPte::Machine(a) => Some((Mfn(a >> 12), (a & 0xfff) as usize / 8)),
                    GrantPte::Va(va) => self.w.vcpus[d.vcpu]
                        .kernel_table()
                        .and_then(|l4| self.w.ft.walk(l4, va)),
                };
                self.grant_slots.extend(slot);
                let o = if unmap {
                    self.w.ft.unmap_grant(
                        d.d,
                        &self.w.vcpus[d.vcpu],
                        at,
                        entry,
                        (va & 4 != 0).then_some(u64::from(va % 4) << 12),
                    )
                } else {
                    self.w
                        .ft
                        .map_grant(d.d, &self.w.vcpus[d.vcpu], at, g, entry)
                };
                Some(self.w.note(o))
            }
            Op::Pin {
                dom: i,
                level,
                frame,
            } => {
                let level = [Level::L1, Level::L2, Level::L3, Level::L4][usize::from(level - 1)];
                let m = self.pick(i, frame);
                Some(self.w.pin(dom(i), level, m))
            }
            Op::Unpin { dom: i, frame } => {
                let pinned: Vec<_> = self
                    .owned(i)
                    .into_iter()
                    .filter(|&m| self.w.info(m).is_pinned())
                    .collect();
                let m = match pinned.len() {
                    0 => self.pick(i, frame),
                    n => pinned[usize::from(frame) % n],
                };
                Some(self.w.unpin(dom(i), m))
            }
            Op::NewBase { dom: i, frame } => {
                let m = self.pick(i, frame);
                Some(self.w.new_baseptr(dom(i), m).map(drop))
            }
            Op::NewUserBase { dom: i, frame } => {
                let m = frame.map_or(0, |k| self.pick(i, k).0);
                Some(
                    self.w
                        .ext(dom(i), MmuextCmd::NewUserBaseptr, m, 0)
                        .map(drop),
                )
            }
            Op::Clear { dom: i, frame } => {
                let m = self.pick(i, frame);
                Some(self.w.ext(dom(i), MmuextCmd::ClearPage, m.0, 0).map(drop))
            }
            Op::Destroy { dom: i } => {
                let d = dom(i);
                if self.w.ft.domain(d.d).is_err() {
                    return None;
                }
                self.w.destroy(d);
                // Nothing of its own is left: only frames other domains still map.
                for m in (0..FRAMES).map(Mfn) {
                    let f = self.w.info(m);
                    if f.owner() == Some(d.d.id()) {
                        assert!(!f.is_allocated() && !f.is_pinned(), "{m}: {f:?}");
                        let in_use_as_table = f.page_type().is_page_table() && f.type_count() > 0;
                        assert!(f.count() > 0 && !in_use_as_table, "{m}: {f:?}");
                    }
                }
                // dom0's foreign mappings may keep the domain's accounting alive: then its ID
                // stays taken, and the new domain gets another.
                let id = if self.w.ft.lookup(d.d.id()).is_some() {
                    self.next_id += 1;
                    self.next_id
                } else {
                    d.d.id().0
                };
                if let Ok(nd) = self.w.ft.create_domain(DomId(id), config(i)) {
                    self.w.vcpus[d.vcpu] = VcpuMm::new(nd);
                    self.doms[usize::from(i)] = Dom {
                        d: nd,
                        vcpu: d.vcpu,
                    };
                }
                None
            }
        }
    }

    /// Everything a failed operation must leave as it was.
    fn snapshot(&self) -> Vec<(FrameInfo, Option<Vec<u64>>)> {
        (0..FRAMES)
            .map(Mfn)
            .map(|m| {
                let mut f = self.w.info(m);
                let table = (f.page_type().is_page_table() && f.type_count() > 0)
                    .then(|| (0..ENTRIES).map(|s| self.w.peek(m, s)).collect());
                if f.type_count() == 0 {
                    // The type of an unused frame may change (it stays what was tried).
                    f = FrameInfo {
                        ty: PageType::None,
                        flags: f.flags & !1,
                        ..f
                    };
                }
                (f, table)
            })
            .collect()
    }
}

fn run(ops: &[Op]) {
    let mut sim = Sim::new();
    for (i, &op) in ops.iter().enumerate() {
        let before = sim.snapshot();
        let raw_before: Vec<_> = (0..FRAMES).map(|m| sim.w.info(Mfn(m))).collect();
        let vcpus = sim.w.vcpus.clone();
        sim.w.take_flush();
        let result = sim.apply(op);
        if let Some(Err(e)) = result {
            assert!(
                before == sim.snapshot() && vcpus == sim.w.vcpus,
                "step {i}: {op:?} failed with {e} but changed the state"
            );
        }
        let raw_after: Vec<_> = (0..FRAMES).map(|m| sim.w.info(Mfn(m))).collect();
        if needs_flush(&raw_before, &raw_after) {
            assert!(sim.w.take_flush(), "step {i}: {op:?} needs a flush");
        }
        super::super::fake::check::check_all(&sim.w.ft, &sim.w.vcpus, &[], &sim.grant_slots);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn invariants_hold_after_every_step(ops in proptest::collection::vec(op(), 1..60)) {
        run(&ops);
    }
}

/// The generator reaches the states worth attacking: every kind of operation succeeds
/// sometimes, and validated trees, loaded base pointers and L1 tables held only by L2 entries
/// occur (deterministic seed).
#[test]
fn generated_sequences_reach_interesting_states() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeSet;
    use std::string::{String, ToString};

    let mut runner = TestRunner::deterministic();
    let mut succeeded = BTreeSet::<String>::new();
    let (mut validated_l4, mut loaded, mut held_by_l2) = (0, 0, 0);
    for _ in 0..100 {
        let ops = proptest::collection::vec(op(), 1..60)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut sim = Sim::new();
        for op in ops {
            if sim.apply(op) == Some(Ok(())) {
                let name = std::format!("{op:?}");
                succeeded.insert(name.split(' ').next().unwrap().to_string());
            }
            let infos: Vec<_> = (0..FRAMES).map(|m| sim.w.info(Mfn(m))).collect();
            let in_use = |f: &&FrameInfo, ty| f.page_type() == ty && f.type_count() > 0;
            validated_l4 += usize::from(infos.iter().any(|f| in_use(&f, PageType::L4)));
            held_by_l2 += usize::from(
                infos
                    .iter()
                    .any(|f| in_use(&f, PageType::L1) && !f.is_pinned()),
            );
            loaded += usize::from(sim.w.vcpus.iter().any(|v| v.kernel_table().is_some()));
        }
    }
    for kind in [
        "Tree",
        "Update",
        "Foreign",
        "UpdateVa",
        "Pin",
        "Unpin",
        "NewBase",
        "NewUserBase",
        "Clear",
    ] {
        assert!(
            succeeded.contains(kind),
            "{kind} never succeeds: {succeeded:?}"
        );
    }
    assert!(validated_l4 > 100 && loaded > 100 && held_by_l2 > 100);
}
