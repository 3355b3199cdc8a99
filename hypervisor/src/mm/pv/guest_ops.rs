//! The guest-facing operations: `mmu_update`, `mmuext_op`, `update_va_mapping[_otherdomain]`,
//! and the page-table walk `update_va_mapping` uses. Each checks its request against the rules of
//! `refs` and returns what the caller must do in hardware as [`Effect`]s.

use super::pte::{PSE, entry_mfn, guest_addr_ok, is_present};
use super::refs::Ctx;
use super::{
    Batch, DomId, DomainMm, DomainRef, FramePool, FrameStore, FrameTable, Level, M2pTable, Outcome,
    PageType, Pfn, PvMmError, VcpuMm,
};
use crate::mm::Mfn;

/// `mmu_update` sub-commands, in the low three bits of `ptr` (`xen/include/public/xen.h`).
pub mod mmu {
    /// Checked `*ptr = val`; `ptr` is the machine address of an entry.
    pub const NORMAL_PT_UPDATE: u64 = 0;
    /// `m2p[ptr >> 12] = val` for a frame of the page owner.
    pub const MACHPHYS_UPDATE: u64 = 1;
    /// As `NORMAL_PT_UPDATE`, keeping the accessed and dirty bits of the old entry.
    pub const PT_UPDATE_PRESERVE_AD: u64 = 2;
    /// As `NORMAL_PT_UPDATE` (no translation happens for PV domains).
    pub const PT_UPDATE_NO_TRANSLATE: u64 = 3;
}

/// `update_va_mapping` flags (`xen/include/public/xen.h`).
pub mod uvmf {
    /// No flush.
    pub const NONE: u64 = 0;
    /// Flush the whole TLB(s).
    pub const TLB_FLUSH: u64 = 1;
    /// Flush the one address.
    pub const INVLPG: u64 = 2;
    /// The bits that say what to flush.
    pub const FLUSHTYPE_MASK: u64 = 3;
    /// Flush this vCPU only (as `MULTI` with a null bitmap).
    pub const LOCAL: u64 = 0;
    /// With a bitmap address ORed in: flush the vCPUs in the bitmap.
    pub const MULTI: u64 = 0;
    /// Flush every vCPU of the domain.
    pub const ALL: u64 = 4;
}

/// The requests are guest-abi's `struct mmu_update` and `struct mmuext_op`, read straight
/// from the guest.
pub use guest_abi::xen::{MmuUpdate, MmuextOp};

/// `mmuext_op` commands (`MMUEXT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MmuextCmd {
    /// Validate and pin an L1 table.
    PinL1Table = 0,
    /// Validate and pin an L2 table.
    PinL2Table = 1,
    /// Validate and pin an L3 table.
    PinL3Table = 2,
    /// Validate and pin an L4 table.
    PinL4Table = 3,
    /// Unpin a table.
    UnpinTable = 4,
    /// Switch the vCPU's kernel L4.
    NewBaseptr = 5,
    /// Flush this vCPU's TLB.
    TlbFlushLocal = 6,
    /// Flush one address from this vCPU's TLB.
    InvlpgLocal = 7,
    /// Flush the TLBs of the vCPUs in a bitmap.
    TlbFlushMulti = 8,
    /// Flush one address from the TLBs of the vCPUs in a bitmap.
    InvlpgMulti = 9,
    /// Flush every vCPU's TLB.
    TlbFlushAll = 10,
    /// Flush one address from every vCPU's TLB.
    InvlpgAll = 11,
    /// Write back and invalidate this CPU's caches.
    FlushCache = 12,
    /// Set the LDT's base and size.
    SetLdt = 13,
    /// Switch the vCPU's user L4.
    NewUserBaseptr = 15,
    /// Zero a frame.
    ClearPage = 16,
    /// Copy a frame.
    CopyPage = 17,
    /// Write back and invalidate every CPU's caches.
    FlushCacheGlobal = 18,
    /// Mark a superpage (refused, as in current Xen).
    MarkSuper = 19,
    /// Unmark a superpage (refused, as in current Xen).
    UnmarkSuper = 20,
}

impl TryFrom<u32> for MmuextCmd {
    type Error = PvMmError;

    fn try_from(cmd: u32) -> Result<Self, PvMmError> {
        use MmuextCmd::*;
        Ok(match cmd {
            0 => PinL1Table,
            1 => PinL2Table,
            2 => PinL3Table,
            3 => PinL4Table,
            4 => UnpinTable,
            5 => NewBaseptr,
            6 => TlbFlushLocal,
            7 => InvlpgLocal,
            8 => TlbFlushMulti,
            9 => InvlpgMulti,
            10 => TlbFlushAll,
            11 => InvlpgAll,
            12 => FlushCache,
            13 => SetLdt,
            15 => NewUserBaseptr,
            16 => ClearPage,
            17 => CopyPage,
            18 => FlushCacheGlobal,
            19 => MarkSuper,
            20 => UnmarkSuper,
            _ => return Err(PvMmError::UnknownCommand(cmd)),
        })
    }
}

/// Which vCPUs' TLBs a flush concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbScope {
    /// The calling vCPU.
    Local,
    /// Every vCPU of the calling domain.
    AllVcpus,
    /// The vCPUs in the bitmap at this guest address. Reading it may fail; Xen then returns
    /// `-EINVAL` (`mmuext_op`) or `-EFAULT` (`update_va_mapping`).
    VcpuMask(u64),
}

/// What the caller must do in hardware after an operation succeeded. Every TLB flush includes
/// global entries: guest user mappings are global.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Flush the TLBs.
    FlushTlb(TlbScope),
    /// Flush one guest address (always a canonical guest address) from the TLBs.
    InvalidatePage {
        /// Whose TLBs.
        scope: TlbScope,
        /// The address.
        va: u64,
    },
    /// The vCPU's kernel L4 is (now) this table: load CR3 and drop the LDT's shadow mappings.
    LoadKernelTable(Mfn),
    /// The vCPU's LDT changed: drop its shadow mappings (flushing the local TLB if any existed)
    /// and reload the LDT.
    LoadLdt {
        /// Guest virtual address of the LDT (page aligned).
        base: u64,
        /// Number of descriptors (at most 8192).
        entries: u32,
    },
    /// Write back and invalidate caches (`wbinvd`).
    FlushCache {
        /// On every CPU rather than this one.
        all_cpus: bool,
    },
}

/// The flush an `update_va_mapping` `flags` argument asks for.
fn uvmf_effect(va: u64, flags: u64) -> Option<Effect> {
    let scope = match flags & !uvmf::FLUSHTYPE_MASK {
        uvmf::LOCAL => TlbScope::Local,
        uvmf::ALL => TlbScope::AllVcpus,
        mask => TlbScope::VcpuMask(mask),
    };
    match flags & uvmf::FLUSHTYPE_MASK {
        uvmf::TLB_FLUSH => Some(Effect::FlushTlb(scope)),
        uvmf::INVLPG => Some(Effect::InvalidatePage { scope, va }),
        _ => None,
    }
}

/// The domain whose frames L1 entries map, with its I/O access.
#[derive(Clone, Copy)]
struct PageOwner {
    id: DomId,
    iomem: bool,
}

impl<S: FrameStore, P: FramePool, M: M2pTable, const D: usize> FrameTable<S, P, M, D> {
    /// `HYPERVISOR_mmu_update(reqs, count, pdone, foreigndom)`: applies the requests in order,
    /// stopping at the first failure. `reqs` yields the requests as read from guest memory (an
    /// `Err(Fault)` where a read fails). `foreigndom`'s low 16 bits name the owner of the frames
    /// L1 entries map (`DOMID_SELF`, another domain, `DOMID_XEN` or `DOMID_IO`), its high 16 bits
    /// (plus one) the owner of the page tables; naming another domain takes privilege. Another
    /// domain's tables may only map that domain's own frames.
    pub fn mmu_update(
        &mut self,
        caller: DomainRef,
        foreigndom: u32,
        reqs: impl IntoIterator<Item = Result<MmuUpdate, PvMmError>>,
    ) -> Outcome<Batch> {
        let batch = match self.update_ctx(caller, foreigndom) {
            Ok(ctx) => self.run_batch(reqs, |ft, req| ft.mmu_update_one(caller.id(), &ctx, req)),
            Err(e) => Batch {
                done: 0,
                result: Err(e),
            },
        };
        self.outcome(batch)
    }

    /// The context of an `mmu_update` call: its page-table owner and page owner.
    fn update_ctx(&self, caller: DomainRef, foreigndom: u32) -> Result<Ctx, PvMmError> {
        self.domain(caller)?;
        let pt = match foreigndom >> 16 {
            0 => caller,
            n => {
                let id = DomId((n - 1) as u16);
                let pt = self.lookup(id).ok_or(PvMmError::NoSuchDomain(id))?;
                if pt != caller {
                    self.check_privileged(caller)?;
                }
                pt
            }
        };
        let fd = DomId(foreigndom as u16);
        let pt = self.domain(pt)?;
        if pt.id() != caller.id() {
            // Editing another domain's tables: they may only map that domain's frames. (Xen
            // takes DOMID_SELF to mean the caller here, letting it plant its own frames.)
            return if fd == DomId::SELF || fd == pt.id() {
                Ok(pt.ctx())
            } else {
                Err(PvMmError::NotPermitted)
            };
        }
        let pg = self.page_owner(caller, fd, true)?;
        Ok(Ctx {
            pg_owner: pg.id,
            pg_iomem: pg.iomem,
            ..pt.ctx()
        })
    }

    /// Resolves the page owner named by a `foreigndom`/`domid` argument (Xen's `get_pg_owner`
    /// plus the default XSM policy: other domains and `DOMID_XEN` take privilege when
    /// `check_privilege`, `DOMID_IO` does not).
    fn page_owner(
        &self,
        caller: DomainRef,
        fd: DomId,
        check_privilege: bool,
    ) -> Result<PageOwner, PvMmError> {
        let me = self.domain(caller)?;
        let owner = match fd {
            DomId::SELF => {
                return Ok(PageOwner {
                    id: me.id(),
                    iomem: me.config().iomem_access,
                });
            }
            _ if fd == me.id() => return Err(PvMmError::NoSuchDomain(fd)),
            DomId::IO => {
                return Ok(PageOwner {
                    id: fd,
                    iomem: false,
                });
            }
            DomId::XEN => PageOwner {
                id: fd,
                iomem: false,
            },
            _ => {
                let d = self.lookup(fd).ok_or(PvMmError::NoSuchDomain(fd))?;
                PageOwner {
                    id: fd,
                    iomem: self.domain(d)?.config().iomem_access,
                }
            }
        };
        if check_privilege {
            self.check_privileged(caller)?;
        }
        Ok(owner)
    }

    /// Runs `one` over `items` until an item or `one` fails.
    fn run_batch<T>(
        &mut self,
        items: impl IntoIterator<Item = Result<T, PvMmError>>,
        mut one: impl FnMut(&mut Self, T) -> Result<(), PvMmError>,
    ) -> Batch {
        let mut done = 0u32;
        for item in items {
            if let Err(e) = item.and_then(|t| one(self, t)) {
                return Batch {
                    done,
                    result: Err(e),
                };
            }
            done = done.saturating_add(1);
        }
        Batch {
            done,
            result: Ok(()),
        }
    }

    fn mmu_update_one(
        &mut self,
        caller: DomId,
        ctx: &Ctx,
        req: MmuUpdate,
    ) -> Result<(), PvMmError> {
        let cmd = req.ptr & 7;
        match cmd {
            mmu::NORMAL_PT_UPDATE | mmu::PT_UPDATE_PRESERVE_AD | mmu::PT_UPDATE_NO_TRANSLATE => {
                let preserve_ad = cmd == mmu::PT_UPDATE_PRESERVE_AD;
                self.update_entry(ctx, req.ptr & !7, req.val, preserve_ad)
            }
            mmu::MACHPHYS_UPDATE => {
                if ctx.pt_owner != caller {
                    return Err(PvMmError::NotPermitted);
                }
                let mfn = Mfn::containing(req.ptr);
                if !self.owned_by(mfn, ctx.pg_owner) {
                    return Err(PvMmError::BadReference { mfn });
                }
                self.m2p.set(mfn, Pfn(req.val));
                Ok(())
            }
            _ => Err(PvMmError::UnknownCommand(cmd as u32)),
        }
    }

    /// Whether `mfn` is an allocated frame of `owner`.
    fn owned_by(&self, mfn: Mfn, owner: DomId) -> bool {
        self.frame(mfn)
            .is_some_and(|f| f.owner == owner && f.count > 0)
    }

    /// `MMU_NORMAL_PT_UPDATE`: writes the word at machine address `addr` of one of the page-table
    /// owner's frames, through the checks of its level if it is a page table in use.
    fn update_entry(
        &mut self,
        ctx: &Ctx,
        addr: u64,
        val: u64,
        preserve_ad: bool,
    ) -> Result<(), PvMmError> {
        let table = Mfn::containing(addr);
        let slot = ((addr & 0xfff) >> 3) as usize;
        if !self.owned_by(table, ctx.pt_owner) {
            return Err(PvMmError::BadTable { mfn: table });
        }
        let f = *self.store.info(table);
        if f.type_count > 0 && f.is_validated() {
            return match f.ty.level() {
                Some(Level::L1) => self.mod_entry(table, Level::L1, slot, val, ctx, preserve_ad),
                // Higher levels only reference the page-table owner's frames.
                Some(_) if ctx.pg_owner != ctx.pt_owner => Err(PvMmError::BadTable { mfn: table }),
                Some(level) => self.mod_entry(table, level, slot, val, ctx, preserve_ad),
                None if f.ty == PageType::Writable => {
                    self.store.write_entry(table, slot, val);
                    Ok(())
                }
                None => Err(PvMmError::BadTable { mfn: table }),
            };
        }
        // Not in use as a page table: an ordinary write, under a writable type like Xen's.
        if self
            .get_ref_and_type(table, PageType::Writable, ctx)
            .is_err()
        {
            return Err(PvMmError::BadTable { mfn: table });
        }
        self.store.write_entry(table, slot, val);
        self.put_ref_and_type(table);
        Ok(())
    }

    /// `HYPERVISOR_mmuext_op(ops, count, pdone, foreigndom)` for `vcpu` of `caller`: applies
    /// the operations in order, stopping at the first failure, and hands each successful
    /// operation's [`Effect`] to `effect` as it goes. An error from `effect` (say, an unreadable
    /// vCPU bitmap) stops the batch there. `foreigndom` (another domain, for a privileged caller)
    /// applies to pins, unpins and page clears and copies; the other operations refuse it.
    pub fn mmuext_op(
        &mut self,
        caller: DomainRef,
        vcpu: &mut VcpuMm,
        foreigndom: u16,
        ops: impl IntoIterator<Item = Result<MmuextOp, PvMmError>>,
        mut effect: impl FnMut(Effect) -> Result<(), PvMmError>,
    ) -> Outcome<Batch> {
        let batch = match self.ext_owner(caller, vcpu, DomId(foreigndom)) {
            Ok(pg) => self.run_batch(ops, |ft, op| match ft.mmuext_one(caller, vcpu, pg, op)? {
                Some(e) => effect(e),
                None => Ok(()),
            }),
            Err(e) => Batch {
                done: 0,
                result: Err(e),
            },
        };
        self.outcome(batch)
    }

    fn ext_owner(
        &self,
        caller: DomainRef,
        vcpu: &VcpuMm,
        fd: DomId,
    ) -> Result<DomainRef, PvMmError> {
        if vcpu.domain() != caller.id() {
            return Err(PvMmError::NotPermitted);
        }
        if fd == DomId::SELF {
            return Ok(caller);
        }
        let pg = self.page_owner(caller, fd, true)?;
        // Only PV domains have page tables to pin: not DOMID_IO or DOMID_XEN.
        self.lookup(pg.id).ok_or(PvMmError::BadArgument)
    }

    fn mmuext_one(
        &mut self,
        caller: DomainRef,
        vcpu: &mut VcpuMm,
        pg: DomainRef,
        op: MmuextOp,
    ) -> Result<Option<Effect>, PvMmError> {
        use MmuextCmd::*;
        let cmd = MmuextCmd::try_from(op.cmd)?;
        let dom = *self.domain(pg)?;
        let local = |effect: Option<Effect>| {
            if pg == caller {
                Ok(effect)
            } else {
                Err(PvMmError::NotPermitted)
            }
        };
        let va = op.arg1;
        let invlpg = |scope| guest_addr_ok(va).then_some(Effect::InvalidatePage { scope, va });
        match cmd {
            PinL1Table => self.pin(&dom, Mfn(op.arg1), PageType::L1).map(|()| None),
            PinL2Table => self.pin(&dom, Mfn(op.arg1), PageType::L2).map(|()| None),
            PinL3Table => self.pin(&dom, Mfn(op.arg1), PageType::L3).map(|()| None),
            PinL4Table => self.pin(&dom, Mfn(op.arg1), PageType::L4).map(|()| None),
            UnpinTable => self.unpin(dom.id(), Mfn(op.arg1)).map(|()| None),
            NewBaseptr => {
                local(None)?;
                self.new_baseptr(vcpu, &dom, Mfn(op.arg1)).map(Some)
            }
            NewUserBaseptr => {
                local(None)?;
                self.new_user_baseptr(vcpu, &dom, op.arg1).map(|()| None)
            }
            TlbFlushLocal => local(Some(Effect::FlushTlb(TlbScope::Local))),
            InvlpgLocal => local(invlpg(TlbScope::Local)),
            TlbFlushMulti => local(Some(Effect::FlushTlb(TlbScope::VcpuMask(op.arg2)))),
            InvlpgMulti => local(invlpg(TlbScope::VcpuMask(op.arg2))),
            TlbFlushAll => local(Some(Effect::FlushTlb(TlbScope::AllVcpus))),
            InvlpgAll => local(invlpg(TlbScope::AllVcpus)),
            FlushCache | FlushCacheGlobal => {
                local(None)?;
                match (dom.config().iomem_access, cmd) {
                    (true, _) => Ok(Some(Effect::FlushCache {
                        all_cpus: cmd == FlushCacheGlobal,
                    })),
                    (false, FlushCache) => Err(PvMmError::CacheFlushDenied),
                    (false, _) => Err(PvMmError::BadArgument),
                }
            }
            SetLdt => {
                local(None)?;
                Self::set_ldt(vcpu, op.arg1, op.arg2 as u32)
            }
            ClearPage => self.clear_page(&dom, Mfn(op.arg1)).map(|()| None),
            CopyPage => self
                .copy_page(&dom, Mfn(op.arg1), Mfn(op.arg2))
                .map(|()| None),
            MarkSuper | UnmarkSuper => Err(PvMmError::Unsupported),
        }
    }

    fn pin(&mut self, dom: &DomainMm, mfn: Mfn, ty: PageType) -> Result<(), PvMmError> {
        self.get_ref_and_type(mfn, ty, &dom.ctx())?;
        if self.store.info(mfn).is_pinned() {
            self.put_ref_and_type(mfn);
            return Err(PvMmError::AlreadyPinned { mfn });
        }
        self.store.info_mut(mfn).set_pinned(true);
        if dom.is_dying() {
            // Raced with destruction, which has already unpinned everything: undo (Xen does too).
            self.store.info_mut(mfn).set_pinned(false);
            self.put_ref_and_type(mfn);
        }
        Ok(())
    }

    fn unpin(&mut self, owner: DomId, mfn: Mfn) -> Result<(), PvMmError> {
        if !self.get_ref(mfn, owner) {
            return Err(PvMmError::BadReference { mfn });
        }
        if !self.store.info(mfn).is_pinned() {
            self.put_ref(mfn);
            return Err(PvMmError::NotPinned { mfn });
        }
        self.store.info_mut(mfn).set_pinned(false);
        self.put_ref_and_type(mfn);
        self.put_ref(mfn);
        Ok(())
    }

    fn new_baseptr(
        &mut self,
        vcpu: &mut VcpuMm,
        dom: &DomainMm,
        mfn: Mfn,
    ) -> Result<Effect, PvMmError> {
        if vcpu.kernel_table() != Some(mfn) {
            self.get_ref_and_type(mfn, PageType::L4, &dom.ctx())?;
            if let Some(old) = vcpu.set_kernel_table(mfn) {
                self.put_ref_and_type(old);
            }
        }
        Ok(Effect::LoadKernelTable(mfn))
    }

    /// `NEW_USER_BASEPTR`: frame number 0 means "no user table" (Xen's ABI).
    fn new_user_baseptr(
        &mut self,
        vcpu: &mut VcpuMm,
        dom: &DomainMm,
        raw: u64,
    ) -> Result<(), PvMmError> {
        let new = (raw != 0).then_some(Mfn(raw));
        if new == vcpu.user_table() {
            return Ok(());
        }
        if let Some(mfn) = new {
            self.get_ref_and_type(mfn, PageType::L4, &dom.ctx())?;
        }
        if let Some(old) = vcpu.set_user_table(new) {
            self.put_ref_and_type(old);
        }
        Ok(())
    }

    fn set_ldt(vcpu: &mut VcpuMm, base: u64, entries: u32) -> Result<Option<Effect>, PvMmError> {
        let base = if entries == 0 { 0 } else { base };
        if base & 0xfff != 0 || !guest_addr_ok(base) || entries > 8192 {
            return Err(PvMmError::BadArgument);
        }
        if vcpu.ldt() == (base, entries) {
            return Ok(None);
        }
        vcpu.set_ldt(base, entries);
        Ok(Some(Effect::LoadLdt { base, entries }))
    }

    fn clear_page(&mut self, dom: &DomainMm, mfn: Mfn) -> Result<(), PvMmError> {
        self.get_ref_and_type(mfn, PageType::Writable, &dom.ctx())?;
        self.store.zero_frame(mfn);
        self.put_ref_and_type(mfn);
        Ok(())
    }

    fn copy_page(&mut self, dom: &DomainMm, dst: Mfn, src: Mfn) -> Result<(), PvMmError> {
        if !self.get_ref(src, dom.id()) {
            return Err(PvMmError::BadReference { mfn: src });
        }
        if let Err(e) = self.get_ref_and_type(dst, PageType::Writable, &dom.ctx()) {
            self.put_ref(src);
            return Err(e);
        }
        self.store.copy_frame(dst, src);
        self.put_ref_and_type(dst);
        self.put_ref(src);
        Ok(())
    }

    /// `HYPERVISOR_update_va_mapping(va, val, flags)` for `vcpu` of `caller`: replaces the L1
    /// entry that maps `va` in the vCPU's kernel page tables (found by [`walk`](Self::walk)) with
    /// `val`, checked as an `mmu_update` of it would be, and returns the flush `flags` ask for.
    pub fn update_va_mapping(
        &mut self,
        caller: DomainRef,
        vcpu: &VcpuMm,
        va: u64,
        val: u64,
        flags: u64,
    ) -> Outcome<Result<Option<Effect>, PvMmError>> {
        self.update_va_mapping_otherdomain(caller, vcpu, va, val, flags, DomId::SELF)
    }

    /// `HYPERVISOR_update_va_mapping_otherdomain`: as [`update_va_mapping`]
    /// (Self::update_va_mapping), mapping a frame of `domid` (privileged callers only, unless
    /// `val` is not present).
    pub fn update_va_mapping_otherdomain(
        &mut self,
        caller: DomainRef,
        vcpu: &VcpuMm,
        va: u64,
        val: u64,
        flags: u64,
        domid: DomId,
    ) -> Outcome<Result<Option<Effect>, PvMmError>> {
        let result = self.domain(caller).map(DomainMm::ctx).and_then(|ctx| {
            let pg = self.page_owner(caller, domid, is_present(val))?;
            let ctx = Ctx {
                pg_owner: pg.id,
                pg_iomem: pg.iomem,
                ..ctx
            };
            self.update_va(vcpu, &ctx, va, val, flags)
        });
        self.outcome(result)
    }

    fn update_va(
        &mut self,
        vcpu: &VcpuMm,
        ctx: &Ctx,
        va: u64,
        val: u64,
        flags: u64,
    ) -> Result<Option<Effect>, PvMmError> {
        if vcpu.domain() != ctx.pt_owner {
            return Err(PvMmError::NotPermitted);
        }
        let (l1, slot) = vcpu
            .kernel_table()
            .and_then(|l4| self.walk(l4, va))
            .ok_or(PvMmError::NoL1Table { va })?;
        let f = self.frame(l1).ok_or(PvMmError::NoL1Table { va })?;
        if f.owner != ctx.pt_owner || f.ty != PageType::L1 || f.type_count == 0 || !f.is_validated()
        {
            return Err(PvMmError::NoL1Table { va });
        }
        self.mod_entry(l1, Level::L1, slot, val, ctx, false)?;
        Ok(uvmf_effect(va, flags))
    }

    /// The L1 table and slot that map `va` under the L4 `l4`, or `None` when `va` is not a guest
    /// address or an entry on the way is not present (or maps a superpage). Reads the tables as
    /// the CPU would; for a validated L4 every table on the way is validated.
    pub fn walk(&self, l4: Mfn, va: u64) -> Option<(Mfn, usize)> {
        if !guest_addr_ok(va) {
            return None;
        }
        let mut table = l4;
        for level in [Level::L4, Level::L3, Level::L2] {
            if !self.in_ram(table) {
                return None;
            }
            let e = self.store.read_entry(table, level.index(va));
            if !is_present(e) || (level != Level::L4 && e & PSE != 0) {
                return None;
            }
            table = entry_mfn(e);
        }
        self.in_ram(table).then_some((table, Level::L1.index(va)))
    }
}
