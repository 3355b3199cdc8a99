//! Grant mappings in a PV domain's page tables (Xen's `create_grant_pv_mapping` and
//! `replace_grant_pv_mapping`): an L1 entry of the mapping domain that maps a frame of the
//! granting domain, installed and removed on the grant table's say-so rather than through
//! `mmu_update`'s ownership rule.
//!
//! A grant mapping is an ordinary L1 entry for the invariants (`super`, 3 and the exact
//! counts): installing it takes the frame's general reference (and a writable type reference
//! for a writable mapping, which a page table or descriptor table of the granter refuses), and
//! removing it, by the grant table or by the guest overwriting the entry, drops them. The
//! grant table checks the grant; this module only checks where the entry goes.

use super::pte::{PRESENT, RW, entry_mfn};
use super::refs::Ctx;
use super::{
    DomId, DomainMm, DomainRef, FramePool, FrameStore, FrameTable, Level, M2pTable, Outcome,
    PageType, PvMmError, VcpuMm,
};
use crate::mm::Mfn;

/// Where a grant mapping's L1 entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantPte {
    /// The entry that maps this virtual address in the vCPU's kernel page tables.
    Va(u64),
    /// The entry at this machine address (`GNTMAP_contains_pte`), in one of the mapping
    /// domain's L1 tables.
    Machine(u64),
}

impl<S: FrameStore, P: FramePool, M: M2pTable, const D: usize> FrameTable<S, P, M, D> {
    /// Installs `entry` (flags and `frame`, a frame of `granter`) at `at` for `caller`, whose
    /// vCPU `vcpu` made the call; the old entry's references are dropped.
    pub fn map_grant(
        &mut self,
        caller: DomainRef,
        vcpu: &VcpuMm,
        at: GrantPte,
        granter: DomId,
        entry: u64,
    ) -> Outcome<Result<(), PvMmError>> {
        let result = self.domain(caller).map(DomainMm::ctx).and_then(|ctx| {
            let (table, slot) = self.grant_slot(&ctx, vcpu, at)?;
            // Only RAM is granted: never I/O memory, whatever the mapping domain may map.
            let frame = entry_mfn(entry);
            if self.is_io(frame) {
                return Err(PvMmError::NotMappable { mfn: frame });
            }
            let ctx = Ctx {
                pg_owner: granter,
                pg_iomem: false,
                ..ctx
            };
            self.mod_entry(table, Level::L1, slot, entry, &ctx, false)
        });
        self.outcome(result)
    }

    /// Removes the grant mapping `entry` at `at` for `caller`: the entry there must map the
    /// same frame with the present and writable bits of `entry` (what [`map_grant`]
    /// (Self::map_grant) installed), else [`PvMmError::GrantMismatch`]. With `new_va`
    /// (`GNTTABOP_unmap_and_replace`, virtual addresses only), the entry that maps `new_va` is
    /// moved there instead of leaving it empty, with its references, and its own slot is left
    /// empty. Every check comes first: a refused call changes nothing (Xen, when the grant
    /// entry no longer matches, has already taken the entry at `new_va` and drops it).
    pub fn unmap_grant(
        &mut self,
        caller: DomainRef,
        vcpu: &VcpuMm,
        at: GrantPte,
        entry: u64,
        new_va: Option<u64>,
    ) -> Outcome<Result<(), PvMmError>> {
        let result = self.domain(caller).map(DomainMm::ctx).and_then(|ctx| {
            let source = match (new_va, at) {
                (None, _) => None,
                (Some(_), GrantPte::Machine(_)) => return Err(PvMmError::BadArgument),
                (Some(va), GrantPte::Va(_)) => {
                    Some(self.grant_slot(&ctx, vcpu, GrantPte::Va(va))?)
                }
            };
            let (table, slot) = self.grant_slot(&ctx, vcpu, at)?;
            let old = self.store.read_entry(table, slot);
            if entry_mfn(old) != entry_mfn(entry) || (old ^ entry) & (PRESENT | RW) != 0 {
                return Err(PvMmError::GrantMismatch);
            }
            // The entry moved keeps its references; the grant's are dropped. Replacing the
            // grant by itself is a plain unmap.
            let moved = match source {
                Some(s) if s != (table, slot) => {
                    let e = self.store.read_entry(s.0, s.1);
                    self.store.write_entry(s.0, s.1, 0);
                    e
                }
                _ => 0,
            };
            self.store.write_entry(table, slot, moved);
            self.put_entry(Level::L1, old);
            Ok(())
        });
        self.outcome(result)
    }

    /// The validated L1 table of the caller and the slot `at` names.
    fn grant_slot(
        &self,
        ctx: &Ctx,
        vcpu: &VcpuMm,
        at: GrantPte,
    ) -> Result<(Mfn, usize), PvMmError> {
        let (table, slot) = match at {
            GrantPte::Va(va) => {
                if vcpu.domain() != ctx.pt_owner {
                    return Err(PvMmError::NotPermitted);
                }
                vcpu.kernel_table()
                    .and_then(|l4| self.walk(l4, va))
                    .ok_or(PvMmError::NoL1Table { va })?
            }
            GrantPte::Machine(addr) if addr.is_multiple_of(8) => {
                (Mfn(addr >> 12), (addr & 0xfff) as usize / 8)
            }
            GrantPte::Machine(_) => return Err(PvMmError::BadArgument),
        };
        let f = self.frame(table).ok_or(PvMmError::GrantMismatch)?;
        if f.owner != ctx.pt_owner || f.ty != PageType::L1 || f.type_count == 0 || !f.is_validated()
        {
            return Err(PvMmError::GrantMismatch);
        }
        Ok((table, slot))
    }
}
