//! Reference and type counting, recursive validation, and the checked update of one entry: the
//! code that keeps the invariants stated in the module comment of `mm::pv`. Every function here
//! either succeeds or leaves every count as it found it.

use super::pte::{
    self, RW, Rules, SUPERPAGE_FRAMES, adjust, check_flags, entry_mfn, is_guest_slot, is_present,
    is_superpage, only_whitelisted_change,
};
use super::{
    DomId, ENTRIES, FrameInfo, FramePool, FrameStore, FrameTable, Level, M2pTable, PageType, Pfn,
    PvMmError,
};
use crate::mm::Mfn;

/// On whose behalf entries are checked.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ctx {
    /// Owner of the page tables: L2–L4 entries and the L1 tables' own frames must be its.
    pub pt_owner: DomId,
    /// What the page-table owner is allowed.
    pub rules: Rules,
    /// The domain whose frames L1 entries map (Xen's FD: the page-table owner unless a
    /// privileged caller named a foreign domain, `DOMID_XEN` or `DOMID_IO`).
    pub pg_owner: DomId,
    /// Whether the foreign domain has I/O access.
    pub pg_iomem: bool,
}

impl Ctx {
    /// Entries a domain installs in its own tables, mapping its own frames.
    pub fn own(owner: DomId, rules: Rules) -> Self {
        Self {
            pt_owner: owner,
            rules,
            pg_owner: owner,
            pg_iomem: rules.iomem,
        }
    }
}

/// The slots below `end` of a table of `level` that are the guest's (all but L4 slots 256–271).
fn guest_slots(level: Level, end: usize) -> impl DoubleEndedIterator<Item = usize> {
    (0..end).filter(move |&slot| is_guest_slot(level, slot))
}

impl<S: FrameStore, P: FramePool, M: M2pTable, const D: usize> FrameTable<S, P, M, D> {
    /// Takes a general reference on `mfn`, which must be allocated to `owner`.
    pub(super) fn get_ref(&mut self, mfn: Mfn, owner: DomId) -> bool {
        if !self.in_ram(mfn) {
            return false;
        }
        let f = self.store.info_mut(mfn);
        if f.owner != owner || f.count == 0 {
            return false;
        }
        match f.count.checked_add(1) {
            Some(count) => {
                f.count = count;
                true
            }
            None => false,
        }
    }

    /// Drops a general reference; the last one returns the frame to the pool.
    pub(super) fn put_ref(&mut self, mfn: Mfn) {
        let f = self.store.info_mut(mfn);
        debug_assert!(f.count > 0, "{mfn}: reference dropped below zero");
        if f.count == 0 {
            // Leaking the frame is better than freeing it twice.
            return;
        }
        f.count -= 1;
        if f.count == 0 {
            self.release(mfn);
        }
    }

    /// Returns a frame whose last reference went to the pool: scrubbed, unowned, uncharged.
    fn release(&mut self, mfn: Mfn) {
        let f = *self.store.info(mfn);
        debug_assert!(
            f.type_count == 0 && !f.is_pinned() && !f.is_allocated() && !f.is_shared(),
            "{mfn}: freed while in use: {f:?}"
        );
        if f.owner.is_reserved() || f.is_shared() {
            // Hypervisor frames are never freed through here.
            debug_assert!(false, "{mfn}: hypervisor frame lost its last reference");
            return;
        }
        *self.store.info_mut(mfn) = FrameInfo::FREE;
        self.store.zero_frame(mfn);
        self.m2p.set(mfn, Pfn::INVALID);
        self.pool.free(mfn);
        self.flush_pending = true;
        self.uncharge(f.owner);
    }

    /// Takes a reference to type `ty` on `mfn`, validating the contents if the type is new.
    /// The caller holds a general reference.
    pub(super) fn get_type(&mut self, mfn: Mfn, ty: PageType, ctx: &Ctx) -> Result<(), PvMmError> {
        debug_assert!(ty != PageType::None);
        let f = *self.store.info(mfn);
        if f.type_count > 0 {
            if f.ty != ty || !f.is_validated() {
                // A frame of another type, or (the same type) one being validated below us.
                return Err(PvMmError::TypeConflict {
                    mfn,
                    current: f.ty,
                    wanted: ty,
                });
            }
            let count = f
                .type_count
                .checked_add(1)
                .ok_or(PvMmError::CountOverflow { mfn })?;
            self.store.info_mut(mfn).type_count = count;
            return Ok(());
        }
        // Invariant 1: the type changes only here, with the type count at zero.
        let validated = if f.ty == ty {
            f.is_validated()
        } else {
            if f.ty != PageType::None {
                // Stale TLB entries may still write the frame, or walk through it.
                self.flush_pending = true;
            }
            ty == PageType::Writable
        };
        let rec = self.store.info_mut(mfn);
        rec.ty = ty;
        rec.type_count = 1;
        rec.set_validated(validated);
        if !validated {
            if let Err(e) = self.validate(mfn, ty, ctx) {
                // The type stays: a later change still flushes.
                self.store.info_mut(mfn).type_count = 0;
                return Err(e);
            }
            self.store.info_mut(mfn).set_validated(true);
        }
        self.debug_check(mfn);
        Ok(())
    }

    /// Drops a type reference; the last one of a page-table type devalidates the table,
    /// dropping the references its entries hold (recursively).
    pub(super) fn put_type(&mut self, mfn: Mfn) {
        let f = self.store.info_mut(mfn);
        debug_assert!(f.type_count > 0, "{mfn}: type reference dropped below zero");
        if f.type_count == 0 {
            return;
        }
        f.type_count -= 1;
        if f.type_count == 0
            && f.is_validated()
            && let Some(level) = f.ty.level()
        {
            f.set_validated(false);
            self.put_entries(mfn, level, ENTRIES);
        }
    }

    /// Takes a general reference and a type reference on one of `ctx.pt_owner`'s frames.
    pub(super) fn get_ref_and_type(
        &mut self,
        mfn: Mfn,
        ty: PageType,
        ctx: &Ctx,
    ) -> Result<(), PvMmError> {
        if !self.get_ref(mfn, ctx.pt_owner) {
            return Err(PvMmError::BadReference { mfn });
        }
        self.get_type(mfn, ty, ctx)
            .inspect_err(|_| self.put_ref(mfn))
    }

    /// Drops what [`get_ref_and_type`](Self::get_ref_and_type) took.
    pub(super) fn put_ref_and_type(&mut self, mfn: Mfn) {
        self.put_type(mfn);
        self.put_ref(mfn);
    }

    /// Checks the contents of `mfn` for type `ty` (invariant 4), taking the references its
    /// entries need.
    fn validate(&mut self, mfn: Mfn, ty: PageType, ctx: &Ctx) -> Result<(), PvMmError> {
        // A table's entries are the table owner's: foreign mappings come only through updates.
        let own = Ctx::own(ctx.pt_owner, ctx.rules);
        match ty.level() {
            Some(level) => self.validate_table(mfn, level, &own),
            None if ty == PageType::SegDesc => self.validate_descriptors(mfn),
            None => Ok(()),
        }
    }

    fn validate_table(&mut self, table: Mfn, level: Level, ctx: &Ctx) -> Result<(), PvMmError> {
        for slot in guest_slots(level, ENTRIES) {
            let e = self.store.read_entry(table, slot);
            if !is_present(e) {
                continue;
            }
            if let Err(err) = self.get_entry(level, e, ctx) {
                self.put_entries(table, level, slot);
                return Err(err);
            }
            let adjusted = adjust(level, e);
            if adjusted != e {
                self.store.write_entry(table, slot, adjusted);
            }
        }
        if level == Level::L4 {
            self.store.fill_hypervisor_slots(table);
        }
        Ok(())
    }

    fn validate_descriptors(&mut self, mfn: Mfn) -> Result<(), PvMmError> {
        for index in 0..ENTRIES {
            let desc = self.store.read_entry(mfn, index);
            match pte::check_descriptor(desc) {
                None => return Err(PvMmError::BadDescriptor { mfn, index }),
                Some(fixed) if fixed != desc => self.store.write_entry(mfn, index, fixed),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Drops the references held by the guest entries in slots `0..end` of a validated table.
    fn put_entries(&mut self, table: Mfn, level: Level, end: usize) {
        for slot in guest_slots(level, end).rev() {
            let e = self.store.read_entry(table, slot);
            self.put_entry(level, e);
        }
    }

    /// Takes the references a present entry of a table of `level` needs.
    fn get_entry(&mut self, level: Level, e: u64, ctx: &Ctx) -> Result<(), PvMmError> {
        check_flags(level, e, ctx.rules)?;
        match level {
            Level::L1 => self.get_l1_entry(e, ctx),
            _ if is_superpage(level, e) => self.get_superpage(e, ctx),
            _ => self.get_ref_and_type(entry_mfn(e), level.entry_type(), ctx),
        }
    }

    /// Whether `mfn` is I/O memory: outside RAM or owned by `DOMID_IO`. Never reference counted.
    pub(super) fn is_io(&self, mfn: Mfn) -> bool {
        !self.in_ram(mfn) || self.store.info(mfn).owner == DomId::IO
    }

    fn get_l1_entry(&mut self, e: u64, ctx: &Ctx) -> Result<(), PvMmError> {
        let mfn = entry_mfn(e);
        if self.is_io(mfn) {
            // Every address bit set is Xen's invalid frame, refused as a bad argument.
            if mfn.0 == ALL_ONES_FRAME {
                return Err(PvMmError::BadArgument);
            }
            let foreign_ok = ctx.pg_owner == ctx.pt_owner || ctx.pg_owner == DomId::IO;
            return if ctx.rules.iomem
                && (foreign_ok || ctx.pg_iomem)
                && self.store.io_permitted(mfn)
            {
                Ok(())
            } else {
                Err(PvMmError::IoMemory { mfn })
            };
        }
        if !self.get_ref(mfn, ctx.pg_owner) {
            return Err(PvMmError::NotMappable { mfn });
        }
        if e & RW != 0 && self.get_type(mfn, PageType::Writable, ctx).is_err() {
            self.put_ref(mfn);
            return Err(PvMmError::WritableConflict { mfn });
        }
        Ok(())
    }

    fn get_superpage(&mut self, e: u64, ctx: &Ctx) -> Result<(), PvMmError> {
        let base = entry_mfn(e);
        if !base.0.is_multiple_of(SUPERPAGE_FRAMES) {
            return Err(PvMmError::Misaligned { mfn: base });
        }
        for i in 0..SUPERPAGE_FRAMES {
            let mfn = Mfn(base.0 + i);
            let taken = if !self.get_ref(mfn, ctx.pt_owner) {
                Err(PvMmError::BadReference { mfn })
            } else if e & RW != 0 {
                self.get_type(mfn, PageType::Writable, ctx)
                    .inspect_err(|_| self.put_ref(mfn))
            } else {
                Ok(())
            };
            if let Err(err) = taken {
                self.put_superpage_frames(base, i, e & RW != 0);
                return Err(err);
            }
        }
        Ok(())
    }

    fn put_superpage_frames(&mut self, base: Mfn, frames: u64, writable: bool) {
        for i in (0..frames).rev() {
            let mfn = Mfn(base.0 + i);
            if writable {
                self.put_type(mfn);
            }
            self.put_ref(mfn);
        }
    }

    /// Drops the references a (present or not) entry of a validated table of `level` holds.
    pub(super) fn put_entry(&mut self, level: Level, e: u64) {
        if !is_present(e) {
            return;
        }
        let mfn = entry_mfn(e);
        match level {
            Level::L1 if self.is_io(mfn) => {}
            Level::L1 if e & RW != 0 => self.put_ref_and_type(mfn),
            Level::L1 => self.put_ref(mfn),
            _ if is_superpage(level, e) => {
                self.put_superpage_frames(mfn, SUPERPAGE_FRAMES, e & RW != 0)
            }
            _ => self.put_ref_and_type(mfn),
        }
    }

    /// Replaces entry `slot` of the validated table `table` (of `level`) with `new`: checks the
    /// new entry, takes its references, writes the adjusted value, then drops the references of
    /// the old one (Xen's `mod_l*_entry`). With `preserve_ad`, the accessed and dirty bits of the
    /// old entry are kept.
    pub(super) fn mod_entry(
        &mut self,
        table: Mfn,
        level: Level,
        slot: usize,
        new: u64,
        ctx: &Ctx,
        preserve_ad: bool,
    ) -> Result<(), PvMmError> {
        if !is_guest_slot(level, slot) {
            return Err(PvMmError::HypervisorSlot { slot });
        }
        debug_assert_eq!(self.store.info(table).ty, level.table_type());
        let old = self.store.read_entry(table, slot);
        let new = if preserve_ad {
            new | (old & (pte::ACCESSED | pte::DIRTY))
        } else {
            new
        };
        if is_present(new) {
            // Same frame and the same checked flags: the old entry's references carry over.
            let fast = only_whitelisted_change(old, new);
            if fast {
                check_flags(level, new, ctx.rules)?;
            } else {
                self.get_entry(level, new, ctx)?;
            }
            self.store.write_entry(table, slot, adjust(level, new));
            if fast {
                return Ok(());
            }
        } else {
            self.store.write_entry(table, slot, new);
        }
        self.put_entry(level, old);
        Ok(())
    }

    /// Cheap consistency checks of one record, in debug builds.
    pub(super) fn debug_check(&self, mfn: Mfn) {
        if cfg!(debug_assertions) {
            let f = self.store.info(mfn);
            debug_assert!(f.type_count <= f.count, "{mfn}: {f:?}");
            debug_assert!(
                !f.is_pinned() || (f.type_count > 0 && f.ty.is_page_table()),
                "{mfn}: pinned without a page-table type: {f:?}"
            );
            debug_assert!(
                f.count > 0 || f.owner == DomId::IO || (f.owner().is_none() && f.type_count == 0),
                "{mfn}: owned without references: {f:?}"
            );
            debug_assert!(
                !(f.ty.is_page_table() && f.type_count > 0) || f.is_validated(),
                "{mfn}: page table in use but not validated: {f:?}"
            );
        }
    }
}

/// The frame number with every bit of a page-table entry's address field set.
const ALL_ONES_FRAME: u64 = (1 << 40) - 1;
