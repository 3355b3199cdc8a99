//! `GNTTABOP_map_grant_ref` and `GNTTABOP_unmap_grant_ref` for PV domains: a domain maps a
//! frame another domain (or itself) granted it into its own page tables, and unmaps it.
//!
//! # State and invariants
//! - The **maptrack** of the mapping domain ([`Maptrack`], at most [`MAX_MAPTRACK`] entries)
//!   records each mapping under the handle given to the guest: the granter, the reference, the
//!   frame and the `GNTMAP_*` flags still in force. A handle is reused only once freed.
//! - The **active grants** of the granting domain ([`ActiveGrants`]) count, per reference in
//!   use, the mappings of it (`readers` read-only, `writers` writable) and which domain holds
//!   them: while any exist the shared entry keeps `GTF_reading` (and `GTF_writing` while a
//!   writable one exists), so the granter can tell the frame is in use, and no other domain
//!   may map or copy through the reference. Counts change only with a maptrack entry.
//! - The **page references** of a host mapping belong to its L1 entry (the PV MMU takes them
//!   when the entry is installed and drops them when it is removed, by the unmap or by the
//!   guest overwriting the entry: the frame can never be freed while mapped). A device-only
//!   mapping (`GNTMAP_device_map` alone) holds its frame through [`Host::get_frame`].
//!
//! Checks follow Xen 4.17's `map_grant_ref` and `unmap_common`, each failure a `GNTST_*`
//! status in the op: no host or device flag (`bad_gntref`), unknown domain (`bad_domain`,
//! `DOMID_SELF` included: the granter is named by its id), no
//! free handle (`no_space`), reference beyond the table (`bad_gntref`), entry not granting
//! the caller or read-only for a writable map, in use by another domain or already used
//! [`PIN_LIMIT`] times the same way (`general_error`),
//! frame not the granter's (`bad_page`), no L1 entry where asked or a frame that cannot be
//! mapped writable (`general_error`); unknown handle (`bad_handle`), device address not the
//! mapping's (`bad_dev_addr`), entry no longer mapping the frame (`general_error`).

use super::grant_entry::{Entry, locate, place, view};
use super::{Ctx, FrameRefused, GrantPteOp, HcResult, Host};
use crate::mm::pv::GrantPte;
use crate::pv::guest_mem::{GuestFault, GuestMemory, check_guest_range};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::AtomicU32;
use guest_abi::grant_table::{
    GNTMAP_APPLICATION_MAP, GNTMAP_CONTAINS_PTE, GNTMAP_DEVICE_MAP, GNTMAP_HOST_MAP,
    GNTMAP_READONLY, GntStatus, GnttabMapGrantRef, GnttabUnmapAndReplace, GnttabUnmapGrantRef,
};
use guest_abi::{DomId, XenError};

/// Most grant mappings one domain holds at once.
pub const MAX_MAPTRACK: usize = 4096;
/// Most read-only (or writable) uses of one grant at once: Xen's 8-bit pin counters refuse a
/// use once their top bit is set.
pub const PIN_LIMIT: u32 = 128;

/// PTE bits of a grant mapping (Xen's `grant_to_pte_flags`): present, accessed, dirty, NX.
const PTE_BASE: u64 = 1 | (1 << 5) | (1 << 6) | (1 << 63);
const PTE_RW: u64 = 1 << 1;
const PTE_USER: u64 = 1 << 2;

/// One mapping, as its maptrack entry records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The granting domain.
    pub granter: DomId,
    /// The grant reference.
    pub gref: u32,
    /// The granted frame.
    pub frame: u64,
    /// `GNTMAP_*` as mapped; `host_map` and `device_map` cleared as each is unmapped.
    pub flags: u32,
}

impl Mapping {
    fn readonly(&self) -> bool {
        self.flags & GNTMAP_READONLY != 0
    }

    /// Whether it holds a reference on its frame apart from any L1 entry (a device mapping
    /// not yet unmapped): `(frame, writable)`, to drop when the mapping is forgotten.
    pub fn frame_reference(&self) -> Option<(u64, bool)> {
        (self.flags & GNTMAP_DEVICE_MAP != 0).then_some((self.frame, !self.readonly()))
    }
}

/// A domain's mappings of grants, by handle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Maptrack {
    entries: Vec<Option<Mapping>>,
    free: Vec<u32>,
}

impl Maptrack {
    fn insert(&mut self, m: Mapping) -> Option<u32> {
        if let Some(h) = self.free.pop() {
            self.entries[h as usize] = Some(m);
            return Some(h);
        }
        if self.entries.len() >= MAX_MAPTRACK {
            return None;
        }
        self.entries.push(Some(m));
        Some(self.entries.len() as u32 - 1)
    }

    /// The mapping under `handle`.
    pub fn get(&self, handle: u32) -> Option<Mapping> {
        self.entries.get(handle as usize).copied().flatten()
    }

    fn set(&mut self, handle: u32, m: Option<Mapping>) {
        if let Some(e) = self.entries.get_mut(handle as usize) {
            if e.is_some() && m.is_none() {
                self.free.push(handle);
            }
            *e = m;
        }
    }

    /// Every mapping, by handle order.
    pub fn iter(&self) -> impl Iterator<Item = Mapping> + '_ {
        self.entries.iter().flatten().copied()
    }

    /// Every mapping, emptying the table (the domain is going).
    pub fn take_all(&mut self) -> Vec<Mapping> {
        self.free.clear();
        self.entries.drain(..).flatten().collect()
    }

    /// How many mappings it holds.
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A grant reference in use by mappings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Active {
    /// The domain holding the mappings.
    pub mapper: DomId,
    /// The frame mapped.
    pub frame: u64,
    /// Read-only mappings.
    pub readers: u32,
    /// Writable mappings.
    pub writers: u32,
}

/// A granting domain's references in use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActiveGrants {
    refs: BTreeMap<u32, Active>,
}

impl Active {
    /// Whether `mapper` may take one more use of the grant, writable or not.
    pub fn admits(&self, mapper: DomId, writable: bool) -> bool {
        let used = if writable { self.writers } else { self.readers };
        self.mapper == mapper && used < PIN_LIMIT
    }
}

impl ActiveGrants {
    /// The mappings of reference `gref`, if any.
    pub fn get(&self, gref: u32) -> Option<Active> {
        self.refs.get(&gref).copied()
    }

    /// Whether no reference is in use.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// Whether a reference from `first` on is in use.
    pub fn in_use_beyond(&self, first: u32) -> bool {
        self.refs.range(first..).next().is_some()
    }
}

/// The grant-table frames and active grants of `dom` (the caller's own or another's).
pub(super) fn table<'c, M: GuestMemory, H: Host>(
    ctx: &'c mut Ctx<'_, M, H>,
    dom: DomId,
) -> Option<(&'c super::grant::GrantFrames, &'c mut ActiveGrants)> {
    if dom == ctx.domain.id {
        Some((&ctx.domain.grant_frames, &mut ctx.domain.grant_active))
    } else {
        ctx.host.foreign_grant_table(dom)
    }
}

/// Grant `gref` of `dom`, located in its table (either version), and its active state.
pub(super) fn entry<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    dom: DomId,
    gref: u32,
) -> Result<(Entry, Option<Active>), GntStatus> {
    let (frames, active) = table(ctx, dom).ok_or(GntStatus::BadDomain)?;
    let act = active.get(gref);
    let p = place(frames, gref)?;
    let e = view(p, |f, o| ctx.host.grant_word(f, o))?;
    Ok((e, act))
}

/// Settles an entry's in-use bits to what its mappings (`active`) need.
pub(super) fn settle(e: &Entry, active: Option<Active>) {
    let (readers, writers) = active.map_or((0, 0), |a| (a.readers, a.writers));
    e.settle_status(readers, writers);
}

/// `GNTTABOP_map_grant_ref(uop, count)`: each op's status, handle and bus address go back
/// into it; the batch continues later if it runs long.
pub fn map<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, args: &mut [u64; 5]) -> HcResult {
    batch::<GnttabMapGrantRef, M, H>(ctx, args, |ctx, op| match map_one(ctx, op) {
        Ok((handle, frame)) => {
            op.status = GntStatus::Okay.raw() as i16;
            op.handle = handle;
            if op.flags & GNTMAP_DEVICE_MAP != 0 {
                op.dev_bus_addr = frame << 12;
            }
        }
        Err(s) => op.status = s.raw() as i16,
    })
}

/// `GNTTABOP_unmap_grant_ref(uop, count)`.
pub fn unmap<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, args: &mut [u64; 5]) -> HcResult {
    batch::<GnttabUnmapGrantRef, M, H>(ctx, args, |ctx, op| {
        let u = Unmap {
            handle: op.handle,
            host_addr: op.host_addr,
            dev_bus_addr: op.dev_bus_addr,
            new_addr: None,
        };
        op.status = unmap_one(ctx, &u).err().unwrap_or(GntStatus::Okay).raw() as i16;
    })
}

/// Runs `one` on each op of a batch at `args[1]` of `args[2]` ops, writing each back;
/// between ops it may stop and continue later with the ops left.
fn batch<T, M, H>(
    ctx: &mut Ctx<'_, M, H>,
    args: &mut [u64; 5],
    mut one: impl FnMut(&mut Ctx<'_, M, H>, &mut T),
) -> HcResult
where
    T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable,
    M: GuestMemory,
    H: Host,
{
    each_op(ctx, args, |ctx, at, mut op: T| {
        one(ctx, &mut op);
        ctx.mem.write_obj(at, &op)
    })
}

/// Reads each op of a batch at `args[1]` of `args[2]` ops and hands it to `one` with its
/// guest address (where `one` writes back what the op returns); between ops it may stop and
/// make the guest continue later with `args` rewritten to the ops left (Xen's continuation).
pub(super) fn each_op<T, M, H>(
    ctx: &mut Ctx<'_, M, H>,
    args: &mut [u64; 5],
    mut one: impl FnMut(&mut Ctx<'_, M, H>, u64, T) -> Result<(), GuestFault>,
) -> HcResult
where
    T: zerocopy::FromBytes + zerocopy::IntoBytes,
    M: GuestMemory,
    H: Host,
{
    let size = size_of::<T>() as u64;
    let (uop, count) = (args[1], u64::from(args[2] as u32));
    check_guest_range(uop, (count * size) as usize)?;
    for i in 0..count {
        if i > 0 && ctx.host.preempt_check() {
            args[1] = uop + i * size;
            args[2] = count - i;
            return Err(XenError::Restart);
        }
        let at = uop + i * size;
        let op: T = ctx.mem.read_obj(at)?;
        one(ctx, at, op)?;
    }
    Ok(0)
}

/// The PTE a host mapping with `GNTMAP_*` `flags` of `frame` installs.
fn pte_of(frame: u64, flags: u32) -> u64 {
    let mut pte = (frame << 12) | PTE_BASE;
    if flags & GNTMAP_READONLY == 0 {
        pte |= PTE_RW;
    }
    if flags & GNTMAP_APPLICATION_MAP != 0 {
        pte |= PTE_USER;
    }
    pte
}

/// Where a host mapping's entry is, from its address and flags.
fn pte_at(host_addr: u64, flags: u32) -> GrantPte {
    if flags & GNTMAP_CONTAINS_PTE != 0 {
        GrantPte::Machine(host_addr)
    } else {
        GrantPte::Va(host_addr)
    }
}

fn map_one<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    op: &GnttabMapGrantRef,
) -> Result<(u32, u64), GntStatus> {
    if op.flags & (GNTMAP_HOST_MAP | GNTMAP_DEVICE_MAP) == 0 {
        return Err(GntStatus::BadGntref);
    }
    let me = ctx.domain.id;
    // Xen looks the granter up by id only: `DOMID_SELF` names no domain here.
    let granter = DomId(op.dom);
    if table(ctx, granter).is_none() {
        return Err(GntStatus::BadDomain);
    }
    if ctx.domain.maptrack.len() >= MAX_MAPTRACK {
        return Err(GntStatus::NoSpace);
    }
    let readonly = op.flags & GNTMAP_READONLY != 0;
    let (e, act) = entry(ctx, granter, op.ref_)?;
    if act.is_some_and(|a| !a.admits(me, !readonly)) {
        return Err(GntStatus::GeneralError);
    }
    let need_status = match act {
        None => true,
        Some(a) => !readonly && a.writers == 0,
    };
    if need_status {
        e.set_status(me, !readonly, true)?;
    }
    let frame = match act {
        Some(a) => a.frame,
        None => e.frame(),
    };
    if let Err(refused) = install(ctx, op, granter, frame, readonly) {
        settle(&e, act);
        return Err(match refused {
            FrameRefused::NotOwned => GntStatus::BadPage,
            FrameRefused::NotWritable => GntStatus::GeneralError,
        });
    }
    let mapping = Mapping {
        granter,
        gref: op.ref_,
        frame,
        flags: op.flags,
    };
    let Some(handle) = ctx.domain.maptrack.insert(mapping) else {
        // Checked above: the table had room.
        return Err(GntStatus::NoSpace);
    };
    if let Some((_, active)) = table(ctx, granter) {
        pin(active, &mapping, me);
    }
    Ok((handle, frame))
}

/// Takes what a mapping holds: a reference on the frame for a device mapping, the L1 entry
/// (with its references) for a host mapping; all or nothing.
fn install<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    op: &GnttabMapGrantRef,
    granter: DomId,
    frame: u64,
    readonly: bool,
) -> Result<(), FrameRefused> {
    let device = op.flags & GNTMAP_DEVICE_MAP != 0;
    if device {
        ctx.host.get_frame(granter, frame, !readonly)?;
    }
    if op.flags & GNTMAP_HOST_MAP != 0 {
        let at = pte_at(op.host_addr, op.flags);
        let pte = pte_of(frame, op.flags);
        let mapped = ctx
            .host
            .grant_pte(ctx.vcpu, at, GrantPteOp::Map { granter, pte });
        if mapped.is_err() && device {
            ctx.host.put_frame(frame, !readonly);
        }
        mapped?;
    }
    Ok(())
}

fn pin(active: &mut ActiveGrants, m: &Mapping, mapper: DomId) {
    let a = active.refs.entry(m.gref).or_insert(Active {
        mapper,
        frame: m.frame,
        readers: 0,
        writers: 0,
    });
    if m.readonly() {
        a.readers += 1;
    } else {
        a.writers += 1;
    }
}

/// Drops one mapping's pin on its grant; returns what is left of the active entry.
fn unpin(active: &mut ActiveGrants, m: &Mapping) -> Option<Active> {
    let a = active.refs.get_mut(&m.gref)?;
    if m.readonly() {
        a.readers = a.readers.saturating_sub(1);
    } else {
        a.writers = a.writers.saturating_sub(1);
    }
    let left = *a;
    if left.readers + left.writers == 0 {
        active.refs.remove(&m.gref);
        return None;
    }
    Some(left)
}

/// What an unmap names: the handle, the host address and bus address of the parts to undo,
/// and for `unmap_and_replace` the address whose mapping takes the grant's place.
struct Unmap {
    handle: u32,
    host_addr: u64,
    dev_bus_addr: u64,
    new_addr: Option<u64>,
}

/// `GNTTABOP_unmap_and_replace(uop, count)`.
pub fn unmap_and_replace<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    args: &mut [u64; 5],
) -> HcResult {
    batch::<GnttabUnmapAndReplace, M, H>(ctx, args, |ctx, op| {
        let u = Unmap {
            handle: op.handle,
            host_addr: op.host_addr,
            dev_bus_addr: 0,
            new_addr: (op.new_addr != 0).then_some(op.new_addr),
        };
        op.status = unmap_one(ctx, &u).err().unwrap_or(GntStatus::Okay).raw() as i16;
    })
}

fn unmap_one<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    op: &Unmap,
) -> Result<(), GntStatus> {
    let mut m = ctx
        .domain
        .maptrack
        .get(op.handle)
        .ok_or(GntStatus::BadHandle)?;
    let device = m.flags & GNTMAP_DEVICE_MAP != 0;
    if op.dev_bus_addr != 0 && device && op.dev_bus_addr != m.frame << 12 {
        return Err(GntStatus::BadDevAddr);
    }
    if op.host_addr != 0 && m.flags & GNTMAP_HOST_MAP != 0 {
        let at = pte_at(op.host_addr, m.flags);
        let pte = pte_of(m.frame, m.flags);
        let new_va = op.new_addr;
        ctx.host
            .grant_pte(ctx.vcpu, at, GrantPteOp::Unmap { pte, new_va })
            .map_err(|_| GntStatus::GeneralError)?;
        m.flags &= !GNTMAP_HOST_MAP;
    }
    if op.dev_bus_addr != 0 && device {
        ctx.host.put_frame(m.frame, !m.readonly());
        m.flags &= !GNTMAP_DEVICE_MAP;
    }
    if m.flags & (GNTMAP_HOST_MAP | GNTMAP_DEVICE_MAP) != 0 {
        ctx.domain.maptrack.set(op.handle, Some(m));
        return Ok(());
    }
    ctx.domain.maptrack.set(op.handle, None);
    release(ctx, &m);
    Ok(())
}

/// A dying domain's mapping `m` is forgotten: its pin on grant `m.gref` of the granter
/// (`frames`, `active`) is dropped and the entry's flags settled (`word` views a grant-table
/// frame's words). Its L1 entries go with the domain's page tables; a device reference
/// ([`Mapping::frame_reference`]) is the caller's to drop.
pub fn forget(
    frames: &super::grant::GrantFrames,
    active: &mut ActiveGrants,
    m: &Mapping,
    word: impl FnMut(u64, usize) -> Option<&'static AtomicU32>,
) {
    let left = unpin(active, m);
    if let Ok(e) = locate(frames, m.gref, word) {
        settle(&e, left);
    }
}

/// A mapping is gone: its pin on the grant is dropped and the entry's flags settled.
fn release<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, m: &Mapping) {
    let Some((_, active)) = table(ctx, m.granter) else {
        // The granter is gone; its table went with it.
        return;
    };
    let left = unpin(active, m);
    if let Ok((e, _)) = entry(ctx, m.granter, m.gref) {
        settle(&e, left);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fixture, call};
    use super::*;
    use core::sync::atomic::Ordering;
    use guest_abi::Hypercall;
    use guest_abi::grant_table::GtfFlags;
    use proptest::prelude::*;
    use std::vec::Vec;

    const FOREIGN_TABLE: u64 = 0x200;
    const OTHER: DomId = DomId(7);
    /// The other domain's data frames, and one it does not own.
    const X: u64 = 0x70;
    const Y: u64 = 0x71;
    const NOT_ITS: u64 = 0x72;
    const UOP: u64 = 0x2000;
    const VA: u64 = 0x40_0000;
    /// An address the fake has no L1 entry for.
    const NO_L1: u64 = 0x1000_0000;

    fn fixture() -> Fixture {
        let mut f = Fixture::new();
        let mut other = super::super::grant::GrantFrames::default();
        assert!(other.push(FOREIGN_TABLE));
        f.host.foreign.push((OTHER, other, ActiveGrants::default()));
        for frame in [X, Y] {
            f.host.owners.insert(frame, OTHER);
        }
        grant(&mut f, 8, GtfFlags::PERMIT_ACCESS, 0, X);
        grant(
            &mut f,
            9,
            GtfFlags::PERMIT_ACCESS | GtfFlags::READONLY,
            0,
            Y,
        );
        grant(&mut f, 10, GtfFlags::PERMIT_ACCESS, 3, X);
        grant(&mut f, 11, GtfFlags::PERMIT_ACCESS, 0, NOT_ITS);
        grant(
            &mut f,
            12,
            GtfFlags::PERMIT_ACCESS | GtfFlags::SUB_PAGE,
            0,
            X,
        );
        f
    }

    fn grant(f: &mut Fixture, gref: u32, flags: GtfFlags, domid: u16, frame: u64) {
        let t = f.host.frame(FOREIGN_TABLE);
        t[gref as usize * 2].store(
            u32::from(flags.bits()) | u32::from(domid) << 16,
            Ordering::SeqCst,
        );
        t[gref as usize * 2 + 1].store(frame as u32, Ordering::SeqCst);
    }

    fn in_use(f: &mut Fixture, gref: u32) -> GtfFlags {
        let w = f.host.frame(FOREIGN_TABLE)[gref as usize * 2].load(Ordering::SeqCst);
        GtfFlags::from_bits_retain(w as u16) & (GtfFlags::READING | GtfFlags::WRITING)
    }

    fn map_op(f: &mut Fixture, gref: u32, flags: u32, addr: u64) -> GnttabMapGrantRef {
        let op = GnttabMapGrantRef {
            host_addr: addr,
            flags,
            ref_: gref,
            dom: OTHER.0,
            status: 99,
            ..Default::default()
        };
        f.mem.write_obj(UOP, &op).unwrap();
        assert_eq!(call(f, Hypercall::GrantTableOp, [0, UOP, 1, 0, 0]), Ok(0));
        f.mem.read_obj(UOP).unwrap()
    }

    fn map_status(f: &mut Fixture, gref: u32, flags: u32, addr: u64) -> GntStatus {
        GntStatus::from_raw(i32::from(map_op(f, gref, flags, addr).status)).unwrap()
    }

    fn unmap_status(f: &mut Fixture, handle: u32, addr: u64, dev: u64) -> GntStatus {
        let op = GnttabUnmapGrantRef {
            host_addr: addr,
            dev_bus_addr: dev,
            handle,
            status: 99,
            ..Default::default()
        };
        f.mem.write_obj(UOP, &op).unwrap();
        assert_eq!(call(f, Hypercall::GrantTableOp, [1, UOP, 1, 0, 0]), Ok(0));
        let back: GnttabUnmapGrantRef = f.mem.read_obj(UOP).unwrap();
        GntStatus::from_raw(i32::from(back.status)).unwrap()
    }

    fn active(f: &Fixture) -> &ActiveGrants {
        &f.host.foreign[0].2
    }

    /// Nothing is mapped, held, pinned or marked in use.
    fn assert_clean(f: &mut Fixture) {
        assert!(f.host.held.is_empty(), "held: {:?}", f.host.held);
        assert!(f.host.grant_ptes.is_empty());
        assert!(f.domain.maptrack.is_empty());
        assert!(active(f).is_empty());
        for gref in 8..13 {
            assert_eq!(in_use(f, gref), GtfFlags::empty(), "gref {gref}");
        }
    }

    #[test]
    fn a_grant_is_mapped_marked_in_use_and_unmapped() {
        let mut f = fixture();
        let op = map_op(&mut f, 8, GNTMAP_HOST_MAP, VA);
        assert_eq!((op.status, op.handle), (0, 0));
        assert_eq!(in_use(&mut f, 8), GtfFlags::READING | GtfFlags::WRITING);
        assert_eq!(
            f.host.grant_ptes,
            [(GrantPte::Va(VA), X << 12 | PTE_BASE | PTE_RW)]
        );
        assert_eq!(f.host.held, [(X, true)]);
        // A second, read-only mapping of the same grant elsewhere, by PTE address.
        let ro = GNTMAP_HOST_MAP | GNTMAP_READONLY | GNTMAP_CONTAINS_PTE;
        let op2 = map_op(&mut f, 8, ro, 0x5008);
        assert_eq!((op2.status, op2.handle), (0, 1));
        assert_eq!(
            active(&f).get(8).map(|a| (a.readers, a.writers)),
            Some((1, 1))
        );
        // Unmapping at the wrong place fails and keeps the mapping.
        assert_eq!(
            unmap_status(&mut f, 0, VA + 4096, 0),
            GntStatus::GeneralError
        );
        assert_eq!(unmap_status(&mut f, 0, VA, 0), GntStatus::Okay);
        assert_eq!(
            in_use(&mut f, 8),
            GtfFlags::READING,
            "still mapped read-only"
        );
        assert_eq!(unmap_status(&mut f, 0, VA, 0), GntStatus::BadHandle);
        assert_eq!(unmap_status(&mut f, 1, 0x5008, 0), GntStatus::Okay);
        assert_clean(&mut f);
        // Handles are reused.
        assert_eq!(
            map_op(&mut f, 9, GNTMAP_HOST_MAP | GNTMAP_READONLY, VA).handle,
            1
        );
    }

    #[test]
    fn each_bad_map_gets_xens_status_and_leaves_nothing_behind() {
        let mut f = fixture();
        let host = GNTMAP_HOST_MAP;
        let cases = [
            (8, 0, VA, GntStatus::BadGntref),
            (9, host, VA, GntStatus::GeneralError), // read-only grant, writable map
            (10, host, VA, GntStatus::GeneralError), // granted to dom3
            (12, host, VA, GntStatus::GeneralError), // a sub-page grant
            (20, host, VA, GntStatus::GeneralError), // unused entry
            (512, host, VA, GntStatus::BadGntref),
            (11, host, VA, GntStatus::BadPage),
            (8, host, NO_L1, GntStatus::GeneralError),
        ];
        for (gref, flags, addr, want) in cases {
            assert_eq!(map_status(&mut f, gref, flags, addr), want, "gref {gref}");
            assert_clean(&mut f);
        }
        let mut op = GnttabMapGrantRef {
            flags: host,
            ref_: 8,
            dom: 9,
            host_addr: VA,
            ..Default::default()
        };
        f.mem.write_obj(UOP, &op).unwrap();
        let _ = call(&mut f, Hypercall::GrantTableOp, [0, UOP, 1, 0, 0]);
        op = f.mem.read_obj(UOP).unwrap();
        assert_eq!(op.status, GntStatus::BadDomain.raw() as i16);
        op.dom = DomId::SELF.0;
        f.mem.write_obj(UOP, &op).unwrap();
        let _ = call(&mut f, Hypercall::GrantTableOp, [0, UOP, 1, 0, 0]);
        op = f.mem.read_obj(UOP).unwrap();
        assert_eq!(op.status, GntStatus::BadDomain.raw() as i16, "DOMID_SELF");
        // In use by another domain.
        f.host.foreign[0].2.refs.insert(
            8,
            Active {
                mapper: DomId(5),
                frame: X,
                readers: 1,
                writers: 0,
            },
        );
        assert_eq!(map_status(&mut f, 8, host, VA), GntStatus::GeneralError);
        assert_eq!(unmap_status(&mut f, 77, VA, 0), GntStatus::BadHandle);
    }

    #[test]
    fn unmap_and_replace_takes_virtual_addresses_only() {
        let mut f = fixture();
        let h = map_op(&mut f, 8, GNTMAP_HOST_MAP, VA).handle;
        let h2 = map_op(
            &mut f,
            9,
            GNTMAP_HOST_MAP | GNTMAP_READONLY | GNTMAP_CONTAINS_PTE,
            0x5008,
        )
        .handle;
        let replace = |f: &mut Fixture, handle, host_addr, new_addr| {
            let op = GnttabUnmapAndReplace {
                host_addr,
                new_addr,
                handle,
                status: 99,
                ..Default::default()
            };
            f.mem.write_obj(UOP, &op).unwrap();
            assert_eq!(call(f, Hypercall::GrantTableOp, [7, UOP, 1, 0, 0]), Ok(0));
            let back: GnttabUnmapAndReplace = f.mem.read_obj(UOP).unwrap();
            GntStatus::from_raw(i32::from(back.status)).unwrap()
        };
        assert_eq!(
            replace(&mut f, h2, 0x5008, VA + 4096),
            GntStatus::GeneralError
        );
        assert_eq!(replace(&mut f, 99, VA, VA + 4096), GntStatus::BadHandle);
        assert_eq!(replace(&mut f, h, VA, VA + 4096), GntStatus::Okay);
        assert_eq!(replace(&mut f, h2, 0x5008, 0), GntStatus::Okay);
        assert_clean(&mut f);
    }

    #[test]
    fn device_mappings_hold_the_frame_and_give_its_bus_address() {
        let mut f = fixture();
        let op = map_op(&mut f, 8, GNTMAP_DEVICE_MAP, 0);
        assert_eq!((op.status, op.dev_bus_addr), (0, X << 12));
        assert_eq!(f.host.held, [(X, true)]);
        assert_eq!(unmap_status(&mut f, 0, 0, 0x1000), GntStatus::BadDevAddr);
        assert_eq!(unmap_status(&mut f, 0, 0, X << 12), GntStatus::Okay);
        assert_clean(&mut f);
    }

    #[test]
    fn one_grant_takes_at_most_pin_limit_uses_of_a_kind() {
        let mut f = fixture();
        let ro = GNTMAP_DEVICE_MAP | GNTMAP_READONLY;
        for _ in 0..PIN_LIMIT {
            assert_eq!(map_status(&mut f, 8, ro, 0), GntStatus::Okay);
        }
        assert_eq!(map_status(&mut f, 8, ro, 0), GntStatus::GeneralError);
        // A writable use is another counter.
        assert_eq!(map_status(&mut f, 8, GNTMAP_DEVICE_MAP, 0), GntStatus::Okay);
        for h in 0..=PIN_LIMIT {
            assert_eq!(unmap_status(&mut f, h, 0, X << 12), GntStatus::Okay);
        }
        assert_clean(&mut f);
    }

    #[test]
    fn the_maptrack_is_bounded() {
        let mut f = fixture();
        let ro = GNTMAP_HOST_MAP | GNTMAP_READONLY;
        // Spread over fresh grants, each within the pin limit.
        for g in 13..13 + (MAX_MAPTRACK as u32).div_ceil(PIN_LIMIT) {
            grant(
                &mut f,
                g,
                GtfFlags::PERMIT_ACCESS | GtfFlags::READONLY,
                0,
                Y,
            );
        }
        for i in 0..MAX_MAPTRACK {
            let gref = 13 + i as u32 / PIN_LIMIT;
            let va = 4096 * (i as u64 + 1);
            assert_eq!(map_status(&mut f, gref, ro, va), GntStatus::Okay);
        }
        assert_eq!(map_status(&mut f, 9, ro, VA), GntStatus::NoSpace);
        for h in 0..MAX_MAPTRACK as u32 {
            let va = 4096 * (u64::from(h) + 1);
            assert_eq!(unmap_status(&mut f, h, va, 0), GntStatus::Okay);
        }
        assert_clean(&mut f);
    }

    proptest! {
        /// Whatever a guest maps and unmaps, each grant's flags and pins match its mappings,
        /// and once everything is unmapped nothing is held or marked.
        #[test]
        fn pins_and_flags_follow_the_mappings(
            ops in proptest::collection::vec((any::<bool>(), 8u32..13, 0u32..8, 0u64..4), 1..40)
        ) {
            let mut f = fixture();
            let mut live: Vec<(u32, u64)> = Vec::new();
            for (is_map, gref, flag_bits, slot) in ops {
                let va = VA + 4096 * slot;
                if is_map {
                    let flags = GNTMAP_HOST_MAP | (flag_bits & GNTMAP_READONLY);
                    let op = map_op(&mut f, gref, flags, va);
                    if op.status == 0 {
                        // A mapping over another at the same place replaces its entry: the
                        // older handle stays (and its unmap fails), as on Xen.
                        live.push((op.handle, va));
                    }
                } else if let Some((h, v)) = live.pop() {
                    let _ = unmap_status(&mut f, h, v, 0);
                }
                for g in 8..13u32 {
                    let (r, w) = active(&f).get(g).map_or((0, 0), |a| (a.readers, a.writers));
                    let mut want = GtfFlags::empty();
                    if r + w > 0 { want |= GtfFlags::READING; }
                    if w > 0 { want |= GtfFlags::WRITING; }
                    prop_assert_eq!(in_use(&mut f, g), want);
                }
            }
            // Unmapping what is left, newest first, leaves only the replaced handles pinned.
            while let Some((h, v)) = live.pop() {
                let _ = unmap_status(&mut f, h, v, 0);
            }
            prop_assert!(f.host.held.is_empty() && f.host.grant_ptes.is_empty());
        }
    }
}
