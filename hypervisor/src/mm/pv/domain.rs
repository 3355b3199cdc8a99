//! Domains as the PV MMU sees them: their memory accounting, their vCPUs' base pointers, and the
//! operations on a domain's memory as a whole (Xen's `XENMEM_increase_reservation`,
//! `XENMEM_decrease_reservation`, `XENMEM_populate_physmap`, and domain destruction).

use super::pte::Rules;
use super::refs::Ctx;
use super::types::mfn_add;
use super::{
    DomId, ExtentList, FrameInfo, FramePool, FrameStore, FrameTable, M2pTable, Outcome, PageType,
    Pfn, PvMmError,
};
use crate::mm::Mfn;

/// Largest extent order a reservation operation accepts (Xen's default `memop-max-order` for
/// domUs: 2 MiB extents). Larger orders complete no extent.
pub const MAX_EXTENT_ORDER: u32 = 9;

/// What a domain is, for its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// Most frames the domain may own (Xen's `max_pages`).
    pub max_pages: u64,
    /// dom0: may use the foreign forms of the operations on other domains.
    pub privileged: bool,
    /// The domain may map 2 MiB superpages with PSE in L2 entries.
    pub superpages: bool,
    /// The domain may map I/O memory and set cache attributes in L1 entries.
    pub iomem_access: bool,
}

/// A domain's memory state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainMm {
    id: DomId,
    config: DomainConfig,
    tot_pages: u64,
    dying: bool,
}

impl DomainMm {
    /// The domain's ID.
    pub fn id(&self) -> DomId {
        self.id
    }

    /// Its configuration.
    pub fn config(&self) -> &DomainConfig {
        &self.config
    }

    /// Frames it owns (Xen's `tot_pages`), including frames it released that others still map.
    pub fn tot_pages(&self) -> u64 {
        self.tot_pages
    }

    /// Whether it is being destroyed.
    pub fn is_dying(&self) -> bool {
        self.dying
    }

    pub(super) fn rules(&self) -> Rules {
        Rules {
            superpages: self.config.superpages,
            iomem: self.config.iomem_access,
        }
    }

    pub(super) fn ctx(&self) -> Ctx {
        Ctx::own(self.id, self.rules())
    }
}

/// A handle on a domain in a [`FrameTable`], kept by the hypervisor's domain structure so that
/// hot paths find the domain without a search. A handle outlived by its domain is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DomainRef {
    slot: u16,
    id: DomId,
}

impl DomainRef {
    /// The domain's ID.
    pub fn id(self) -> DomId {
        self.id
    }
}

/// A vCPU's page-table state: its base pointers (each holds a general and an `L4` type
/// reference) and its LDT. Changed only through the PV MMU operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuMm {
    domain: DomId,
    kernel_table: Option<Mfn>,
    user_table: Option<Mfn>,
    ldt_base: u64,
    ldt_entries: u32,
}

impl VcpuMm {
    /// A vCPU of `domain` with no page tables yet.
    pub fn new(domain: DomainRef) -> Self {
        Self {
            domain: domain.id,
            kernel_table: None,
            user_table: None,
            ldt_base: 0,
            ldt_entries: 0,
        }
    }

    /// The domain it belongs to.
    pub fn domain(&self) -> DomId {
        self.domain
    }

    /// The L4 loaded in guest kernel mode (Xen's `guest_table`).
    pub fn kernel_table(&self) -> Option<Mfn> {
        self.kernel_table
    }

    /// The L4 loaded in guest user mode (Xen's `guest_table_user`).
    pub fn user_table(&self) -> Option<Mfn> {
        self.user_table
    }

    /// The LDT's guest virtual address and its number of entries (`MMUEXT_SET_LDT`).
    pub fn ldt(&self) -> (u64, u32) {
        (self.ldt_base, self.ldt_entries)
    }

    pub(super) fn set_kernel_table(&mut self, mfn: Mfn) -> Option<Mfn> {
        self.kernel_table.replace(mfn)
    }

    pub(super) fn set_user_table(&mut self, mfn: Option<Mfn>) -> Option<Mfn> {
        core::mem::replace(&mut self.user_table, mfn)
    }

    pub(super) fn set_ldt(&mut self, base: u64, entries: u32) {
        self.ldt_base = base;
        self.ldt_entries = entries;
    }
}

/// What destroying a domain left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestroyReport {
    /// Frames returned to the pool.
    pub freed: u64,
    /// Frames still referenced from elsewhere (other domains' foreign mappings, descriptor
    /// references the hypervisor holds); they return to the pool when the last reference goes,
    /// and the domain's accounting disappears with the last of them.
    pub still_referenced: u64,
}

/// Passes over the frame table a teardown makes: pins, then allocation references.
const TEARDOWN_PHASES: u8 = 2;

/// Where a domain's teardown stands between two passes of
/// [`FrameTable::destroy_domain_step`]: which phase, the next frame record to examine, and
/// what the domain owned when it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Teardown {
    started: bool,
    phase: u8,
    next: u64,
    before: u64,
}

impl Teardown {
    /// Whether the first pass has run (the domain is dying).
    pub fn started(&self) -> bool {
        self.started
    }

    fn report(&self, remaining: u64) -> DestroyReport {
        DestroyReport {
            freed: self.before.saturating_sub(remaining),
            still_referenced: remaining,
        }
    }
}

/// How much one pass of a teardown may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TeardownLimits {
    /// Frame records examined, at most.
    pub records: u64,
    /// Frames released (a pin or an allocation reference dropped), at most.
    pub releases: u64,
}

impl TeardownLimits {
    /// No limit: the whole teardown in one pass.
    pub const UNLIMITED: Self = Self {
        records: u64::MAX,
        releases: u64::MAX,
    };
}

impl<S: FrameStore, P: FramePool, M: M2pTable, const D: usize> FrameTable<S, P, M, D> {
    /// Creates the memory state of domain `id`.
    pub fn create_domain(
        &mut self,
        id: DomId,
        config: DomainConfig,
    ) -> Result<DomainRef, PvMmError> {
        if id.is_reserved() {
            return Err(PvMmError::BadArgument);
        }
        if self.slot_of(id).is_some() {
            return Err(PvMmError::DomainExists(id));
        }
        let slot = self
            .domains
            .iter()
            .position(Option::is_none)
            .ok_or(PvMmError::OutOfMemory)?;
        self.domains[slot] = Some(DomainMm {
            id,
            config,
            tot_pages: 0,
            dying: false,
        });
        Ok(DomainRef {
            slot: slot as u16,
            id,
        })
    }

    /// The handle of domain `id`, if it exists.
    pub fn lookup(&self, id: DomId) -> Option<DomainRef> {
        self.slot_of(id).map(|slot| DomainRef {
            slot: slot as u16,
            id,
        })
    }

    /// The memory state of a domain.
    pub fn domain(&self, d: DomainRef) -> Result<&DomainMm, PvMmError> {
        self.domains
            .get(usize::from(d.slot))
            .and_then(Option::as_ref)
            .filter(|dom| dom.id == d.id)
            .ok_or(PvMmError::NoSuchDomain(d.id))
    }

    fn domain_mut(&mut self, d: DomainRef) -> Result<&mut DomainMm, PvMmError> {
        self.domains
            .get_mut(usize::from(d.slot))
            .and_then(Option::as_mut)
            .filter(|dom| dom.id == d.id)
            .ok_or(PvMmError::NoSuchDomain(d.id))
    }

    /// Changes how many frames a domain may own (`XEN_DOMCTL_max_mem`). Frames it owns beyond
    /// the new limit stay; it cannot get more until it is below.
    pub fn set_max_pages(&mut self, d: DomainRef, max_pages: u64) -> Result<(), PvMmError> {
        self.domain_mut(d)?.config.max_pages = max_pages;
        Ok(())
    }

    /// `Ok` if `caller` is privileged (may act on other domains), else `NotPermitted`. The
    /// operations check this themselves where a guest argument names another domain.
    pub fn check_privileged(&self, caller: DomainRef) -> Result<(), PvMmError> {
        if self.domain(caller)?.config.privileged {
            Ok(())
        } else {
            Err(PvMmError::NotPermitted)
        }
    }

    /// Resolves the `domid` argument of a memory operation (`DOMID_SELF`, the caller's own ID,
    /// or, for a privileged caller, any domain): Xen's `rcu_lock_domain_by_any_id` plus the
    /// default XSM policy.
    pub fn resolve_target(&self, caller: DomainRef, domid: DomId) -> Result<DomainRef, PvMmError> {
        self.domain(caller)?;
        if domid == DomId::SELF || domid == caller.id {
            return Ok(caller);
        }
        let target = self.lookup(domid).ok_or(PvMmError::NoSuchDomain(domid))?;
        self.check_privileged(caller)?;
        Ok(target)
    }

    fn slot_of(&self, id: DomId) -> Option<usize> {
        self.domains
            .iter()
            .position(|d| d.as_ref().is_some_and(|d| d.id == id))
    }

    /// Takes a freed frame off its former owner's account; a dying domain's accounting goes with
    /// its last frame.
    pub(super) fn uncharge(&mut self, owner: DomId) {
        let Some(slot) = self.slot_of(owner) else {
            debug_assert!(false, "frame of unknown {owner} freed");
            return;
        };
        if let Some(dom) = &mut self.domains[slot] {
            dom.tot_pages = dom.tot_pages.saturating_sub(1);
            if dom.dying && dom.tot_pages == 0 {
                self.domains[slot] = None;
            }
        }
    }

    /// Takes `1 << order` scrubbed frames from the pool for `d`, within its maximum.
    fn assign_extent(&mut self, d: DomainRef, order: u32) -> Option<Mfn> {
        let dom = self.domain(d).ok()?;
        let frames = 1u64 << order;
        if dom.dying || dom.tot_pages.saturating_add(frames) > dom.config.max_pages {
            return None;
        }
        let base = self.pool.alloc(order)?;
        let all_free = (0..frames).all(|i| {
            mfn_add(base, i)
                .is_some_and(|m| self.in_ram(m) && *self.store.info(m) == FrameInfo::FREE)
        });
        if !all_free {
            // The pool handed out frames the table knows to be in use: keep them out of reach.
            debug_assert!(false, "pool returned a frame in use at {base}");
            return None;
        }
        for i in 0..frames {
            let mfn = Mfn(base.0 + i);
            self.store.zero_frame(mfn);
            *self.store.info_mut(mfn) = FrameInfo::allocated_to(d.id);
        }
        if let Ok(dom) = self.domain_mut(d) {
            dom.tot_pages += frames;
        }
        Some(base)
    }

    /// `XENMEM_increase_reservation`: gives `d` up to `nr_extents` extents of `1 << order`
    /// frames, writing each extent's first frame to `list`. Returns the extents done; it stops at
    /// the domain's maximum, when the pool runs dry, or when `list` cannot be written.
    pub fn increase_reservation(
        &mut self,
        d: DomainRef,
        nr_extents: u32,
        order: u32,
        list: &mut impl ExtentList,
    ) -> Outcome<u32> {
        self.each_extent(nr_extents, order, |ft, i| {
            let base = ft.assign_extent(d, order).ok_or(())?;
            list.write(i, base.0).map_err(drop)
        })
    }

    /// `XENMEM_populate_physmap`: for each guest frame number in `list`, gives `d` an extent of
    /// `1 << order` frames, records them in the M2P table at that guest frame number, and writes
    /// the first frame back to `list`. Returns the extents done.
    pub fn populate_physmap(
        &mut self,
        d: DomainRef,
        nr_extents: u32,
        order: u32,
        list: &mut impl ExtentList,
    ) -> Outcome<u32> {
        self.each_extent(nr_extents, order, |ft, i| {
            let gpfn = list.read(i).map_err(drop)?;
            let base = ft.assign_extent(d, order).ok_or(())?;
            for j in 0..1u64 << order {
                ft.m2p.set(Mfn(base.0 + j), Pfn(gpfn.wrapping_add(j)));
            }
            list.write(i, base.0).map_err(drop)
        })
    }

    /// `XENMEM_decrease_reservation`: for each frame number in `list`, releases `d`'s extent of
    /// `1 << order` frames there: unpins them and drops the allocation reference. A frame still
    /// mapped stays owned until its last mapping goes. Returns the extents done; it stops at the
    /// first frame that is not `d`'s.
    pub fn decrease_reservation(
        &mut self,
        d: DomainRef,
        nr_extents: u32,
        order: u32,
        list: &mut impl ExtentList,
    ) -> Outcome<u32> {
        self.each_extent(nr_extents, order, |ft, i| {
            let first = list.read(i).map_err(drop)?;
            for j in 0..1u64 << order {
                let mfn = first.checked_add(j).map(Mfn).ok_or(())?;
                ft.remove_frame(d.id, mfn).then_some(()).ok_or(())?;
            }
            Ok(())
        })
    }

    /// Runs `one` for extents `0..nr_extents` until it fails; returns how many succeeded.
    fn each_extent(
        &mut self,
        nr_extents: u32,
        order: u32,
        mut one: impl FnMut(&mut Self, u32) -> Result<(), ()>,
    ) -> Outcome<u32> {
        let done = if order > MAX_EXTENT_ORDER {
            0
        } else {
            (0..nr_extents)
                .find(|&i| one(self, i).is_err())
                .unwrap_or(nr_extents)
        };
        self.outcome(done)
    }

    /// Releases one of `owner`'s frames (Xen's `guest_remove_page`).
    fn remove_frame(&mut self, owner: DomId, mfn: Mfn) -> bool {
        if !self.in_ram(mfn) || self.store.info(mfn).is_shared() || !self.get_ref(mfn, owner) {
            return false;
        }
        let f = *self.store.info(mfn);
        if f.is_pinned() {
            self.store.info_mut(mfn).set_pinned(false);
            self.put_ref_and_type(mfn);
        }
        if f.is_allocated() {
            self.store.info_mut(mfn).set_allocated(false);
            self.put_ref(mfn);
        }
        self.put_ref(mfn);
        true
    }

    /// Destroys domain `d` in one go: [`destroy_domain_step`](Self::destroy_domain_step)
    /// without limits. `vcpus` are all its vCPUs.
    pub fn destroy_domain(
        &mut self,
        d: DomainRef,
        vcpus: &mut [VcpuMm],
    ) -> Outcome<Result<DestroyReport, PvMmError>> {
        let mut teardown = Teardown::default();
        let result = self
            .teardown_step(d, vcpus, &mut teardown, TeardownLimits::UNLIMITED)
            .and_then(|done| done.ok_or(PvMmError::BadArgument));
        self.outcome(result)
    }

    /// One bounded pass of destroying domain `d` (Xen's `domain_relinquish_resources`, which
    /// `XEN_DOMCTL_destroydomain` continues until it is done). The first pass marks the domain
    /// dying (it gets no new frames and pins nothing from then on) and drops its vCPUs' base
    /// pointers and LDTs; then each pass examines at most `limits.records` frame records and
    /// releases at most `limits.releases` frames, resuming where `teardown` says the last one
    /// stopped: first every pin is dropped (which devalidates every table, since linear page
    /// tables are refused), then every allocation reference, so that every frame nobody else
    /// references returns to the pool. Returns `Some(report)` when the domain is gone, `None`
    /// when another pass is needed. `vcpus` are all its vCPUs; `teardown` starts as
    /// [`Teardown::default`] and must be passed again unchanged to each later pass.
    pub fn destroy_domain_step(
        &mut self,
        d: DomainRef,
        vcpus: &mut [VcpuMm],
        teardown: &mut Teardown,
        limits: TeardownLimits,
    ) -> Outcome<Result<Option<DestroyReport>, PvMmError>> {
        let result = self.teardown_step(d, vcpus, teardown, limits);
        self.outcome(result)
    }

    fn teardown_step(
        &mut self,
        d: DomainRef,
        vcpus: &mut [VcpuMm],
        t: &mut Teardown,
        limits: TeardownLimits,
    ) -> Result<Option<DestroyReport>, PvMmError> {
        match self.domain_mut(d) {
            Ok(dom) if !t.started => {
                dom.dying = true;
                t.before = dom.tot_pages;
                t.started = true;
                for vcpu in vcpus.iter_mut().filter(|v| v.domain == d.id) {
                    for mfn in [vcpu.kernel_table.take(), vcpu.user_table.take()]
                        .into_iter()
                        .flatten()
                    {
                        self.put_ref_and_type(mfn);
                    }
                    vcpu.set_ldt(0, 0);
                }
            }
            Ok(_) => {}
            // Its accounting went with its last frame (`uncharge`): nothing is left to do.
            Err(_) if t.started => return Ok(Some(t.report(0))),
            Err(e) => return Err(e),
        }
        let limit = self.store.frame_limit();
        let (mut records, mut releases) = (0u64, 0u64);
        while t.phase < TEARDOWN_PHASES {
            let drop_pins = t.phase == 0;
            while t.next < limit {
                if records >= limits.records || releases >= limits.releases {
                    return Ok(None);
                }
                let mfn = Mfn(t.next);
                t.next += 1;
                records += 1;
                let f = *self.store.info(mfn);
                if f.owner != d.id {
                    continue;
                }
                if drop_pins && f.is_pinned() {
                    self.store.info_mut(mfn).set_pinned(false);
                    self.put_ref_and_type(mfn);
                    releases += 1;
                } else if !drop_pins && f.is_allocated() {
                    self.store.info_mut(mfn).set_allocated(false);
                    self.put_ref(mfn);
                    releases += 1;
                }
            }
            t.phase += 1;
            t.next = 0;
        }
        // The accounting goes with the last frame (`uncharge`), or now if there was none.
        let remaining = self.domain(d).map_or(0, |dom| dom.tot_pages);
        if remaining == 0 && self.domain(d).is_ok() {
            self.domains[usize::from(d.slot)] = None;
        }
        Ok(Some(t.report(remaining)))
    }

    /// Shares a hypervisor frame (not in the pool, record free) with `owner`, a domain or
    /// [`DomId::XEN`] (mappable by a privileged domain through the foreign form): Xen's
    /// `share_xen_page_with_guest`. The share holds a general and a type reference, so the
    /// frame can never become a page table: writable shares have type `Writable`, read-only
    /// ones type `None`, which refuses writable mappings. Not counted in the owner's pages.
    pub fn share_hypervisor_frame(
        &mut self,
        mfn: Mfn,
        owner: DomId,
        writable: bool,
    ) -> Result<(), PvMmError> {
        if !self.in_ram(mfn) || *self.store.info(mfn) != FrameInfo::FREE {
            return Err(PvMmError::BadReference { mfn });
        }
        if owner != DomId::XEN && self.slot_of(owner).is_none() {
            return Err(PvMmError::NoSuchDomain(owner));
        }
        let f = self.store.info_mut(mfn);
        *f = FrameInfo {
            count: 1,
            type_count: 1,
            owner,
            ty: if writable {
                PageType::Writable
            } else {
                PageType::None
            },
            flags: 0,
        };
        f.set_validated(true);
        f.set_shared(true);
        self.m2p.set(mfn, Pfn::INVALID);
        Ok(())
    }

    /// Takes back a shared frame once nothing maps it; its record is free again and the frame
    /// is the hypervisor's (it does not go to the pool).
    pub fn unshare_hypervisor_frame(&mut self, mfn: Mfn) -> Result<(), PvMmError> {
        let f = self.frame(mfn).ok_or(PvMmError::BadReference { mfn })?;
        if !f.is_shared() {
            return Err(PvMmError::BadReference { mfn });
        }
        if f.count != 1 {
            return Err(PvMmError::TypeConflict {
                mfn,
                current: f.ty,
                wanted: PageType::None,
            });
        }
        *self.store.info_mut(mfn) = FrameInfo::FREE;
        Ok(())
    }

    /// Marks a frame as I/O memory (owned by `DOMID_IO`), mappable by domains with I/O access
    /// and never reference counted. The record must be free and the frame outside the pool.
    pub fn mark_io_frame(&mut self, mfn: Mfn) -> Result<(), PvMmError> {
        if !self.in_ram(mfn) || *self.store.info(mfn) != FrameInfo::FREE {
            return Err(PvMmError::BadReference { mfn });
        }
        self.store.info_mut(mfn).owner = DomId::IO;
        Ok(())
    }

    /// Takes a general and a type reference on one of `d`'s frames, for the hypervisor's own use
    /// (the GDT frames of `set_gdt` take `SegDesc`). Release with
    /// [`put_page_and_type`](Self::put_page_and_type).
    pub fn get_page_and_type(
        &mut self,
        d: DomainRef,
        mfn: Mfn,
        ty: PageType,
    ) -> Outcome<Result<(), PvMmError>> {
        let result = if ty == PageType::None {
            Err(PvMmError::BadArgument)
        } else {
            self.domain(d)
                .map(DomainMm::ctx)
                .and_then(|ctx| self.get_ref_and_type(mfn, ty, &ctx))
        };
        self.outcome(result)
    }

    /// Takes a general reference on a frame of domain `owner`, for the hypervisor's own
    /// access to it (a grant copy reading it). Release with [`put_page`](Self::put_page).
    pub fn get_page(&mut self, owner: DomId, mfn: Mfn) -> bool {
        self.get_ref(mfn, owner)
    }

    /// Drops a reference taken with [`get_page`](Self::get_page).
    pub fn put_page(&mut self, mfn: Mfn) -> Outcome<()> {
        if self.in_ram(mfn) {
            self.put_ref(mfn);
        }
        self.outcome(())
    }

    /// Drops a reference pair taken with [`get_page_and_type`](Self::get_page_and_type).
    pub fn put_page_and_type(&mut self, mfn: Mfn) -> Outcome<()> {
        if self.in_ram(mfn) {
            self.put_ref_and_type(mfn);
        }
        self.outcome(())
    }
}
