//! `event.*`: event channels and their delivery. A loopback channel (a port allocated
//! for ourselves and bound to by ourselves), upcalls to the callback in [`upcall`] with
//! the right port, masking in shared info and `EVTCHNOP_unmask`, `SCHEDOP_poll`, port
//! status, and the errors for bad ports, double binds and double closes.

use guest_abi::arch::FLAT_KERNEL_CS;
use guest_abi::event_channel::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVirq, EvtchnOp, EvtchnStat,
    EvtchnStatus,
};
use guest_abi::hypercall::{HYPERCALL_STUB_SIZE, Hypercall};
use guest_abi::runtime::hypercall::{self, call, event_channel_op, evtchn_port_op};
use guest_abi::sched::{SchedOp, SchedPoll};
use guest_abi::xen::Virq;
use guest_abi::{DomId, EvtchnPort, XenError, println};

use crate::check::{Report, Why, ensure, eq, ok};
use crate::exceptions::IF;
use crate::upcall::{self, Seen, events_off, events_on, hits, now};

/// A port beyond the 2-level ABI's 4096.
pub const BAD_PORT: u32 = 5000;
/// A domain that does not exist.
const NO_DOMAIN: u16 = 100;
/// How long a poll that should return at once may take (ns): generous for TCG.
pub const PROMPT_NS: u64 = 50_000_000;
/// How early a timeout may end: Xen runs timers that expire within `timer_slop` (50 µs by
/// default) of now.
pub const SLOP_NS: u64 = 50_000;

/// `EVTCHNOP_alloc_unbound(DOMID_SELF, remote)`: the new port.
pub fn alloc_unbound(dom: DomId, remote: DomId) -> Result<EvtchnPort, XenError> {
    let mut arg = EvtchnAllocUnbound {
        dom: dom.0,
        remote_dom: remote.0,
        port: 0,
    };
    event_channel_op(&mut arg).map(|_| EvtchnPort(arg.port))
}

/// `EVTCHNOP_bind_interdomain(remote, port)`: the local port.
pub fn bind_interdomain(remote: DomId, port: EvtchnPort) -> Result<EvtchnPort, XenError> {
    let mut arg = EvtchnBindInterdomain {
        remote_dom: remote.0,
        _hole: 0,
        remote_port: port.0,
        local_port: 0,
    };
    event_channel_op(&mut arg).map(|_| EvtchnPort(arg.local_port))
}

/// `EVTCHNOP_bind_virq(virq, vcpu)`: the new port.
pub fn bind_virq(virq: u32, vcpu: u32) -> Result<EvtchnPort, XenError> {
    let mut arg = EvtchnBindVirq {
        virq,
        vcpu,
        port: 0,
    };
    event_channel_op(&mut arg).map(|_| EvtchnPort(arg.port))
}

/// `EVTCHNOP_status(DOMID_SELF, port)`.
pub fn status(port: u32) -> Result<EvtchnStatus, XenError> {
    let mut arg = EvtchnStatus {
        dom: DomId::SELF.0,
        port,
        ..Default::default()
    };
    event_channel_op(&mut arg).map(|_| arg)
}

/// `EVTCHNOP_send`.
pub fn send(port: u32) -> Result<u64, XenError> {
    hypercall::evtchn_send(port)
}

/// `EVTCHNOP_close`.
pub fn close(port: u32) -> Result<u64, XenError> {
    evtchn_port_op(EvtchnOp::Close, port)
}

/// `EVTCHNOP_unmask`.
pub fn unmask(port: u32) -> Result<u64, XenError> {
    evtchn_port_op(EvtchnOp::Unmask, port)
}

/// `SCHEDOP_poll` on `ports` until system time `timeout` (0: none).
pub fn poll(ports: &[u32], timeout: u64) -> Result<u64, XenError> {
    let mut arg = SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: ports.len() as u32,
        _hole: 0,
        timeout,
    };
    // SAFETY: `arg` and the ports it points to are valid for the call; the hypervisor
    // only reads them.
    unsafe {
        call(
            Hypercall::SchedOp,
            [SchedOp::Poll as u64, &raw mut arg as u64, 0, 0, 0],
        )
    }
}

/// Guest system time; 0 if shared info is not mapped (the checks then fail on their own).
pub fn time() -> u64 {
    now().unwrap_or(0)
}

/// The frame of an upcall that interrupted the return from hypercall `op` in the guest
/// kernel with events on: the stub's `rip`, kernel CS, saved mask 0, IF set, and events
/// masked inside the handler.
fn upcall_frame(s: &Seen, op: Hypercall) -> Result<(), Why> {
    let stub = guest_abi::runtime::hypercall_page as *const () as u64 + op.stub_offset() as u64;
    ensure(
        (stub..stub + HYPERCALL_STUB_SIZE as u64).contains(&s.rip),
        "rip is not in the hypercall's stub",
    )?;
    eq("cs", s.cs & 0xffff, u64::from(FLAT_KERNEL_CS & !3))?;
    eq("saved upcall mask (cs bits 32-39)", (s.cs >> 32) & 0xff, 0)?;
    eq("rflags.IF", s.rflags & IF, IF)?;
    eq("evtchn_upcall_mask in the handler", s.mask, 1)
}

/// `after - before` upcalls on `port`, or the difference.
fn upcalls(what: &'static str, port: EvtchnPort, before: u32, want: u32) -> Result<(), Why> {
    eq(what, u64::from(hits(port) - before), u64::from(want))
}

pub fn run(r: &mut Report) -> Option<()> {
    let reg = upcall::register();
    r.check_eq("event.callback_op register event (upcall stub)", reg, Ok(0));
    if reg.is_err() || now().is_none() {
        r.fail(
            "event.upcalls",
            format_args!("not run: no callback or no shared info"),
        );
        return None;
    }

    // A loopback channel: p1 waits for ourselves, p2 is bound to it.
    let p1 = alloc_unbound(DomId::SELF, DomId::SELF);
    r.check(
        "event.alloc_unbound DOMID_SELF for DOMID_SELF",
        ok("alloc_unbound", p1.map(|p| u64::from(p.0)))
            .and_then(|p| ensure(p > 0 && p < 4096, "port 0 or out of range")),
    );
    let p1 = p1.ok()?;
    let p2 = bind_interdomain(DomId::SELF, p1);
    r.check(
        "event.bind_interdomain to its own unbound port",
        ok("bind_interdomain", p2.map(|p| u64::from(p.0))).and_then(|p| {
            ensure(
                p != u64::from(p1.0) && p > 0,
                "same port as the unbound one",
            )
        }),
    );
    let p2 = p2.ok()?;
    println!("selftest: loopback ports {} and {}", p1.0, p2.0);
    r.check(
        "event.bind_interdomain sets the new port pending, events masked: no upcall",
        ensure(upcall::pending(p2), "not pending")
            .and_then(|_| eq("upcalls", upcall::seen().count, 0)),
    );

    let before = hits(p2);
    events_on();
    r.check(
        "event.unmasking events delivers the pending port",
        upcalls("upcalls on the bound port", p2, before, 1)
            .and_then(|_| ensure(!upcall::pending(p2), "still pending")),
    );

    let before = hits(p2);
    let sent = send(p1.0);
    let s = upcall::seen();
    r.check(
        "event.send on the loopback port: upcall with the other port",
        ok("send", sent)
            .and_then(|_| upcalls("upcalls on the peer port", p2, before, 1))
            .and_then(|_| eq("last port", s.last_port, p2.0.into())),
    );
    r.check(
        "event.upcall frame (stub rip, kernel CS, mask saved 0, IF set, masked inside)",
        upcall_frame(&s, Hypercall::EventChannelOp),
    );
    r.check(
        "event.events unmasked again after the upcall's iret",
        ensure(!upcall::masked(), "evtchn_upcall_mask is 1"),
    );
    let before = hits(p1);
    let sent = send(p2.0);
    r.check(
        "event.send on the bound port: upcall with the unbound-side port",
        ok("send", sent).and_then(|_| upcalls("upcalls", p1, before, 1)),
    );

    // Masking in shared info, then EVTCHNOP_unmask.
    upcall::set_mask(p2, true);
    let before = hits(p2);
    let sent = send(p1.0);
    r.check(
        "event.masked port: send sets it pending, no upcall",
        ok("send", sent)
            .and_then(|_| upcalls("upcalls", p2, before, 0))
            .and_then(|_| ensure(upcall::pending(p2), "not pending")),
    );
    let res = unmask(p2.0);
    r.check(
        "event.EVTCHNOP_unmask redelivers the pending port",
        ok("unmask", res)
            .and_then(|_| ensure(!upcall::is_masked(p2), "still masked"))
            .and_then(|_| upcalls("upcalls", p2, before, 1)),
    );

    // An IPI to ourselves.
    let mut ipi = EvtchnBindIpi { vcpu: 0, port: 0 };
    let res = event_channel_op(&mut ipi);
    let before = hits(EvtchnPort(ipi.port));
    let sent = res.and_then(|_| send(ipi.port));
    r.check(
        "event.bind_ipi vCPU 0, send: upcall with the IPI port",
        ok("bind_ipi/send", sent)
            .and_then(|_| upcalls("upcalls", EvtchnPort(ipi.port), before, 1))
            .and_then(|_| ok("close", close(ipi.port)).map(drop)),
    );
    events_off();

    poll_checks(r, p1, p2);
    bad_input(r, p1, p2);
    Some(())
}

/// `SCHEDOP_poll` with events masked.
fn poll_checks(r: &mut Report, p1: EvtchnPort, p2: EvtchnPort) {
    let sent = send(p1.0);
    let t0 = time();
    let res = poll(&[p2.0], t0 + 1_000_000_000);
    let t1 = time();
    r.check(
        "event.SCHEDOP_poll on a pending port returns at once",
        ok("send", sent)
            .and_then(|_| ok("poll", res))
            .and_then(|_| ensure(t1 - t0 < PROMPT_NS, "took more than 50 ms"))
            .and_then(|_| ensure(upcall::pending(p2), "the port is no longer pending")),
    );
    let before = hits(p2);
    events_on();
    events_off();
    r.check(
        "event.the polled port's upcall after unmasking events",
        upcalls("upcalls", p2, before, 1),
    );

    let t0 = time();
    let deadline = t0 + 20_000_000;
    let res = poll(&[p2.0], deadline);
    let t1 = time();
    println!(
        "selftest: poll timeout: {} ns after the deadline",
        t1 as i64 - deadline as i64
    );
    r.check(
        "event.SCHEDOP_poll times out (20 ms)",
        ok("poll", res)
            .and_then(|_| ensure(t1 + SLOP_NS >= deadline, "returned before the deadline"))
            .and_then(|_| ensure(t1 - deadline < 500_000_000, "returned 500 ms late"))
            .and_then(|_| ensure(!upcall::pending(p2), "the port became pending")),
    );
    let t0 = time();
    let res = poll(&[p2.0], 1);
    let t1 = time();
    r.check(
        "event.SCHEDOP_poll with a timeout in the past returns at once",
        ok("poll", res).and_then(|_| ensure(t1 - t0 < PROMPT_NS, "took more than 50 ms")),
    );
    r.check_eq(
        "event.SCHEDOP_poll on port 5000",
        poll(&[p2.0, BAD_PORT], 1),
        Err(XenError::Inval),
    );
    let many = [p2.0; 129];
    r.check_eq(
        "event.SCHEDOP_poll on 129 ports",
        poll(&many, 1),
        Err(XenError::Inval),
    );
}

/// Status, bad ports and domains, and closing twice.
fn bad_input(r: &mut Report, p1: EvtchnPort, p2: EvtchnPort) {
    let st = status(p1.0);
    r.check(
        "event.status of the loopback port",
        ok("status", st.map(|s| s.status.into())).and_then(|s| {
            let st = st.unwrap_or_default();
            eq("status", s, EvtchnStat::Interdomain as u64)
                .and_then(|_| eq("vcpu", st.vcpu.into(), 0))
                .and_then(|_| eq("remote dom (ours: 0)", (st.u[0] & 0xffff).into(), 0))
                .and_then(|_| eq("remote port", st.u[1].into(), p2.0.into()))
        }),
    );
    let free = p1.0.max(p2.0) + 10;
    r.check_eq(
        "event.status of a free port",
        status(free).map(|s| s.status),
        Ok(EvtchnStat::Closed as u32),
    );
    r.check_eq(
        "event.status of port 5000",
        status(BAD_PORT).map(|s| s.status),
        Err(XenError::Inval),
    );
    type Answer = Result<u64, XenError>;
    let results: [(&str, Answer, Answer); 6] = [
        (
            "event.send on port 5000",
            send(BAD_PORT),
            Err(XenError::Inval),
        ),
        (
            "event.send on a free port",
            send(free),
            Err(XenError::Inval),
        ),
        (
            "event.unmask port 5000",
            unmask(BAD_PORT),
            Err(XenError::Inval),
        ),
        ("event.unmask a free port", unmask(free), Ok(0)),
        (
            "event.close port 0 (reserved)",
            close(0),
            Err(XenError::Inval),
        ),
        (
            "event.close port 5000",
            close(BAD_PORT),
            Err(XenError::Inval),
        ),
    ];
    for (name, got, want) in results {
        r.check_eq(name, got, want);
    }
    r.check_eq(
        "event.alloc_unbound for a domain that does not exist",
        alloc_unbound(DomId(NO_DOMAIN), DomId::SELF).map(|p| p.0),
        Err(XenError::Srch),
    );
    r.check_eq(
        "event.bind_interdomain to a port that is not unbound",
        bind_interdomain(DomId::SELF, p2).map(|p| p.0),
        Err(XenError::Inval),
    );
    r.check_eq(
        "event.bind_virq 24 (no such VIRQ)",
        bind_virq(24, 0).map(|p| p.0),
        Err(XenError::Inval),
    );
    r.check_eq(
        "event.bind_virq VIRQ_TIMER on vCPU 1 (none)",
        bind_virq(Virq::Timer as u32, 1).map(|p| p.0),
        Err(XenError::NoEnt),
    );
    r.check_eq(
        "event.bind_virq global VIRQ_DOM_EXC on vCPU 1",
        bind_virq(Virq::DomExc as u32, 1).map(|p| p.0),
        Err(XenError::Inval),
    );

    r.check_eq("event.close the unbound-side port", close(p1.0), Ok(0));
    r.check_eq("event.close it again", close(p1.0), Err(XenError::Inval));
    r.check_eq(
        "event.send on the closed port",
        send(p1.0),
        Err(XenError::Inval),
    );
    let st = status(p2.0);
    r.check(
        "event.the peer of a closed port is unbound, for ourselves",
        ok("status", st.map(|s| s.status.into())).and_then(|s| {
            eq("status", s, EvtchnStat::Unbound as u64).and_then(|_| {
                eq(
                    "remote dom",
                    (st.unwrap_or_default().u[0] & 0xffff).into(),
                    0,
                )
            })
        }),
    );
    let before = hits(p2);
    r.check(
        "event.send on an unbound port is dropped",
        ok("send", send(p2.0))
            .and_then(|_| ensure(!upcall::pending(p2), "pending"))
            .and_then(|_| upcalls("upcalls", p2, before, 0)),
    );
    r.check_eq("event.close the peer port", close(p2.0), Ok(0));
    r.check_eq(
        "event.close the peer port again",
        close(p2.0),
        Err(XenError::Inval),
    );
}
