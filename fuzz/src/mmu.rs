//! The `pv_mmu` fuzz target's machine: the PV MMU's shared fake (`hypervisor::mm::pv::fake`:
//! frame records and sparse frame contents, a free pool, an M2P table) with three domains of one
//! vCPU each and a few hypervisor frames, operations decoded from fuzzer input, and after every
//! operation the shared reference checker (`hypervisor::mm::pv::fake::check`), which recomputes
//! every count from scratch, plus the checks only a fuzzer's arbitrary operations need.

use arbitrary::Arbitrary;
use hypervisor::mm::Mfn;
use hypervisor::mm::pv::fake::check::{check_effect, check_with, needs_flush};
use hypervisor::mm::pv::fake::{RESERVED, VecList, machine};
use hypervisor::mm::pv::{
    ADDR_MASK, DomId, DomainConfig, DomainRef, ENTRIES, Effect, FrameInfo, FrameStore, MmuUpdate,
    MmuextOp, Outcome, PageType, PvMmError, VcpuMm,
};

/// Frames of the fake machine: enough for one aligned 2 MiB superpage (frames 512–1023) and
/// small frames around it.
pub const FRAMES: u64 = 1088;
/// A hypervisor frame shared writable with domain 1 (like its `shared_info`).
pub const SHARED_RW: u64 = 1;
/// A hypervisor frame shared read-only with `DOMID_XEN` (like the M2P, mappable by dom0).
pub const SHARED_XEN: u64 = 2;
/// An I/O frame (`DOMID_IO`).
pub const IO_FRAME: u64 = 3;
/// The domains: 0 privileged with I/O access, 1 an ordinary domU, 2 a domU with superpages.
pub const DOMAINS: u16 = 3;

/// The frame table of the fake machine (`hypervisor::mm::pv::fake`), for up to 4 domains.
pub type Table = hypervisor::mm::pv::fake::Table<4>;

/// The configuration of domain `id`.
pub fn config(id: u16) -> DomainConfig {
    DomainConfig {
        max_pages: 1100,
        privileged: id == 0,
        superpages: id == 2,
        iomem_access: id == 0,
    }
}

/// Picks a frame: one of a domain's own (by index, modulo how many it has), a hypervisor
/// frame, or any frame number at all.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum FrameSel {
    /// The `idx`-th frame (in frame order) owned by domain `dom`.
    Own {
        /// Domain (modulo [`DOMAINS`]).
        dom: u8,
        /// Index among its frames.
        idx: u16,
    },
    /// A frame below [`RESERVED`].
    Hyp(u8),
    /// Any frame number (also outside RAM).
    Raw(u64),
}

/// A page-table entry value: a frame and flags.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct Val {
    /// The frame.
    pub frame: FrameSel,
    /// Low flag bits (0–11).
    pub low: u16,
    /// High bits (52–63), shifted down.
    pub high: u16,
}

/// A virtual address: table indices, or anything.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Va {
    /// Indices into L4, L3, L2, L1 (sign-extended), plus an offset.
    Slots(u16, u16, u16, u16),
    /// Any 64-bit value.
    Raw(u64),
}

/// One request of an `mmu_update` batch.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct Req {
    /// The table the entry is in.
    pub table: FrameSel,
    /// The entry's index (modulo 512) or, when above, a misaligned byte offset.
    pub slot: u16,
    /// The sub-command (bits 0–2 of `ptr`).
    pub cmd: u8,
    /// The new value.
    pub val: Val,
}

/// One `mmuext_op` argument.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Arg {
    /// A frame number.
    Frame(FrameSel),
    /// An address.
    Va(Va),
    /// Anything.
    Raw(u64),
}

/// One fuzzed operation.
#[derive(Arbitrary, Clone, Debug)]
pub enum Op {
    /// `increase_reservation`.
    Increase {
        /// Domain.
        dom: u8,
        /// Extents.
        n: u8,
        /// Order (taken modulo 11: above 9 is refused).
        order: u8,
    },
    /// `populate_physmap` of one extent at guest frame `gpfn`.
    Populate {
        /// Domain.
        dom: u8,
        /// Guest frame number.
        gpfn: u64,
        /// Order.
        order: u8,
    },
    /// `decrease_reservation` of one extent.
    Decrease {
        /// Domain.
        dom: u8,
        /// First frame.
        frame: FrameSel,
        /// Order.
        order: u8,
    },
    /// A direct write to a frame the guest could write (not a table in use): what the domain
    /// builder or a writable mapping does.
    Poke {
        /// The frame.
        frame: FrameSel,
        /// The slot.
        slot: u16,
        /// The value.
        val: Val,
    },
    /// `mmu_update`.
    Update {
        /// The caller.
        dom: u8,
        /// `foreigndom`: low byte page owner, high byte table owner (see [`foreigndom`]).
        foreign: u16,
        /// The requests.
        reqs: Vec<Req>,
    },
    /// `mmu_update` with raw words.
    UpdateRaw {
        /// The caller.
        dom: u8,
        /// `foreigndom`.
        foreigndom: u32,
        /// `ptr`.
        ptr: u64,
        /// `val`.
        val: u64,
    },
    /// `mmuext_op`.
    Ext {
        /// The caller.
        dom: u8,
        /// `foreigndom` (see [`foreigndom`]; the low half).
        foreign: u8,
        /// The operations.
        ops: Vec<(u8, Arg, Arg)>,
    },
    /// `update_va_mapping` (or `_otherdomain` with `other`).
    UpdateVa {
        /// The caller.
        dom: u8,
        /// The address.
        va: Va,
        /// The new entry.
        val: Val,
        /// Flags.
        flags: u64,
        /// For `_otherdomain`: the page owner.
        other: Option<u8>,
    },
    /// Destroys a domain, and creates it again when its frames are gone.
    Destroy {
        /// The domain.
        dom: u8,
    },
    /// Creates a domain again (if it is gone).
    Create {
        /// The domain.
        dom: u8,
    },
    /// `get_page_and_type` (the `set_gdt` path) of a domain's frame.
    GetType {
        /// The domain.
        dom: u8,
        /// The frame.
        frame: FrameSel,
        /// The type (modulo 7).
        ty: u8,
    },
    /// `put_page_and_type` of a reference taken by [`Op::GetType`] (index into those held).
    PutType {
        /// Which held reference.
        idx: u8,
    },
}

/// The `foreigndom` word of a fuzzed `mmu_update`: each byte picks a domain (`0` = none /
/// `DOMID_SELF`, `1..=3` = domain 0..2, `4` = `DOMID_IO`, `5` = `DOMID_XEN`, `6` = an
/// unknown domain, above: the byte itself).
pub fn foreigndom(foreign: u16) -> u32 {
    let pick = |b: u8| -> u16 {
        match b {
            0 => DomId::SELF.0,
            1..=3 => u16::from(b - 1),
            4 => DomId::IO.0,
            5 => DomId::XEN.0,
            6 => 77,
            b => u16::from(b),
        }
    };
    let pg = pick(foreign as u8);
    let pt = match (foreign >> 8) as u8 {
        0 => 0,
        b => u32::from(pick(b)) + 1,
    };
    (pt << 16) | u32::from(pg)
}

/// The fake machine, its domains and their vCPUs.
pub struct Machine {
    /// The frame table.
    pub ft: Table,
    /// One vCPU per domain slot (index = domain id).
    pub vcpus: Vec<VcpuMm>,
    /// References taken with `get_page_and_type`.
    pub held: Vec<Mfn>,
}

impl Default for Machine {
    fn default() -> Self {
        Self::new()
    }
}

impl Machine {
    /// A machine with the three domains and the hypervisor frames set up.
    pub fn new() -> Self {
        let mut ft: Table = machine(FRAMES);
        let mut vcpus = Vec::new();
        for id in 0..DOMAINS {
            let d = ft.create_domain(DomId(id), config(id)).expect("a domain");
            vcpus.push(VcpuMm::new(d));
        }
        ft.share_hypervisor_frame(Mfn(SHARED_RW), DomId(1), true)
            .expect("share");
        ft.share_hypervisor_frame(Mfn(SHARED_XEN), DomId::XEN, false)
            .expect("share");
        ft.mark_io_frame(Mfn(IO_FRAME)).expect("io frame");
        Self {
            ft,
            vcpus,
            held: Vec::new(),
        }
    }

    fn dom(&self, dom: u8) -> Option<(usize, DomainRef)> {
        let id = u16::from(dom) % DOMAINS;
        self.ft.lookup(DomId(id)).map(|d| (usize::from(id), d))
    }

    /// The frame number a selector picks.
    pub fn frame(&self, sel: FrameSel) -> u64 {
        match sel {
            FrameSel::Own { dom, idx } => {
                let owner = DomId(u16::from(dom) % DOMAINS);
                let owned: Vec<u64> = (RESERVED..FRAMES)
                    .filter(|&m| self.ft.frame(Mfn(m)).and_then(FrameInfo::owner) == Some(owner))
                    .collect();
                if owned.is_empty() {
                    RESERVED
                } else {
                    owned[usize::from(idx) % owned.len()]
                }
            }
            FrameSel::Hyp(n) => u64::from(n) % RESERVED,
            FrameSel::Raw(m) => m,
        }
    }

    /// The value an entry selector stands for.
    pub fn val(&self, v: Val) -> u64 {
        let addr = (self.frame(v.frame) << 12) & ADDR_MASK;
        addr | u64::from(v.low & 0xfff) | (u64::from(v.high & 0xfff) << 52)
    }

    fn va(va: Va) -> u64 {
        match va {
            Va::Slots(a, b, c, d) => {
                let raw = (u64::from(a & 511) << 39)
                    | (u64::from(b & 511) << 30)
                    | (u64::from(c & 511) << 21)
                    | (u64::from(d & 511) << 12);
                // Sign-extend bit 47.
                ((raw << 16) as i64 >> 16) as u64
            }
            Va::Raw(v) => v,
        }
    }

    fn arg(&self, a: Arg) -> u64 {
        match a {
            Arg::Frame(f) => self.frame(f),
            Arg::Va(v) => Self::va(v),
            Arg::Raw(r) => r,
        }
    }

    fn infos(&self) -> Vec<FrameInfo> {
        (0..FRAMES)
            .map(|m| *self.ft.frame(Mfn(m)).expect("in RAM"))
            .collect()
    }

    /// Applies one operation and checks every invariant afterwards.
    pub fn apply(&mut self, op: &Op) {
        let before = self.infos();
        let vcpus_before = self.vcpus.clone();
        let (flush, failed_single) = self.run(op);
        let after = self.infos();
        if failed_single {
            // The type of a frame nobody uses as any type means nothing (a failed validation
            // may leave it behind, as Xen's does): with no type reference before or after,
            // the type may change as long as the frame is not left validated (a failed op may
            // drop trust in a frame's contents, never grant it); everything else must be as
            // it was.
            let same = |a: &FrameInfo, b: &FrameInfo| {
                let untyped = a.type_count() == 0 && b.type_count() == 0;
                let type_same =
                    a.page_type() == b.page_type() && a.is_validated() == b.is_validated();
                a.owner() == b.owner()
                    && a.count() == b.count()
                    && a.type_count() == b.type_count()
                    && a.is_pinned() == b.is_pinned()
                    && a.is_allocated() == b.is_allocated()
                    && a.is_shared() == b.is_shared()
                    && (type_same || (untyped && !b.is_validated()))
            };
            let changed = (0..FRAMES as usize).find(|&m| !same(&before[m], &after[m]));
            assert!(
                changed.is_none() && vcpus_before == self.vcpus,
                "{op:?} failed but changed the state: {}",
                match changed {
                    Some(m) => format!("mfn {m:#x} was {:?}, is {:?}", before[m], after[m]),
                    None => "the vCPUs".to_string(),
                }
            );
        }
        if needs_flush(&before, &after) {
            assert!(
                flush,
                "{op:?} changed a type or freed a frame without a flush"
            );
        }
        check_with(&self.ft, &self.vcpus, &self.held);
    }

    /// Runs `op`; returns whether a flush was reported and whether it was a single request
    /// that failed (so must have changed nothing).
    fn run(&mut self, op: &Op) -> (bool, bool) {
        match *op {
            Op::Increase { dom, n, order } => {
                let Some((_, d)) = self.dom(dom) else {
                    return (false, false);
                };
                let n = n % 4;
                let mut list = VecList::fixed(vec![0; usize::from(n)]);
                let o =
                    self.ft
                        .increase_reservation(d, u32::from(n), u32::from(order % 11), &mut list);
                (o.flush_all_cpus, false)
            }
            Op::Populate { dom, gpfn, order } => {
                let Some((_, d)) = self.dom(dom) else {
                    return (false, false);
                };
                let mut list = VecList::fixed(vec![gpfn]);
                let o = self
                    .ft
                    .populate_physmap(d, 1, u32::from(order % 11), &mut list);
                (o.flush_all_cpus, false)
            }
            Op::Decrease { dom, frame, order } => {
                let Some((_, d)) = self.dom(dom) else {
                    return (false, false);
                };
                let mut list = VecList::fixed(vec![self.frame(frame)]);
                let o = self
                    .ft
                    .decrease_reservation(d, 1, u32::from(order % 11), &mut list);
                (o.flush_all_cpus, false)
            }
            Op::Poke { frame, slot, val } => {
                let m = self.frame(frame);
                let writable = self.ft.frame(Mfn(m)).is_some_and(|f| {
                    f.owner().is_some_and(|o| !o.is_reserved())
                        && !f.is_shared()
                        && (f.type_count() == 0
                            || !(f.page_type().is_page_table()
                                || f.page_type() == PageType::SegDesc))
                });
                if writable {
                    let v = self.val(val);
                    self.ft
                        .store_mut()
                        .write_entry(Mfn(m), usize::from(slot) % ENTRIES, v);
                }
                (false, false)
            }
            Op::Update {
                dom,
                foreign,
                ref reqs,
            } => {
                let Some((_, d)) = self.dom(dom) else {
                    return (false, false);
                };
                let reqs: Vec<_> = reqs
                    .iter()
                    .take(8)
                    .map(|r| {
                        let offset = if r.slot < 512 {
                            u64::from(r.slot) * 8
                        } else {
                            u64::from(r.slot) % 4096
                        };
                        let ptr =
                            ((self.frame(r.table) << 12) + offset) & !7 | u64::from(r.cmd & 7);
                        Ok(MmuUpdate {
                            ptr,
                            val: self.val(r.val),
                        })
                    })
                    .collect();
                let single = reqs.len() == 1;
                let o = self.ft.mmu_update(d, foreigndom(foreign), reqs);
                check_batch(&o);
                (o.flush_all_cpus, single && o.result.result.is_err())
            }
            Op::UpdateRaw {
                dom,
                foreigndom,
                ptr,
                val,
            } => {
                let Some((_, d)) = self.dom(dom) else {
                    return (false, false);
                };
                let o = self
                    .ft
                    .mmu_update(d, foreigndom, [Ok(MmuUpdate { ptr, val })]);
                check_batch(&o);
                (o.flush_all_cpus, o.result.result.is_err())
            }
            Op::Ext {
                dom,
                foreign,
                ref ops,
            } => {
                let Some((slot, d)) = self.dom(dom) else {
                    return (false, false);
                };
                let ops: Vec<_> = ops
                    .iter()
                    .take(8)
                    .map(|&(cmd, a1, a2)| {
                        Ok(MmuextOp::new(
                            u32::from(cmd % 24),
                            self.arg(a1),
                            self.arg(a2),
                        ))
                    })
                    .collect();
                let single = ops.len() == 1;
                let fd = foreigndom(u16::from(foreign)) as u16;
                let mut vcpu = self.vcpus[slot];
                let mut effects = Vec::new();
                let o = self.ft.mmuext_op(d, &mut vcpu, fd, ops, |e| {
                    effects.push(e);
                    Ok(())
                });
                self.vcpus[slot] = vcpu;
                check_batch(&o);
                for e in effects {
                    check_effect(e, &vcpu);
                }
                (o.flush_all_cpus, single && o.result.result.is_err())
            }
            Op::UpdateVa {
                dom,
                va,
                val,
                flags,
                other,
            } => {
                let Some((slot, d)) = self.dom(dom) else {
                    return (false, false);
                };
                let va = Self::va(va);
                let v = self.val(val);
                let vcpu = self.vcpus[slot];
                let o: Outcome<Result<Option<Effect>, PvMmError>> = match other {
                    None => self.ft.update_va_mapping(d, &vcpu, va, v, flags),
                    Some(o) => {
                        let id = match o % 5 {
                            0..=2 => DomId(u16::from(o % 5)),
                            3 => DomId::SELF,
                            _ => DomId(u16::from(o)),
                        };
                        self.ft
                            .update_va_mapping_otherdomain(d, &vcpu, va, v, flags, id)
                    }
                };
                if let Ok(Some(e)) = o.result {
                    check_effect(e, &vcpu);
                }
                (o.flush_all_cpus, o.result.is_err())
            }
            Op::Destroy { dom } => {
                let Some((_, d)) = self.dom(dom) else {
                    return (false, false);
                };
                let o = self.ft.destroy_domain(d, &mut self.vcpus);
                (o.flush_all_cpus, false)
            }
            Op::Create { dom } => {
                let id = u16::from(dom) % DOMAINS;
                if let Ok(d) = self.ft.create_domain(DomId(id), config(id)) {
                    self.vcpus[usize::from(id)] = VcpuMm::new(d);
                }
                (false, false)
            }
            Op::GetType { dom, frame, ty } => {
                let Some((_, d)) = self.dom(dom) else {
                    return (false, false);
                };
                let ty = match ty % 7 {
                    0 => PageType::None,
                    1 => PageType::Writable,
                    2 => PageType::L1,
                    3 => PageType::L2,
                    4 => PageType::L3,
                    5 => PageType::L4,
                    _ => PageType::SegDesc,
                };
                let m = Mfn(self.frame(frame));
                let o = self.ft.get_page_and_type(d, m, ty);
                if o.result.is_ok() {
                    self.held.push(m);
                }
                (o.flush_all_cpus, o.result.is_err())
            }
            Op::PutType { idx } => {
                if self.held.is_empty() {
                    return (false, false);
                }
                let m = self.held.remove(usize::from(idx) % self.held.len());
                let o = self.ft.put_page_and_type(m);
                (o.flush_all_cpus, false)
            }
        }
    }
}

fn check_batch(o: &Outcome<hypervisor::mm::pv::Batch>) {
    if o.result.result.is_err() {
        // `done` is the index of the failing request: at most what was asked.
        assert!(
            o.result.done < 9,
            "done {} of a batch of at most 8",
            o.result.done
        );
    }
}
