//! A small harness over the shared fake machine (`mm::pv::fake`) to build domains and page
//! tables with.

use std::vec::Vec;

use super::super::*;
use crate::mm::Mfn;

pub use super::super::fake::check::{check_effect, needs_flush};
pub use super::super::fake::{Table, VecList, hyp_entry, machine};

/// A page-table entry.
pub fn pte(mfn: Mfn, flags: u64) -> u64 {
    (mfn.0 << 12) | flags
}

/// A domU configuration with room for `max_pages`.
pub fn domu(max_pages: u64) -> DomainConfig {
    DomainConfig {
        max_pages,
        privileged: false,
        superpages: false,
        iomem_access: false,
    }
}

/// A dom0 configuration.
pub fn dom0(max_pages: u64) -> DomainConfig {
    DomainConfig {
        privileged: true,
        iomem_access: true,
        ..domu(max_pages)
    }
}

/// A fake machine with domains and one vCPU each.
pub struct World {
    pub ft: Table,
    pub vcpus: Vec<VcpuMm>,
    /// Flushes reported since the last [`World::take_flush`].
    pub flushed: bool,
}

/// A domain of a [`World`] with its vCPU's index.
#[derive(Clone, Copy, Debug)]
pub struct Dom {
    pub d: DomainRef,
    pub vcpu: usize,
}

/// Four frames forming the tables that map virtual address 0.
#[derive(Clone, Copy, Debug)]
pub struct Tree {
    pub l4: Mfn,
    pub l3: Mfn,
    pub l2: Mfn,
    pub l1: Mfn,
}

impl World {
    pub fn new(frames: u64) -> Self {
        Self {
            ft: machine(frames),
            vcpus: Vec::new(),
            flushed: false,
        }
    }

    pub fn domain(&mut self, id: u16, config: DomainConfig) -> Dom {
        let d = self.ft.create_domain(DomId(id), config).unwrap();
        self.vcpus.push(VcpuMm::new(d));
        Dom {
            d,
            vcpu: self.vcpus.len() - 1,
        }
    }

    pub(super) fn note<T>(&mut self, o: Outcome<T>) -> T {
        self.flushed |= o.flush_all_cpus;
        o.result
    }

    /// Whether a flush was reported since the last call.
    pub fn take_flush(&mut self) -> bool {
        core::mem::take(&mut self.flushed)
    }

    /// `n` fresh frames for `dom`.
    pub fn alloc(&mut self, dom: Dom, n: u32) -> Vec<Mfn> {
        let mut list = VecList::new(Vec::new());
        let o = self.ft.increase_reservation(dom.d, n, 0, &mut list);
        assert_eq!(self.note(o), n, "allocation");
        list.items.into_iter().map(Mfn).collect()
    }

    /// `N` fresh frames for `dom`, as an array.
    pub fn frames<const N: usize>(&mut self, dom: Dom) -> [Mfn; N] {
        self.alloc(dom, N as u32).try_into().unwrap()
    }

    /// Writes a frame directly, as the domain builder (or a guest through a writable mapping).
    pub fn poke(&mut self, mfn: Mfn, slot: usize, val: u64) {
        self.ft.store_mut().write_entry(mfn, slot, val);
    }

    pub fn peek(&self, mfn: Mfn, slot: usize) -> u64 {
        self.ft.store().read_entry(mfn, slot)
    }

    pub fn info(&self, mfn: Mfn) -> FrameInfo {
        *self.ft.frame(mfn).unwrap()
    }

    /// One `mmu_update` request.
    pub fn update_as(
        &mut self,
        dom: Dom,
        foreigndom: u32,
        ptr: u64,
        val: u64,
    ) -> Result<(), PvMmError> {
        let o = self
            .ft
            .mmu_update(dom.d, foreigndom, [Ok(MmuUpdate { ptr, val })]);
        let batch = self.note(o);
        batch.result
    }

    /// `MMU_NORMAL_PT_UPDATE` of `table[slot] = val`.
    pub fn update(&mut self, dom: Dom, table: Mfn, slot: usize, val: u64) -> Result<(), PvMmError> {
        self.update_as(
            dom,
            u32::from(DomId::SELF.0),
            table.addr() + 8 * slot as u64,
            val,
        )
    }

    /// One `mmuext_op`, returning its effects.
    pub fn ext_as(
        &mut self,
        dom: Dom,
        foreigndom: u16,
        cmd: MmuextCmd,
        arg1: u64,
        arg2: u64,
    ) -> Result<Vec<Effect>, PvMmError> {
        let mut effects = Vec::new();
        let op = MmuextOp::new(cmd as u32, arg1, arg2);
        let vcpu = &mut self.vcpus[dom.vcpu];
        let o = self.ft.mmuext_op(dom.d, vcpu, foreigndom, [Ok(op)], |e| {
            effects.push(e);
            Ok(())
        });
        let vcpu = &self.vcpus[dom.vcpu];
        for &e in &effects {
            check_effect(e, vcpu);
        }
        self.note(o).result.map(|()| effects)
    }

    pub fn ext(
        &mut self,
        dom: Dom,
        cmd: MmuextCmd,
        arg1: u64,
        arg2: u64,
    ) -> Result<Vec<Effect>, PvMmError> {
        self.ext_as(dom, DomId::SELF.0, cmd, arg1, arg2)
    }

    pub fn pin(&mut self, dom: Dom, level: Level, mfn: Mfn) -> Result<(), PvMmError> {
        let cmd = match level {
            Level::L1 => MmuextCmd::PinL1Table,
            Level::L2 => MmuextCmd::PinL2Table,
            Level::L3 => MmuextCmd::PinL3Table,
            Level::L4 => MmuextCmd::PinL4Table,
        };
        self.ext(dom, cmd, mfn.0, 0).map(drop)
    }

    pub fn unpin(&mut self, dom: Dom, mfn: Mfn) -> Result<(), PvMmError> {
        self.ext(dom, MmuextCmd::UnpinTable, mfn.0, 0).map(drop)
    }

    pub fn new_baseptr(&mut self, dom: Dom, mfn: Mfn) -> Result<Vec<Effect>, PvMmError> {
        self.ext(dom, MmuextCmd::NewBaseptr, mfn.0, 0)
    }

    pub fn update_va(
        &mut self,
        dom: Dom,
        va: u64,
        val: u64,
        flags: u64,
    ) -> Result<Option<Effect>, PvMmError> {
        let o = self
            .ft
            .update_va_mapping(dom.d, &self.vcpus[dom.vcpu], va, val, flags);
        if let Ok(Some(e)) = o.result {
            check_effect(e, &self.vcpus[dom.vcpu]);
        }
        self.note(o)
    }

    /// Builds (without validating) the four tables that map virtual address 0 for `dom`.
    pub fn tree(&mut self, dom: Dom) -> Tree {
        let f = self.alloc(dom, 4);
        let t = Tree {
            l4: f[0],
            l3: f[1],
            l2: f[2],
            l1: f[3],
        };
        self.poke(t.l4, 0, pte(t.l3, PRESENT | RW));
        self.poke(t.l3, 0, pte(t.l2, PRESENT | RW));
        self.poke(t.l2, 0, pte(t.l1, PRESENT | RW));
        t
    }

    /// A validated tree, pinned and loaded as the vCPU's kernel table.
    pub fn running_tree(&mut self, dom: Dom) -> Tree {
        let t = self.tree(dom);
        self.pin(dom, Level::L4, t.l4).unwrap();
        self.new_baseptr(dom, t.l4).unwrap();
        t
    }

    pub fn destroy(&mut self, dom: Dom) -> DestroyReport {
        let o = self.ft.destroy_domain(dom.d, &mut self.vcpus);
        self.note(o).unwrap()
    }

    /// One bounded pass of destroying `dom`.
    pub fn destroy_step(
        &mut self,
        dom: Dom,
        teardown: &mut Teardown,
        limits: TeardownLimits,
    ) -> Result<Option<DestroyReport>, PvMmError> {
        let o = self
            .ft
            .destroy_domain_step(dom.d, &mut self.vcpus, teardown, limits);
        self.note(o)
    }

    /// Checks every invariant from scratch.
    pub fn check(&self) {
        super::super::fake::check::check(&self.ft, &self.vcpus);
    }
}
