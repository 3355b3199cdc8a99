//! `victim`: a domU for a hostile neighbour to attack (`guests/attack` with the words
//! `domu victim`), which checks that nothing it owns was touched.
//!
//! At start it fills [`victim::PAGES`] pages with a known pattern, grants pattern page 0 to
//! dom0 (grant table v1, reference [`victim::GRANT_REF`]), allocates a port unbound for dom0,
//! a loopback interdomain channel to itself and an IPI port, and publishes all of it, with its
//! console, xenstore, L4 and grant-table frames, in its M2P entries (see the library). It
//! prints its facts and `victim: ready`.
//!
//! Then, every half second, it checks: every pattern word and M2P tag, the grant entry (still
//! for dom0, the same frame, never mapped: no `GTF_reading`/`GTF_writing`), each port's status
//! (the unbound one still unbound for dom0, the loopback pair still joined, the IPI port still
//! an IPI), that no event reached the unbound or IPI port, and that the loopback channel still
//! carries events both ways. It also looks for the port the toolstack offers it for the
//! attacker (`evtchn_peer = "victim"` in the attacker's configuration): the attacker binds it
//! and sends one event when its cases are done. On that event (or after `limit=SECONDS`,
//! default 900, which fails) it checks once more and prints `victim: done: ...` and then
//! `victim: PASS`, or `victim: FAIL what`, and powers off.
//!
//! Safety: guest-abi's runtime assumptions hold (one vCPU, events masked). The fact pages and
//! the grant-table window are statics touched only through raw pointers, by this module.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::arch::{MACH2PHYS_VIRT_START, PteFlags};
    use guest_abi::event_channel::{
        EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnStat,
    };
    use guest_abi::grant_table::{GntStatus, GnttabOp, GnttabSetupTable, GrantEntryV1, GtfFlags};
    use guest_abi::hypercall::Hypercall;
    use guest_abi::runtime::{AsmCell, VIRT_BASE, cmdline_words, events, hypercall};
    use guest_abi::sched::ShutdownReason;
    use guest_abi::xen::{StartInfo, UVMF_INVLPG};
    use guest_abi::{DomId, EvtchnPort, PAGE_SHIFT, XenError, println};
    use victim::{GRANT_REF, Kind, PAGES, PATTERN_PAGES, pattern, tag};

    /// Time between checks.
    const PERIOD_NS: u64 = 500_000_000;
    /// How long to wait for the attacker when the command line does not say (seconds).
    const DEFAULT_LIMIT_S: u64 = 900;

    guest_abi::pv_guest!("victim", main);

    #[repr(C, align(4096))]
    struct Pages([[u64; 512]; PAGES]);

    #[repr(C, align(4096))]
    struct Page([u64; 512]);

    static FACT_PAGES: AsmCell<Pages> = AsmCell::new(Pages([[0; 512]; PAGES]));
    /// Remapped onto the grant table's first frame.
    static GRANT_WINDOW: AsmCell<Page> = AsmCell::new(Page([0; 512]));

    /// What went wrong, in one line.
    type Failure = (&'static str, i64);

    /// What the victim set up, to check.
    struct Facts {
        domid: u16,
        mfns: [u64; PAGES],
        tags: [u64; PAGES],
        unbound: EvtchnPort,
        loop_a: EvtchnPort,
        loop_b: EvtchnPort,
        ipi: EvtchnPort,
    }

    fn main(si: &'static StartInfo) {
        let limit_s = cmdline_words()
            .filter_map(|w| core::str::from_utf8(w).ok())
            .find_map(|w| w.strip_prefix("limit=")?.parse::<u64>().ok())
            .unwrap_or(DEFAULT_LIMIT_S);
        let verdict = setup(si).and_then(|facts| watch(&facts, limit_s));
        match verdict {
            Ok(n) => {
                println!("victim: done: intact after {n} checks");
                println!("victim: PASS");
            }
            Err((what, v)) => {
                println!("victim: done: something changed");
                println!("victim: FAIL {what} ({v})");
            }
        }
        hypercall::shutdown(ShutdownReason::Poweroff)
    }

    fn ret(r: Result<u64, XenError>) -> i64 {
        r.map_or_else(XenError::to_ret, |v| v as i64)
    }

    fn page_va(i: usize) -> u64 {
        FACT_PAGES.addr() + 4096 * i as u64
    }

    /// The machine frame behind `va` in the bootstrap region (from the P2M list).
    fn mfn_of(si: &StartInfo, va: u64) -> u64 {
        let pfn = (va - VIRT_BASE) >> PAGE_SHIFT;
        assert!(pfn < si.nr_pages);
        // SAFETY: the builder maps the P2M list (nr_pages entries) in the bootstrap region.
        unsafe {
            (si.mfn_list as *const u64)
                .add(pfn as usize)
                .read_volatile()
        }
    }

    fn m2p(mfn: u64) -> u64 {
        // SAFETY: the read-only M2P is mapped in every PV guest; `mfn` is one of ours.
        unsafe {
            (MACH2PHYS_VIRT_START as *const u64)
                .add(mfn as usize)
                .read_volatile()
        }
    }

    fn set_m2p(mfn: u64, value: u64) -> Result<(), Failure> {
        let req = [(mfn << PAGE_SHIFT) | 1, value];
        let mut done = 0u32;
        // SAFETY: MMU_MACHPHYS_UPDATE of one of our frames changes no mapping.
        let r = unsafe {
            hypercall::raw(
                Hypercall::MmuUpdate,
                [
                    req.as_ptr() as u64,
                    1,
                    &raw mut done as u64,
                    u64::from(DomId::SELF.0),
                    0,
                ],
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(("MMU_MACHPHYS_UPDATE of a fact page", r))
        }
    }

    fn alloc_unbound(remote: DomId) -> Result<EvtchnPort, Failure> {
        let mut a = EvtchnAllocUnbound {
            dom: DomId::SELF.0,
            remote_dom: remote.0,
            port: 0,
        };
        hypercall::event_channel_op(&mut a).map_err(|e| ("EVTCHNOP_alloc_unbound", e.to_ret()))?;
        Ok(EvtchnPort(a.port))
    }

    /// Maps the grant table's first frame over [`GRANT_WINDOW`]; its frame number.
    fn map_grant_table() -> Result<u64, Failure> {
        let mut frame = [0u64; 1];
        let mut setup = [GnttabSetupTable {
            dom: DomId::SELF.0,
            nr_frames: 1,
            frame_list: frame.as_mut_ptr() as u64,
            ..GnttabSetupTable::default()
        }];
        // SAFETY: the struct and its frame list are valid for the call.
        let r = ret(unsafe { hypercall::grant_table_op(GnttabOp::SetupTable, &mut setup) });
        if r != 0 || setup[0].status != GntStatus::Okay.raw() as i16 {
            return Err((
                "GNTTABOP_setup_table",
                if r != 0 { r } else { setup[0].status.into() },
            ));
        }
        let flags = PteFlags::PRESENT | PteFlags::RW | PteFlags::ACCESSED | PteFlags::DIRTY;
        // SAFETY: the window is a static only this module touches, through raw pointers.
        let r = ret(unsafe {
            hypercall::update_va_mapping(
                guest_abi::VirtAddr(GRANT_WINDOW.addr()),
                (frame[0] << PAGE_SHIFT) | flags.bits(),
                UVMF_INVLPG,
            )
        });
        if r != 0 {
            return Err(("mapping the grant table", r));
        }
        Ok(frame[0])
    }

    fn grant_entry() -> *mut GrantEntryV1 {
        (GRANT_WINDOW.addr() as *mut GrantEntryV1).wrapping_add(GRANT_REF as usize)
    }

    fn setup(si: &StartInfo) -> Result<Facts, Failure> {
        let mut mfns = [0u64; PAGES];
        for (i, mfn) in mfns.iter_mut().enumerate() {
            let p = page_va(i) as *mut u64;
            for w in 0..512 {
                // SAFETY: the fact pages are ours, mapped writable, used only here.
                unsafe { p.add(w).write_volatile(pattern(i, w)) };
            }
            *mfn = mfn_of(si, page_va(i));
        }
        let grant_frame = map_grant_table()?;
        let entry = grant_entry();
        // SAFETY: the window maps the grant table's first frame; the entry is ours to fill,
        // frame and domain first, then the flags that make it valid.
        unsafe {
            (&raw mut (*entry).frame).write_volatile(mfns[0] as u32);
            (&raw mut (*entry).domid).write_volatile(0);
            core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
            (&raw mut (*entry).flags).write_volatile(GtfFlags::PERMIT_ACCESS.bits());
        }
        let unbound = alloc_unbound(DomId(0))?;
        let loop_a = alloc_unbound(DomId::SELF)?;
        let mut bind = EvtchnBindInterdomain {
            remote_dom: DomId::SELF.0,
            remote_port: loop_a.0,
            ..EvtchnBindInterdomain::default()
        };
        hypercall::event_channel_op(&mut bind)
            .map_err(|e| ("EVTCHNOP_bind_interdomain to ourselves", e.to_ret()))?;
        let loop_b = EvtchnPort(bind.local_port);
        let mut ipi = EvtchnBindIpi { vcpu: 0, port: 0 };
        hypercall::event_channel_op(&mut ipi).map_err(|e| ("EVTCHNOP_bind_ipi", e.to_ret()))?;
        let ipi = EvtchnPort(ipi.port);
        // Our domain id, from the loopback channel's far end.
        let s = events::status(loop_a).map_err(|e| ("EVTCHNOP_status", e.to_ret()))?;
        let domid = (s.u[0] & 0xffff) as u16;
        let l4 = mfn_of(si, si.pt_base);
        let mut tags = [0u64; PAGES];
        for (i, t) in tags.iter_mut().enumerate().take(PATTERN_PAGES) {
            *t = tag(Kind::Pattern, i as u64);
        }
        for (t, kind) in tags[PATTERN_PAGES..].iter_mut().zip(Kind::FACTS) {
            let value = match kind {
                Kind::Console => si.console.mfn,
                Kind::Store => si.store_mfn,
                Kind::L4 => l4,
                Kind::GrantFrame => grant_frame,
                Kind::GrantRef => u64::from(GRANT_REF),
                Kind::UnboundPort => u64::from(unbound.0),
                Kind::LoopPortA => u64::from(loop_a.0),
                Kind::LoopPortB => u64::from(loop_b.0),
                Kind::IpiPort => u64::from(ipi.0),
                Kind::Pattern => 0,
            };
            *t = tag(kind, value);
        }
        for (&mfn, &t) in mfns.iter().zip(&tags) {
            set_m2p(mfn, t)?;
        }
        println!("victim: domid {domid}");
        println!(
            "victim: pattern frames {:#x} {:#x} {:#x} ... ({} pages, {} carry facts)",
            mfns[0],
            mfns[1],
            mfns[2],
            PAGES,
            Kind::FACTS.len()
        );
        println!(
            "victim: console frame {:#x}, xenstore frame {:#x}, L4 {:#x}, grant frame {:#x}",
            si.console.mfn, si.store_mfn, l4, grant_frame
        );
        println!(
            "victim: grant ref {GRANT_REF} of frame {:#x} for dom0; ports: unbound for dom0 {}, loopback {}<->{}, IPI {}",
            mfns[0], unbound.0, loop_a.0, loop_b.0, ipi.0
        );
        println!("victim: ready");
        Ok(Facts {
            domid,
            mfns,
            tags,
            unbound,
            loop_a,
            loop_b,
            ipi,
        })
    }

    /// One round of checks.
    fn check(f: &Facts) -> Result<(), Failure> {
        for i in 0..PAGES {
            let p = page_va(i) as *const u64;
            for w in 0..512 {
                // SAFETY: as in `setup`.
                let v = unsafe { p.add(w).read_volatile() };
                if v != pattern(i, w) {
                    return Err(("a pattern word changed (page, word)", (i * 512 + w) as i64));
                }
            }
            if mfn_of(si(), page_va(i)) != f.mfns[i] {
                return Err(("a fact page moved to another frame", i as i64));
            }
            if m2p(f.mfns[i]) != f.tags[i] {
                return Err(("an M2P tag changed (page)", i as i64));
            }
        }
        // SAFETY: the window maps the grant table (set up in `setup`).
        let e = unsafe { grant_entry().read_volatile() };
        let want = GrantEntryV1 {
            flags: GtfFlags::PERMIT_ACCESS.bits(),
            domid: 0,
            frame: f.mfns[0] as u32,
        };
        if e != want {
            return Err(("the grant entry changed (flags)", e.flags.into()));
        }
        let stat = |port: EvtchnPort| {
            events::status(port).map_err(|e| ("EVTCHNOP_status of our port", e.to_ret()))
        };
        let s = stat(f.unbound)?;
        if s.status != EvtchnStat::Unbound as u32 || s.u[0] & 0xffff != 0 {
            return Err((
                "the port for dom0 is no longer unbound for dom0",
                s.status.into(),
            ));
        }
        for (port, peer) in [(f.loop_a, f.loop_b), (f.loop_b, f.loop_a)] {
            let s = stat(port)?;
            if s.status != EvtchnStat::Interdomain as u32
                || s.u[0] & 0xffff != u32::from(f.domid)
                || s.u[1] != peer.0
            {
                return Err(("a loopback port changed", port.0.into()));
            }
        }
        let s = stat(f.ipi)?;
        if s.status != EvtchnStat::Ipi as u32 {
            return Err(("the IPI port changed", s.status.into()));
        }
        let pending = |port| events::take_pending(port).map_err(|e| ("shared info", e.to_ret()));
        for port in [f.unbound, f.ipi] {
            if pending(port)? {
                return Err(("an event reached a port nobody may signal", port.0.into()));
            }
        }
        for (from, to) in [(f.loop_a, f.loop_b), (f.loop_b, f.loop_a)] {
            pending(to)?;
            hypercall::evtchn_send(from.0)
                .map_err(|e| ("EVTCHNOP_send on loopback", e.to_ret()))?;
            if !pending(to)? {
                return Err(("the loopback channel lost an event", to.0.into()));
            }
        }
        Ok(())
    }

    /// The port the toolstack allocated in this domain for the attacker: unbound for, or
    /// bound to, a domain other than dom0 and ourselves.
    fn peer_port(f: &Facts) -> Result<Option<EvtchnPort>, Failure> {
        for port in (1..).map(EvtchnPort) {
            let s = match events::status(port) {
                Ok(s) => s,
                Err(XenError::Inval) => return Ok(None),
                Err(e) => return Err(("EVTCHNOP_status", e.to_ret())),
            };
            let peer = s.u[0] & 0xffff;
            let linked = s.status == EvtchnStat::Unbound as u32
                || s.status == EvtchnStat::Interdomain as u32;
            if linked && peer != 0 && peer != u32::from(f.domid) {
                return Ok(Some(port));
            }
        }
        Ok(None)
    }

    /// Checks every [`PERIOD_NS`] until the attacker's event; the number of checks.
    fn watch(f: &Facts, limit_s: u64) -> Result<u64, Failure> {
        let now = || events::now_ns().map_err(|e| ("pvclock", e.to_ret()));
        let give_up = now()? + limit_s * 1_000_000_000;
        let mut peer = None;
        let mut checks = 0u64;
        loop {
            check(f)?;
            checks += 1;
            if peer.is_none() {
                peer = peer_port(f)?;
                if let Some(p) = peer {
                    println!("victim: port {} is for the attacker", p.0);
                }
            }
            let t = now()?;
            if t >= give_up {
                return Err(("no event from the attacker (seconds)", limit_s as i64));
            }
            // Between looks, sleep on the attacker's port, or on the IPI port (nothing may
            // signal it: `check` says so if something did).
            let port = peer.unwrap_or(f.ipi);
            let fired = events::wait_until(port, t + PERIOD_NS)
                .map_err(|e| ("SCHEDOP_poll", e.to_ret()))?;
            if fired && peer.is_some() {
                check(f)?;
                return Ok(checks + 1);
            }
            if fired {
                return Err(("an event reached a port nobody may signal", port.0.into()));
            }
        }
    }

    /// The start info page.
    fn si() -> &'static StartInfo {
        guest_abi::runtime::start_info()
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
