//! `victim.*`: attacks on a live second domain, `guests/victim`, run with the word `victim`
//! (the toolstack's `evtchn_peer = "victim"` appends `remote=DOMID port=PORT`: the victim's id
//! and the port it offers us, the only one of its ports we may bind).
//!
//! The victim publishes its frames, ports and grant reference in its M2P entries (the
//! `victim` library says how); the cases find them by scanning the M2P, then try to map the
//! victim's pages (`update_va_mapping`, `mmu_update`, with ourselves and with the victim as
//! page owner, `update_va_mapping_otherdomain`), write into them (its pattern, console,
//! xenstore, L4 and grant-table frames), pin, clear, copy and give back its frames, rewrite its
//! M2P tags, bind each of its ports, allocate, query and reset ports in its table, shut it
//! down or pause it, and map, copy or set up its grant table. Each must be refused. When all
//! the attack's cases are done, [`finish`] binds the offered port and sends one event: the
//! victim then checks that its memory, grant and channels are intact and prints its verdict.
//!
//! Scratch page 22 is the page whose mapping the cases try to point at the victim's frames
//! (restored after each), 23 the destination of a page copy.

use guest_abi::arch::MACH2PHYS_VIRT_START;
use guest_abi::domctl::{DomctlCmd, XenDomctl};
use guest_abi::event_channel::{EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnOp, EvtchnStatus};
use guest_abi::grant_table::{
    GNTMAP_HOST_MAP, GnttabGetVersion, GnttabMapGrantRef, GnttabOp, GnttabSetupTable,
};
use guest_abi::hypercall::Hypercall;
use guest_abi::memory::MemoryOp;
use guest_abi::runtime::hypercall;
use guest_abi::xen::MmuextCmd;
use guest_abi::{DomId, PAGE_SHIFT, XenError, println};
use victim::{Kind, PATTERN_PAGES};

use crate::mem::{self, RO, RW, scratch, uvm};
use crate::report::{Got, OK, Report, Want, err, same};
use crate::traps::trapped;

/// The page whose mapping the cases replace.
const TARGET: usize = 22;
/// The destination of `MMUEXT_COPY_PAGE`.
const COPY_TO: usize = 23;
/// Ports of the victim the bind cases try (its table is small).
const PORTS_TRIED: u32 = 64;

/// The victim, from the command line.
#[derive(Clone, Copy, Debug)]
pub struct Victim {
    /// Its domain id.
    pub dom: DomId,
    /// The port it offers us (allocated by the toolstack).
    pub offered: u32,
}

/// What the M2P says about the victim.
#[derive(Debug, Default)]
struct Found {
    pattern: [Option<u64>; PATTERN_PAGES],
    facts: [Option<u64>; Kind::FACTS.len()],
}

impl Found {
    fn fact(&self, kind: Kind) -> Option<u64> {
        let i = Kind::FACTS.iter().position(|&k| k == kind)?;
        self.facts[i]
    }
}

fn ret(r: Result<u64, XenError>) -> i64 {
    r.map_or_else(XenError::to_ret, |v| v as i64)
}

fn raw(op: Hypercall, args: [u64; 5]) -> i64 {
    // SAFETY: every call here names the victim's frames, ports or grants, and is refused; the
    // few that are allowed change only scratch pages 22 and 23.
    unsafe { hypercall::raw(op, args) }
}

/// A grant operation's result: the call's error, or the operation's `GNTST_*` status as a
/// 16-bit value (`0xfff8` is `GNTST_permission_denied`, `0xffff` `GNTST_general_error`).
fn gnt(r: i64, status: i16) -> Got {
    if r < 0 {
        Got::Ret(r)
    } else {
        Got::Value(u64::from(status as u16))
    }
}

/// `GNTST_permission_denied` as [`gnt`] shows it.
const GNT_PERMISSION_DENIED: u64 = 0xfff8;
/// `GNTST_general_error` as [`gnt`] shows it.
const GNT_GENERAL_ERROR: u64 = 0xffff;

/// Scans the M2P for the victim's tags.
fn scan() -> (Found, u64) {
    // SAFETY: XENMEM_maximum_ram_page takes no argument.
    let max = raw(
        Hypercall::MemoryOp,
        [MemoryOp::MaximumRamPage as u64, 0, 0, 0, 0],
    );
    let mut found = Found::default();
    for mfn in 0..max.max(0) as u64 {
        let entry: u64;
        let trap = trapped!("mov rax, qword ptr [rcx]"; in("rcx") MACH2PHYS_VIRT_START + 8 * mfn, out("rax") entry);
        if trap.is_some() {
            continue;
        }
        match victim::untag(entry) {
            Some((Kind::Pattern, i)) if (i as usize) < PATTERN_PAGES => {
                found.pattern[i as usize] = Some(mfn);
            }
            Some((kind, value)) => {
                if let Some(i) = Kind::FACTS.iter().position(|&k| k == kind) {
                    found.facts[i] = Some(value);
                }
            }
            None => {}
        }
    }
    (found, max as u64)
}

pub fn run(r: &mut Report, v: Victim) {
    let (found, max) = scan();
    let complete =
        found.pattern.iter().all(Option::is_some) && found.facts.iter().all(Option::is_some);
    println!(
        "attack: victim d{}: {:?}, offered port {}",
        v.dom.0, found, v.offered
    );
    r.check(
        "victim.find its pages and facts in the M2P",
        complete,
        format_args!("scanned {max} frames"),
    );
    if !complete {
        return;
    }
    let page = found.pattern[0].unwrap_or(0);
    let fact = |k| found.fact(k).unwrap_or(0);
    memory(r, v, page, &found);
    for (names, mfn) in [
        (
            [
                "victim.update_va_mapping its console frame writable",
                "victim.mmu_update write into its console frame",
            ],
            fact(Kind::Console),
        ),
        (
            [
                "victim.update_va_mapping its xenstore frame writable",
                "victim.mmu_update write into its xenstore frame",
            ],
            fact(Kind::Store),
        ),
        (
            [
                "victim.update_va_mapping its L4 writable",
                "victim.mmu_update write into its L4",
            ],
            fact(Kind::L4),
        ),
        (
            [
                "victim.update_va_mapping its grant-table frame writable",
                "victim.mmu_update write into its grant-table frame",
            ],
            fact(Kind::GrantFrame),
        ),
    ] {
        r.ret(
            names[0],
            uvm(scratch(TARGET), (mfn << PAGE_SHIFT) | RW),
            err(XenError::Busy),
        );
        restore(r);
        r.ret(
            names[1],
            mem::mmu_update(mfn << PAGE_SHIFT, 0, self_dom()),
            err(XenError::Inval),
        );
    }
    r.ret(
        "victim.mmuext NEW_BASEPTR to its L4",
        mem::mmuext(MmuextCmd::NewBaseptr, fact(Kind::L4), 0),
        err(XenError::Inval),
    );
    r.ret(
        "victim.mmuext PIN_L4_TABLE of its L4",
        mem::mmuext(MmuextCmd::PinL4Table, fact(Kind::L4), 0),
        err(XenError::Inval),
    );
    channels(r, v, &found);
    grants(r, v, fact(Kind::GrantRef) as u32);
    domain(r, v);
}

fn self_dom() -> u64 {
    u64::from(DomId::SELF.0)
}

/// Points the target page back at its own frame.
fn restore(r: &mut Report) {
    let own = mem::mfn_of(scratch(TARGET));
    let ret = uvm(scratch(TARGET), (own << PAGE_SHIFT) | RW);
    if ret != 0 {
        r.ret("victim.restore the target mapping", ret, OK);
    }
}

/// Its pattern pages: mappings, writes, pins, clears, copies, reservations, M2P.
fn memory(r: &mut Report, v: Victim, page: u64, found: &Found) {
    let dom = u64::from(v.dom.0);
    let target_pte = mem::pte_maddr(scratch(TARGET));
    for (name, ret, expect) in [
        (
            "victim.update_va_mapping its page writable",
            uvm(scratch(TARGET), (page << PAGE_SHIFT) | RW),
            err(XenError::Busy),
        ),
        (
            "victim.update_va_mapping its page read-only",
            uvm(scratch(TARGET), (page << PAGE_SHIFT) | RO),
            err(XenError::Busy),
        ),
        (
            "victim.mmu_update map its page writable",
            mem::mmu_update(target_pte, (page << PAGE_SHIFT) | RW, self_dom()),
            err(XenError::Busy),
        ),
        (
            "victim.mmu_update map its page naming it as page owner",
            mem::mmu_update(target_pte, (page << PAGE_SHIFT) | RW, dom),
            err(XenError::Perm),
        ),
        (
            "victim.mmu_update map its page read-only naming it as page owner",
            mem::mmu_update(target_pte, (page << PAGE_SHIFT) | RO, dom),
            err(XenError::Perm),
        ),
        (
            "victim.update_va_mapping_otherdomain of its page",
            raw(
                Hypercall::UpdateVaMappingOtherdomain,
                [scratch(TARGET), (page << PAGE_SHIFT) | RW, 2, dom, 0],
            ),
            err(XenError::Perm),
        ),
    ] {
        r.ret(name, ret, expect);
        restore(r);
    }
    // Every pattern page, writable and read-only: none may be mapped.
    let mut mapped = 0;
    for &mfn in found.pattern.iter().flatten() {
        for flags in [RW, RO] {
            if uvm(scratch(TARGET), (mfn << PAGE_SHIFT) | flags) == 0 {
                mapped += 1;
            }
        }
    }
    restore(r);
    r.check(
        "victim.none of its pattern pages maps, writable or read-only",
        mapped == 0,
        format_args!("{mapped} mappings made"),
    );
    r.ret(
        "victim.mmu_update write into its page",
        mem::mmu_update(page << PAGE_SHIFT, 0, self_dom()),
        err(XenError::Inval),
    );
    r.ret(
        "victim.mmu_update MACHPHYS_UPDATE of its page (its M2P tag)",
        mem::mmu_update((page << PAGE_SHIFT) | 1, 0, self_dom()),
        err(XenError::Inval),
    );
    r.ret(
        "victim.mmu_update MACHPHYS_UPDATE of its page naming it as page owner",
        mem::mmu_update((page << PAGE_SHIFT) | 1, 0, dom),
        err(XenError::Perm),
    );
    r.ret(
        "victim.mmuext PIN_L1_TABLE of its page",
        mem::mmuext(MmuextCmd::PinL1Table, page, 0),
        err(XenError::Inval),
    );
    r.ret(
        "victim.mmuext PIN_L1_TABLE of its page naming it as page owner",
        mem::mmuext_for(MmuextCmd::PinL1Table, page, 0, dom),
        err(XenError::Perm),
    );
    r.ret(
        "victim.mmuext CLEAR_PAGE of its page",
        mem::mmuext(MmuextCmd::ClearPage, page, 0),
        err(XenError::Inval),
    );
    r.ret(
        "victim.mmuext COPY_PAGE from its page into ours",
        mem::mmuext(MmuextCmd::CopyPage, mem::mfn_of(scratch(COPY_TO)), page),
        err(XenError::Inval),
    );
    r.ret(
        "victim.mmuext COPY_PAGE from ours over its page",
        mem::mmuext(MmuextCmd::CopyPage, page, mem::mfn_of(scratch(COPY_TO))),
        err(XenError::Inval),
    );
    // Xen answers memory_op with the number of extents done: 0.
    r.case(
        "victim.decrease_reservation of its page as ours frees nothing",
        Got::Value(mem::release(page) as u64),
        same(Want::Value(0)),
    );
    // Both answer with the extents done, none (Xen's reservation calls refuse a domain the
    // caller may not touch that way; a page freed would show in the victim's own checks).
    r.ret(
        "victim.decrease_reservation of its page naming it",
        mem::release_of(page, v.dom),
        same(Want::Ok),
    );
}

/// Its ports: binding each, and the operations that name another domain's table.
fn channels(r: &mut Report, v: Victim, found: &Found) {
    let bind = |port: u32| {
        let mut b = EvtchnBindInterdomain {
            remote_dom: v.dom.0,
            remote_port: port,
            ..EvtchnBindInterdomain::default()
        };
        let ret = ret(hypercall::event_channel_op(&mut b));
        if ret == 0 {
            // Not ours to keep.
            let _ = hypercall::evtchn_port_op(EvtchnOp::Close, b.local_port);
        }
        ret
    };
    let port = |k| found.fact(k).unwrap_or(0) as u32;
    for (name, kind) in [
        (
            "victim.evtchn bind_interdomain to its port unbound for dom0",
            Kind::UnboundPort,
        ),
        (
            "victim.evtchn bind_interdomain to its loopback port",
            Kind::LoopPortA,
        ),
        (
            "victim.evtchn bind_interdomain to the other end of its loopback",
            Kind::LoopPortB,
        ),
        (
            "victim.evtchn bind_interdomain to its IPI port",
            Kind::IpiPort,
        ),
    ] {
        r.ret(name, bind(port(kind)), err(XenError::Inval));
    }
    let bound = (1..PORTS_TRIED)
        .filter(|&p| p != v.offered)
        .filter(|&p| bind(p) == 0)
        .count();
    r.check(
        "victim.evtchn bind_interdomain to every other port of it is refused",
        bound == 0,
        format_args!("{bound} of ports 1-{} bound", PORTS_TRIED - 1),
    );
    let mut alloc = EvtchnAllocUnbound {
        dom: v.dom.0,
        remote_dom: DomId::SELF.0,
        port: 0,
    };
    r.ret(
        "victim.evtchn alloc_unbound in its table for us",
        ret(hypercall::event_channel_op(&mut alloc)),
        err(XenError::Perm),
    );
    let mut status = EvtchnStatus {
        dom: v.dom.0,
        port: port(Kind::UnboundPort),
        ..EvtchnStatus::default()
    };
    r.ret(
        "victim.evtchn status of its port",
        ret(hypercall::event_channel_op(&mut status)),
        err(XenError::Perm),
    );
    let reset = [u64::from(v.dom.0)];
    r.ret(
        "victim.evtchn reset of its table",
        raw(
            Hypercall::EventChannelOp,
            [EvtchnOp::Reset as u64, reset.as_ptr() as u64, 0, 0, 0],
        ),
        err(XenError::Perm),
    );
}

/// Its grant reference (granted to dom0, not to us) and its grant table.
fn grants(r: &mut Report, v: Victim, gref: u32) {
    let mut map = [GnttabMapGrantRef {
        host_addr: scratch(TARGET),
        flags: GNTMAP_HOST_MAP,
        ref_: gref,
        dom: v.dom.0,
        ..GnttabMapGrantRef::default()
    }];
    // SAFETY: refused; were it not, it would only map over scratch page 22.
    let mapped = ret(unsafe { hypercall::grant_table_op(GnttabOp::MapGrantRef, &mut map) });
    // A grant for another domain: refused.
    r.case(
        "victim.grant map_grant_ref of its grant to dom0",
        gnt(mapped, map[0].status),
        same(Want::Value(GNT_GENERAL_ERROR)),
    );
    if mapped == 0 && map[0].status == 0 {
        restore(r);
    }
    // struct gnttab_copy: source { ref, domid, offset }, dest { gmfn, domid, offset }, len,
    // flags (GNTCOPY_source_gref), status.
    let mut copy = [0u64; 5];
    copy[0] = u64::from(gref);
    copy[1] = u64::from(v.dom.0);
    copy[2] = mem::mfn_of(scratch(COPY_TO));
    copy[3] = self_dom();
    copy[4] = 8 | (1 << 16);
    let copied = raw(
        Hypercall::GrantTableOp,
        [GnttabOp::Copy as u64, copy.as_mut_ptr() as u64, 1, 0, 0],
    );
    r.case(
        "victim.grant copy from its grant to dom0",
        gnt(copied, (copy[4] >> 32) as i16),
        same(Want::Value(GNT_GENERAL_ERROR)),
    );
    let mut frames = [0u64; 1];
    let mut setup = [GnttabSetupTable {
        dom: v.dom.0,
        nr_frames: 1,
        frame_list: frames.as_mut_ptr() as u64,
        ..GnttabSetupTable::default()
    }];
    // SAFETY: the struct and its list are valid; the call only writes them.
    let set_up = ret(unsafe { hypercall::grant_table_op(GnttabOp::SetupTable, &mut setup) });
    r.case(
        "victim.grant setup_table of its table (its frames)",
        gnt(set_up, setup[0].status),
        same(Want::Value(GNT_PERMISSION_DENIED)),
    );
    let mut version = [GnttabGetVersion {
        dom: v.dom.0,
        ..GnttabGetVersion::default()
    }];
    // SAFETY: as above.
    let got = ret(unsafe { hypercall::grant_table_op(GnttabOp::GetVersion, &mut version) });
    r.ret(
        "victim.grant get_version of its table",
        got,
        err(XenError::Perm),
    );
}

/// The domain itself: shut it down, pause it.
fn domain(r: &mut Report, v: Victim) {
    let shutdown = [u64::from(v.dom.0) | (2 << 16)];
    r.ret(
        "victim.sched_op remote_shutdown of it",
        raw(Hypercall::SchedOp, [4, shutdown.as_ptr() as u64, 0, 0, 0]),
        err(XenError::Perm),
    );
    let mut d = XenDomctl::new(DomctlCmd::Pausedomain, v.dom.0);
    r.ret(
        "victim.domctl pausedomain of it",
        raw(Hypercall::Domctl, [&raw mut d as u64, 0, 0, 0, 0]),
        err(XenError::Perm),
    );
}

/// After every case: binds the port the victim offers us and sends one event, its cue to
/// check itself and print its verdict.
pub fn finish(r: &mut Report, v: Victim) {
    let mut b = EvtchnBindInterdomain {
        remote_dom: v.dom.0,
        remote_port: v.offered,
        ..EvtchnBindInterdomain::default()
    };
    let bound = ret(hypercall::event_channel_op(&mut b));
    r.ret(
        "victim.evtchn bind_interdomain to the port it offers us (allowed)",
        bound,
        OK,
    );
    if bound == 0 {
        r.ret(
            "victim.evtchn send it the end of the attack (allowed)",
            ret(hypercall::evtchn_send(b.local_port)),
            OK,
        );
    }
}
