//! A fake machine for `hypervisor::mm::pv`: frame records and sparse frame contents, a free
//! pool, an M2P table, three domains with one vCPU each, a few hypervisor frames, and a checker
//! of the PV MMU invariants that recomputes every count from scratch.

use std::collections::{BTreeSet, HashMap};

use arbitrary::Arbitrary;
use hypervisor::mm::Mfn;
use hypervisor::mm::pv::{
    ADDR_MASK, DomId, DomainConfig, DomainRef, ENTRIES, Effect, ExtentList, FrameInfo, FramePool,
    FrameStore, FrameTable, GLOBAL, GNTTAB, HYPERVISOR_SLOT_FIRST, HYPERVISOR_SLOT_LAST, Level,
    M2pTable, MmuUpdate, MmuextOp, Outcome, PAT, PCD, PRESENT, PSE, PWT, PageType, Pfn, PvMmError,
    RW, SUPERPAGE_FRAMES, TlbScope, VcpuMm, adjust, entry_mfn, guest_addr_ok, is_guest_slot,
};

/// Frames of the fake machine: enough for one aligned 2 MiB superpage (frames 512–1023) and
/// small frames around it.
pub const FRAMES: u64 = 1088;
/// Frames below this are the hypervisor's and never in the pool.
pub const RESERVED: u64 = 16;
/// A hypervisor frame shared writable with domain 1 (like its `shared_info`).
pub const SHARED_RW: u64 = 1;
/// A hypervisor frame shared read-only with `DOMID_XEN` (like the M2P, mappable by dom0).
pub const SHARED_XEN: u64 = 2;
/// An I/O frame (`DOMID_IO`).
pub const IO_FRAME: u64 = 3;
/// The domains: 0 privileged with I/O access, 1 an ordinary domU, 2 a domU with superpages.
pub const DOMAINS: u16 = 3;

/// What [`FrameStore::fill_hypervisor_slots`] writes into slot `slot` of a validated L4.
pub fn hyp_entry(slot: usize) -> u64 {
    0x000b_ad00_0000_0000 | ((slot as u64) << 12) | PRESENT | RW
}

/// Frame records and sparse frame contents (absent frames read as zero).
pub struct Store {
    infos: Vec<FrameInfo>,
    mem: HashMap<u64, Box<[u64; ENTRIES]>>,
}

impl FrameStore for Store {
    fn frame_limit(&self) -> u64 {
        self.infos.len() as u64
    }
    fn info(&self, mfn: Mfn) -> &FrameInfo {
        &self.infos[mfn.0 as usize]
    }
    fn info_mut(&mut self, mfn: Mfn) -> &mut FrameInfo {
        &mut self.infos[mfn.0 as usize]
    }
    fn read_entry(&self, mfn: Mfn, slot: usize) -> u64 {
        assert!(
            mfn.0 < FRAMES && slot < ENTRIES,
            "read of {mfn} slot {slot}"
        );
        self.mem.get(&mfn.0).map_or(0, |f| f[slot])
    }
    fn write_entry(&mut self, mfn: Mfn, slot: usize, value: u64) {
        assert!(
            mfn.0 < FRAMES && slot < ENTRIES,
            "write of {mfn} slot {slot}"
        );
        if value == 0 && !self.mem.contains_key(&mfn.0) {
            return;
        }
        self.mem
            .entry(mfn.0)
            .or_insert_with(|| Box::new([0; ENTRIES]))[slot] = value;
    }
    fn fill_hypervisor_slots(&mut self, l4: Mfn) {
        for slot in HYPERVISOR_SLOT_FIRST..=HYPERVISOR_SLOT_LAST {
            self.write_entry(l4, slot, hyp_entry(slot));
        }
    }
    fn zero_frame(&mut self, mfn: Mfn) {
        self.mem.remove(&mfn.0);
    }
}

/// The free pool; panics on a double free or on freeing a hypervisor frame.
pub struct Pool {
    free: BTreeSet<u64>,
}

impl FramePool for Pool {
    fn alloc(&mut self, order: u32) -> Option<Mfn> {
        let n = 1u64 << order;
        let base = self
            .free
            .iter()
            .copied()
            .filter(|m| m % n == 0)
            .find(|&m| (m..m + n).all(|f| self.free.contains(&f)))?;
        for f in base..base + n {
            self.free.remove(&f);
        }
        Some(Mfn(base))
    }
    fn free(&mut self, mfn: Mfn) {
        assert!(mfn.0 >= RESERVED, "{mfn} is not a pool frame");
        assert!(self.free.insert(mfn.0), "{mfn} freed twice");
    }
}

/// The M2P table.
#[derive(Default)]
pub struct M2p(HashMap<u64, u64>);

impl M2pTable for M2p {
    fn set(&mut self, mfn: Mfn, pfn: Pfn) {
        self.0.insert(mfn.0, pfn.0);
    }
    fn get(&self, mfn: Mfn) -> Pfn {
        Pfn(self.0.get(&mfn.0).copied().unwrap_or(!0))
    }
}

/// An `extent_start` list of at most a few entries.
pub struct List(pub Vec<u64>);

impl ExtentList for List {
    fn read(&mut self, index: u32) -> Result<u64, PvMmError> {
        self.0.get(index as usize).copied().ok_or(PvMmError::Fault)
    }
    fn write(&mut self, index: u32, value: u64) -> Result<(), PvMmError> {
        let slot = self.0.get_mut(index as usize).ok_or(PvMmError::Fault)?;
        *slot = value;
        Ok(())
    }
}

/// The frame table of the fake machine.
pub type Table = FrameTable<Store, Pool, M2p, 4>;

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
        let store = Store {
            infos: vec![FrameInfo::FREE; FRAMES as usize],
            mem: HashMap::new(),
        };
        let pool = Pool {
            free: (RESERVED..FRAMES).collect(),
        };
        let mut ft = Table::new(store, pool, M2p::default());
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
                let mut list = List(vec![0; usize::from(n)]);
                let o =
                    self.ft
                        .increase_reservation(d, u32::from(n), u32::from(order % 11), &mut list);
                (o.flush_all_cpus, false)
            }
            Op::Populate { dom, gpfn, order } => {
                let Some((_, d)) = self.dom(dom) else {
                    return (false, false);
                };
                let mut list = List(vec![gpfn]);
                let o = self
                    .ft
                    .populate_physmap(d, 1, u32::from(order % 11), &mut list);
                (o.flush_all_cpus, false)
            }
            Op::Decrease { dom, frame, order } => {
                let Some((_, d)) = self.dom(dom) else {
                    return (false, false);
                };
                let mut list = List(vec![self.frame(frame)]);
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
                        Ok(MmuextOp::new(u32::from(cmd % 24), self.arg(a1), self.arg(a2)))
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

fn check_effect(e: Effect, vcpu: &VcpuMm) {
    match e {
        Effect::InvalidatePage { va, scope } => {
            assert!(guest_addr_ok(va), "invalidation of {va:#x}");
            let _ = scope;
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

/// Whether the change from `before` to `after` needs a flush: a frame went back to the pool,
/// or changed from one type to another.
fn needs_flush(before: &[FrameInfo], after: &[FrameInfo]) -> bool {
    before.iter().zip(after).any(|(b, a)| {
        (b.owner().is_some() && a.owner().is_none())
            || (b.page_type() != PageType::None && a.page_type() != b.page_type())
    })
}

/// The flags a present entry of `level` may not have, given the domain's configuration
/// (`docs/PV-MMU.md`, "Entries: allowed and refused").
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

/// Holders of references, recomputed from scratch.
struct Expect {
    refs: Vec<u64>,
    types: Vec<u64>,
    ty: Vec<Option<(PageType, &'static str)>>,
}

impl Expect {
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

/// Checks every invariant of the frame table and the vCPUs' base pointers. `held` frames carry
/// one extra reference pair each (from `get_page_and_type`).
pub fn check_with(ft: &Table, vcpus: &[VcpuMm], held: &[Mfn]) {
    let info = |m: u64| *ft.frame(Mfn(m)).expect("in RAM");
    let n = FRAMES as usize;
    let mut x = Expect {
        refs: vec![0; n],
        types: vec![0; n],
        ty: vec![None; n],
    };
    for &m in held {
        let t = info(m.0).page_type();
        x.hold(m.0, Some(t), "get_page_and_type");
    }
    for t in 0..FRAMES {
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
            let bad = e & refused_flags(level, &c);
            assert_eq!(
                bad, 0,
                "mfn {t:#x}[{slot}] = {e:#x}: refused flags {bad:#x}"
            );
            assert_eq!(adjust(level, e), e, "mfn {t:#x}[{slot}] not adjusted");
            let m = entry_mfn(e).0;
            let mappable = |m: u64| {
                let target = info(m).owner();
                target == Some(owner) || (level == Level::L1 && c.privileged && target.is_some())
            };
            match level {
                Level::L1 if m >= FRAMES || info(m).owner() == Some(DomId::IO) => {
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
                        m < FRAMES && mappable(m),
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
            assert!(v.kernel_table().is_none() && v.user_table().is_none());
            continue;
        }
        for l4 in [v.kernel_table(), v.user_table()].into_iter().flatten() {
            // Invariant 5.
            assert_eq!(info(l4.0).owner(), Some(v.domain()), "base pointer {l4}");
            x.hold(l4.0, Some(PageType::L4), "base pointer");
        }
    }
    let mut owned = HashMap::<DomId, u64>::new();
    for m in 0..FRAMES {
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
    for id in 0..DOMAINS {
        let Some(d) = ft.lookup(DomId(id)) else {
            assert!(
                !owned.contains_key(&DomId(id)),
                "frames of vanished domain {id}"
            );
            continue;
        };
        let dom = ft.domain(d).expect("domain");
        let n = owned.remove(&DomId(id)).unwrap_or(0);
        assert_eq!(dom.tot_pages(), n, "tot_pages of {}", dom.id());
        assert!(n <= dom.config().max_pages || dom.is_dying());
    }
    assert!(owned.is_empty(), "frames of unknown domains: {owned:?}");
}

/// [`check_with`] without references held by the hypervisor.
pub fn check(ft: &Table, vcpus: &[VcpuMm]) {
    check_with(ft, vcpus, &[]);
}
