//! `grant.*`: the grant table turned against the hypervisor. The guest sets up its own table
//! (one frame, mapped over scratch page 24) and writes entries granting itself frames, then:
//! maps frames it does not own or that are not RAM through them, maps at hypervisor
//! addresses or into frames that are not its page tables, maps a read-only grant writable or a
//! grant it has withdrawn,
//! copies into its own page table through a grant, unmaps with a wrong address or a handle
//! never given, and uses one grant more times than its pin counters allow. The last fills
//! our maptrack (4,096 mappings; Xen's holds far more, so there the mapping succeeds). Every
//! mapping taken is given back, so the cases run again in every pass.

use core::sync::atomic::{AtomicU32, Ordering};

use guest_abi::arch::HYPERVISOR_VIRT_START;
use guest_abi::event_channel::{EvtchnAllocUnbound, EvtchnOp, EvtchnStatus};
use guest_abi::grant_table::{
    GNTCOPY_DEST_GREF, GNTMAP_CONTAINS_PTE, GNTMAP_DEVICE_MAP, GNTMAP_HOST_MAP, GNTMAP_READONLY,
    GntStatus, GnttabCopy, GnttabCopyPtr, GnttabMapGrantRef, GnttabOp, GnttabSetVersion,
    GnttabSetupTable, GnttabUnmapGrantRef, GtfFlags,
};
use guest_abi::runtime::hypercall::{self, event_channel_op, evtchn_port_op};
use guest_abi::{DomId, XenError};

use crate::mem::{self, RW, scratch};
use crate::report::{Expect, Got, Report, Want, same};

/// The scratch page the grant-table frame is mapped over.
const TABLE: usize = 24;
/// The scratch page granted.
const GRANTED: usize = 25;
/// The scratch page mappings go over.
const WINDOW: usize = 26;
/// A frame far beyond any RAM.
const NO_FRAME: u64 = 0xf_ffff_fff0;
/// Xen's pin counters refuse a use of a grant once this many of its kind exist.
const PINS: u32 = 128;
/// Our maptrack's size.
const MAPTRACK: u32 = 4096;
/// The handles the maptrack case was given (Xen's are not numbered in order).
static HANDLES: [AtomicU32; MAPTRACK as usize + 1] =
    [const { AtomicU32::new(0) }; MAPTRACK as usize + 1];

/// A grant operation's outcome: the call's error, or its status as a 16-bit value.
fn gnt(r: Result<u64, XenError>, status: i16) -> Got {
    match r {
        Err(e) => Got::Ret(e.to_ret()),
        Ok(_) => Got::Value(u64::from(status as u16)),
    }
}

/// Expects status `s` everywhere.
fn status(s: GntStatus) -> Expect {
    same(Want::Value(u64::from(s.raw() as i16 as u16)))
}

/// Our own domain id, which grant entries must name: the remote end of a port we offer
/// ourselves (`DOMID_SELF` is resolved when the port is made), or 0 if that fails.
pub fn me() -> u16 {
    let mut offer = EvtchnAllocUnbound {
        dom: DomId::SELF.0,
        remote_dom: DomId::SELF.0,
        port: 0,
    };
    if event_channel_op(&mut offer).is_err() {
        return 0;
    }
    let mut st = EvtchnStatus {
        dom: DomId::SELF.0,
        port: offer.port,
        ..EvtchnStatus::default()
    };
    let id = event_channel_op(&mut st).map_or(0, |_| st.u[0] as u16);
    let _ = evtchn_port_op(EvtchnOp::Close, offer.port);
    id
}

/// Writes entry `gref` of our table, granting `frame` to domain `to`.
fn grant(gref: usize, flags: GtfFlags, to: u16, frame: u64) {
    mem::poke(
        TABLE,
        gref,
        u64::from(flags.bits()) | u64::from(to) << 16 | frame << 32,
    );
}

/// Maps our own grant `gref` (the granter named by its id, `dom`).
fn map_from(dom: u16, gref: u32, flags: u32, host_addr: u64) -> (Got, u32) {
    let mut op = [GnttabMapGrantRef {
        host_addr,
        flags,
        ref_: gref,
        dom,
        ..GnttabMapGrantRef::default()
    }];
    // SAFETY: the mapping, if any is made, goes over the scratch window (module comment of
    // `mem`), or the hypervisor refuses it.
    let r = unsafe { hypercall::grant_table_op(GnttabOp::MapGrantRef, &mut op) };
    (gnt(r, op[0].status), op[0].handle)
}

fn unmap(handle: u32, host_addr: u64, dev_bus_addr: u64) -> Got {
    let mut op = [GnttabUnmapGrantRef {
        host_addr,
        dev_bus_addr,
        handle,
        ..GnttabUnmapGrantRef::default()
    }];
    // SAFETY: only a mapping this module made is removed.
    let r = unsafe { hypercall::grant_table_op(GnttabOp::UnmapGrantRef, &mut op) };
    gnt(r, op[0].status)
}

/// Sets up our grant table and maps its frame over the table page; false if it cannot.
fn set_up(r: &mut Report) -> bool {
    let mut frame = [0u64; 1];
    let mut op = [GnttabSetupTable {
        dom: DomId::SELF.0,
        nr_frames: 1,
        frame_list: frame.as_mut_ptr() as u64,
        ..GnttabSetupTable::default()
    }];
    // SAFETY: the struct and its one-entry list are valid.
    let res = unsafe { hypercall::grant_table_op(GnttabOp::SetupTable, &mut op) };
    let ok = res.is_ok() && op[0].status == 0 && mem::remap(TABLE, frame[0], RW) == 0;
    r.case(
        "grant.setup_table and map our own table",
        Got::Value(u64::from(ok)),
        same(Want::Value(1)),
    );
    ok
}

pub fn run(r: &mut Report) {
    if !set_up(r) {
        return;
    }
    let id = me();
    let map = |gref, flags, addr| map_from(id, gref, flags, addr);
    let granted = mem::mfn_of(scratch(GRANTED));
    let window = scratch(WINDOW);
    let window_mfn = mem::mfn_of(window);
    let host_ro = GNTMAP_HOST_MAP | GNTMAP_READONLY;
    let bad = |name: &str, r: &mut Report, got: (Got, u32), want: GntStatus| {
        r.case(name, got.0, status(want));
    };

    grant(
        12,
        GtfFlags::PERMIT_ACCESS | GtfFlags::READONLY,
        id,
        granted,
    );
    bad(
        "grant.map naming the granter DOMID_SELF",
        r,
        map_from(DomId::SELF.0, 12, host_ro, window),
        GntStatus::BadDomain,
    );
    grant(10, GtfFlags::PERMIT_ACCESS, id, 1);
    bad(
        "grant.map of a frame that is not RAM (frame 1)",
        r,
        map(10, host_ro, window),
        GntStatus::BadPage,
    );
    grant(11, GtfFlags::PERMIT_ACCESS, id, NO_FRAME);
    bad(
        "grant.map of a frame beyond RAM",
        r,
        map(11, host_ro, window),
        GntStatus::BadPage,
    );
    grant(
        12,
        GtfFlags::PERMIT_ACCESS | GtfFlags::READONLY,
        id,
        granted,
    );
    bad(
        "grant.map of a read-only grant writable",
        r,
        map(12, GNTMAP_HOST_MAP, window),
        GntStatus::GeneralError,
    );
    bad(
        "grant.map at a hypervisor address",
        r,
        map(12, host_ro, HYPERVISOR_VIRT_START + 0x10_0000),
        GntStatus::GeneralError,
    );
    bad(
        "grant.map into a misaligned PTE address",
        r,
        map(
            12,
            host_ro | GNTMAP_CONTAINS_PTE,
            mem::pte_maddr(window) + 3,
        ),
        GntStatus::GeneralError,
    );
    bad(
        "grant.map into a frame that is not a page table (PTE address)",
        r,
        map(12, host_ro | GNTMAP_CONTAINS_PTE, granted << 12),
        GntStatus::GeneralError,
    );
    r.case(
        "grant.unmap of a handle never given",
        unmap(60_000, window, 0),
        status(GntStatus::BadHandle),
    );

    // A mapping unmapped at the wrong address stays; at the right one it goes.
    let (got, handle) = map(12, host_ro, window);
    r.case(
        "grant.map read-only over our window",
        got,
        status(GntStatus::Okay),
    );
    if got == Got::Value(0) {
        r.case(
            "grant.unmap at a wrong address keeps the mapping",
            unmap(handle, scratch(GRANTED), 0),
            status(GntStatus::GeneralError),
        );
        r.case(
            "grant.unmap at its address",
            unmap(handle, window, 0),
            status(GntStatus::Okay),
        );
    }
    r.case(
        "grant.window mapped back",
        Got::Ret(mem::remap(WINDOW, window_mfn, RW)),
        same(Want::Ok),
    );
    // A stale reference: the grant is withdrawn (its entry cleared), then used again.
    mem::poke(TABLE, 12, 0);
    bad(
        "grant.map of a withdrawn grant",
        r,
        map(12, host_ro, window),
        GntStatus::GeneralError,
    );
    grant(
        12,
        GtfFlags::PERMIT_ACCESS | GtfFlags::READONLY,
        id,
        granted,
    );

    // Through a grant of our own top-level page table, written by a copy.
    grant(13, GtfFlags::PERMIT_ACCESS, id, mem::l4());
    let mut copy = [GnttabCopy {
        source: GnttabCopyPtr::frame(granted, 0),
        dest: GnttabCopyPtr::grant(id, 13, 0),
        len: 8,
        flags: GNTCOPY_DEST_GREF,
        ..GnttabCopy::default()
    }];
    // SAFETY: refused; were it not, it would write 8 bytes of a scratch page into our L4.
    let res = unsafe { hypercall::grant_table_op(GnttabOp::Copy, &mut copy) };
    r.case(
        "grant.copy into our L4 through a grant",
        gnt(res, copy[0].status),
        status(GntStatus::GeneralError),
    );

    // One grant used more times than its pin counters allow (device mappings need no PTE).
    let dev_ro = GNTMAP_DEVICE_MAP | GNTMAP_READONLY;
    let mut handles = [0u32; PINS as usize];
    let mut all = true;
    for h in handles.iter_mut() {
        let (got, handle) = map(12, dev_ro, 0);
        all &= got == Got::Value(0);
        *h = handle;
    }
    r.case(
        "grant.map 128 device mappings of one grant",
        Got::Value(u64::from(all)),
        same(Want::Value(1)),
    );
    bad(
        "grant.map a 129th",
        r,
        map(12, dev_ro, 0),
        GntStatus::GeneralError,
    );
    let mut freed = true;
    for &h in &handles {
        freed &= unmap(h, 0, granted << 12) == Got::Value(0);
    }
    r.case(
        "grant.unmap of the 128",
        Got::Value(u64::from(freed)),
        same(Want::Value(1)),
    );

    // The table's version cannot change under a mapping.
    let (got, handle) = map(12, GNTMAP_DEVICE_MAP | GNTMAP_READONLY, 0);
    if got == Got::Value(0) {
        let mut v = [GnttabSetVersion { version: 2 }];
        // SAFETY: refused while the grant is mapped; were it not, the table would be cleared
        // (this module writes its entries again before using them).
        let res = unsafe { hypercall::grant_table_op(GnttabOp::SetVersion, &mut v) };
        r.case(
            "grant.set_version 2 while a grant is mapped",
            Got::Ret(res.map_or_else(XenError::to_ret, |v| v as i64)),
            same(Want::Err(XenError::Busy)),
        );
        let _ = unmap(handle, 0, granted << 12);
    }
    maptrack(r, id, granted);
    for gref in 10..14 {
        mem::poke(TABLE, gref, 0);
    }
}

/// Fills the maptrack with device mappings of fresh grants: ours refuses mapping 4,097 with
/// `GNTST_no_space`, Xen's larger table takes it; everything is unmapped after.
fn maptrack(r: &mut Report, id: u16, granted: u64) {
    let first = 100usize;
    let grants = (MAPTRACK / PINS + 1) as usize;
    for g in first..first + grants {
        grant(g, GtfFlags::PERMIT_ACCESS | GtfFlags::READONLY, id, granted);
    }
    let dev_ro = GNTMAP_DEVICE_MAP | GNTMAP_READONLY;
    let mut mapped = 0u32;
    let mut last = Got::Value(0);
    while mapped <= MAPTRACK {
        let gref = first as u32 + mapped / PINS;
        let (got, handle) = map_from(id, gref, dev_ro, 0);
        if got != Got::Value(0) {
            last = got;
            break;
        }
        HANDLES[mapped as usize].store(handle, Ordering::Relaxed);
        mapped += 1;
    }
    r.case(
        "grant.map until the maptrack is full",
        if mapped == MAPTRACK {
            last
        } else {
            Got::Value(u64::from(mapped))
        },
        Expect {
            xen: Some(Want::Value(u64::from(MAPTRACK + 1))),
            ..status(GntStatus::NoSpace)
        },
    );
    let mut freed = true;
    for h in &HANDLES[..mapped as usize] {
        freed &= unmap(h.load(Ordering::Relaxed), 0, granted << 12) == Got::Value(0);
    }
    r.case(
        "grant.unmap of every one",
        Got::Value(u64::from(freed)),
        same(Want::Value(1)),
    );
    for g in first..first + grants {
        mem::poke(TABLE, g, 0);
    }
}
