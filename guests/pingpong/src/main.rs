//! `pingpong`: two PV guests that exchange events over an interdomain event channel which
//! the toolstack sets up (there is no xenstore to publish one), as a test of the toolstack
//! and of event channels between domUs. Runs on our hypervisor and on Xen alike.
//!
//! The command line says the role:
//! - `role=ping [count=N]`: waits for a port the toolstack allocates in this domain for a
//!   peer (`EVTCHNOP_alloc_unbound` by dom0 on our behalf; we find it with
//!   `EVTCHNOP_status`: the one port unbound for, or bound to, a domain other than dom0),
//!   waits for the peer's first event ("ready"), then sends N pings, each answered before
//!   the next, and prints `ping: got pong N/N`;
//! - `role=pong remote=DOMID port=PORT [count=N]`: binds to `PORT` of `DOMID` with
//!   `EVTCHNOP_bind_interdomain` (the toolstack appends `remote=` and `port=` when the
//!   domain's configuration says `evtchn_peer = "NAME"`), sends "ready", answers N pings
//!   and prints `pong: answered N pings`.
//!
//! Then a grant (`grant`): ping grants pong a page, pong maps it and copies it and prints
//! `pong: mapped and copied grant 8 of domain D`, ping prints `ping: grant 8 in use by the
//! peer`, pong powers off with the page still mapped, and once it is gone ping prints
//! `ping: grant 8 released after the peer went away`.
//!
//! Both then power off. N is 10 by default. Events stay masked: each side waits with
//! `SCHEDOP_poll` on its port and clears the pending bit itself. A missing peer or event
//! (10 s) is reported and the domain crashes.
//!
//! Safety: guest-abi's runtime assumptions hold; `unsafe` only in `grant`, for the hypercalls
//! that map pages and the reads of the page tables and grant table it sets up.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod grant;

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::event_channel::{
        EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnStat, EvtchnStatus,
    };
    use guest_abi::runtime::{cmdline_words, events, hypercall};
    use guest_abi::sched::ShutdownReason;
    use guest_abi::xen::StartInfo;
    use guest_abi::{DomId, EvtchnPort, XenError, println};

    /// Round trips when the command line does not say.
    const DEFAULT_COUNT: u32 = 10;
    /// How long to wait for the peer, or for any one event.
    const PATIENCE_NS: u64 = 10_000_000_000;
    /// How often ping looks for its port while waiting for it.
    const SCAN_NS: u64 = 10_000_000;

    guest_abi::pv_guest!("pingpong", main);

    use crate::grant::Failure;

    fn main(_: &'static StartInfo) {
        let arg = |key: &str| {
            cmdline_words()
                .filter_map(|w| core::str::from_utf8(w).ok())
                .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        };
        let number = |key: &str| arg(key).and_then(|v| v.parse::<u32>().ok());
        let count = number("count").unwrap_or(DEFAULT_COUNT);
        let result = match (arg("role"), number("remote"), number("port")) {
            (Some("ping"), _, _) => ping(count),
            (Some("pong"), Some(remote), Some(port)) => match u16::try_from(remote) {
                Ok(remote) => pong(DomId(remote), EvtchnPort(port), count),
                Err(_) => Err(("remote= is not a domain id", XenError::Inval)),
            },
            (Some("pong"), ..) => Err(("pong needs remote=DOMID port=PORT", XenError::Inval)),
            _ => Err(("no role=ping or role=pong", XenError::Inval)),
        };
        if let Err((what, error)) = result {
            println!("pingpong: {what}: {error}");
            hypercall::shutdown(ShutdownReason::Crash)
        }
    }

    /// Waits for one event on `port`, for at most [`PATIENCE_NS`].
    fn receive(port: EvtchnPort, what: &'static str) -> Result<(), Failure> {
        let deadline = events::now_ns().map_err(|e| ("pvclock", e))? + PATIENCE_NS;
        match events::wait_until(port, deadline) {
            Ok(true) => Ok(()),
            Ok(false) => Err((what, XenError::TimedOut)),
            Err(e) => Err(("SCHEDOP_poll", e)),
        }
    }

    fn send(port: EvtchnPort) -> Result<(), Failure> {
        hypercall::evtchn_send(port.0)
            .map(drop)
            .map_err(|e| ("EVTCHNOP_send", e))
    }

    /// The port the toolstack offered this domain for a peer: unbound for, or already
    /// bound to, a domain other than dom0 (whose ports here are the console's). `skip` is
    /// our own port.
    fn offered_port(skip: EvtchnPort) -> Result<Option<(EvtchnPort, EvtchnStatus)>, Failure> {
        for port in (1..).map(EvtchnPort) {
            if port == skip {
                continue;
            }
            let s = match events::status(port) {
                Ok(s) => s,
                // Beyond the ports the domain has: no more to look at.
                Err(XenError::Inval) => return Ok(None),
                Err(e) => return Err(("EVTCHNOP_status", e)),
            };
            let peer = s.u[0] & 0xffff;
            let linked = s.status == EvtchnStat::Unbound as u32
                || s.status == EvtchnStat::Interdomain as u32;
            if linked && peer != 0 {
                return Ok(Some((port, s)));
            }
        }
        Ok(None)
    }

    fn ping(count: u32) -> Result<(), Failure> {
        // A port of our own to sleep on between looks (nothing signals it).
        let mut own = EvtchnAllocUnbound {
            dom: DomId::SELF.0,
            remote_dom: DomId::SELF.0,
            port: 0,
        };
        hypercall::event_channel_op(&mut own).map_err(|e| ("EVTCHNOP_alloc_unbound", e))?;
        let own = EvtchnPort(own.port);
        println!("ping: waiting for a peer");
        let give_up = events::now_ns().map_err(|e| ("pvclock", e))? + 6 * PATIENCE_NS;
        let (port, found) = loop {
            if let Some(found) = offered_port(own)? {
                break found;
            }
            let now = events::now_ns().map_err(|e| ("pvclock", e))?;
            if now >= give_up {
                return Err(("no port offered for a peer", XenError::TimedOut));
            }
            events::wait_until(own, now + SCAN_NS).map_err(|e| ("SCHEDOP_poll", e))?;
        };
        println!(
            "ping: port {} is for domain {}",
            port.0,
            found.u[0] & 0xffff
        );
        receive(port, "no ready from the peer")?;
        let mut got = 0;
        for _ in 0..count {
            send(port)?;
            receive(port, "a ping was not answered")?;
            got += 1;
        }
        println!("ping: got pong {got}/{count}");
        let table = crate::grant::offer((found.u[0] & 0xffff) as u16)?;
        send(port)?;
        receive(port, "the peer did not take the grant")?;
        if !crate::grant::in_use(table) {
            return Err(("the grant is not marked in use", XenError::Inval));
        }
        println!("ping: grant {} in use by the peer", crate::grant::GREF);
        send(port)?;
        let give_up = events::now_ns().map_err(|e| ("pvclock", e))? + PATIENCE_NS;
        while crate::grant::in_use(table) {
            let now = events::now_ns().map_err(|e| ("pvclock", e))?;
            if now >= give_up {
                return Err(("the grant stayed in use after the peer", XenError::TimedOut));
            }
            events::wait_until(own, now + SCAN_NS).map_err(|e| ("SCHEDOP_poll", e))?;
        }
        println!(
            "ping: grant {} released after the peer went away",
            crate::grant::GREF
        );
        Ok(())
    }

    fn pong(remote: DomId, remote_port: EvtchnPort, count: u32) -> Result<(), Failure> {
        let mut bind = EvtchnBindInterdomain {
            remote_dom: remote.0,
            remote_port: remote_port.0,
            ..EvtchnBindInterdomain::default()
        };
        hypercall::event_channel_op(&mut bind).map_err(|e| ("EVTCHNOP_bind_interdomain", e))?;
        let port = EvtchnPort(bind.local_port);
        println!(
            "pong: port {} bound to port {} of domain {}",
            port.0, remote_port.0, remote.0
        );
        // Binding sets our new port pending (Xen does, for events sent before the bind):
        // that one is no ping.
        events::take_pending(port).map_err(|e| ("shared info", e))?;
        send(port)?;
        let mut answered = 0;
        for _ in 0..count {
            receive(port, "a ping did not come")?;
            send(port)?;
            answered += 1;
        }
        println!("pong: answered {answered} pings");
        receive(port, "no grant from the peer")?;
        crate::grant::take(remote)?;
        println!(
            "pong: mapped and copied grant {} of domain {}",
            crate::grant::GREF,
            remote.0
        );
        send(port)?;
        // Powers off with the grant still mapped: the hypervisor must let it go.
        receive(port, "no word from the peer after the grant")?;
        Ok(())
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
