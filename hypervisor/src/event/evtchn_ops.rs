//! The `EVTCHNOP_*` operations and VIRQ delivery, over a registry of domains.
//!
//! Each function is one hypercall sub-operation after the dispatcher has copied its argument
//! in (a failed copy is `-EFAULT` there) and before it copies results out. They follow Xen's
//! `event_channel.c` (4.17) check for check and in the same order, so that a guest sees the
//! same errno for the same mistake.

use super::abi::{DomId, EvtchnPort, VcpuId, Virq};
use super::channel::{ChannelState, ChannelStore, EventChannels, VcpuSet};
use super::error::EvtchnError;
use super::shared::{self, SharedInfoView};

/// One domain's event state as the registry lends it: its port table and its shared_info.
pub struct DomainEvents<'a, T, S: ?Sized> {
    /// The domain's ports, VIRQ bindings and pollers.
    pub channels: &'a mut EventChannels<T>,
    /// The domain's shared_info page.
    pub shared: &'a S,
}

/// The domains that exist, as event channels see them. The hypervisor implements it over its
/// domain list; host tests over a few fake domains.
///
/// Locking: an operation looks up at most two domains, one at a time. The caller of any
/// function in this module must hold, for its whole duration, the event locks of the calling
/// domain and of any domain it names (Xen takes them in order of domain address; we use
/// domain id), or simply one global event lock.
pub trait Domains {
    /// EvtchnPort table storage.
    type Store: ChannelStore;
    /// shared_info access.
    type Shared: SharedInfoView + ?Sized;

    /// The event state of domain `id`, if it exists (`DOMID_SELF` is resolved before this is
    /// called, so it never names a real domain here).
    fn events(&mut self, id: DomId) -> Option<DomainEvents<'_, Self::Store, Self::Shared>>;
}

/// Who is making the hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The calling domain.
    pub domain: DomId,
    /// The control domain's (dom0's) privilege, which lets it act on any domain where Xen's
    /// XSM policy says `XSM_TARGET`.
    pub privilege: Option<crate::privilege::Privilege>,
}

impl Caller {
    /// Xen's default `XSM_TARGET` check: a domain may act on itself; dom0 on anyone.
    fn may_target(self, target: DomId) -> Result<(), EvtchnError> {
        if self.privilege.is_some() || self.domain == target {
            Ok(())
        } else {
            Err(EvtchnError::NotPermitted)
        }
    }
}

/// vCPUs of one domain that an operation made runnable-worthy: each must be kicked (unblocked
/// if blocked, and interrupted if running on another CPU so that it takes its upcall).
#[must_use = "kicked vCPUs must be woken"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wake {
    /// The domain of the vCPUs.
    pub domain: DomId,
    /// The vCPUs to kick.
    pub vcpus: VcpuSet,
}

impl Wake {
    /// Nobody to kick.
    pub const fn none(domain: DomId) -> Self {
        Self {
            domain,
            vcpus: VcpuSet::EMPTY,
        }
    }

    /// Whether nobody needs a kick.
    pub const fn is_empty(&self) -> bool {
        self.vcpus.is_empty()
    }
}

/// `EVTCHNOP_status` result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// What the port is.
    pub state: StatusState,
    /// The vCPU the port notifies.
    pub vcpu: VcpuId,
}

/// `evtchn_status.status` and its union.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusState {
    /// `EVTCHNSTAT_closed` (free or reserved).
    Closed,
    /// `EVTCHNSTAT_unbound`, waiting for `dom`.
    Unbound {
        /// The domain allowed to bind.
        dom: DomId,
    },
    /// `EVTCHNSTAT_interdomain`, connected to `port` of `dom`.
    Interdomain {
        /// The other end's domain.
        dom: DomId,
        /// The other end's port.
        port: EvtchnPort,
    },
    /// `EVTCHNSTAT_pirq`.
    Pirq(u32),
    /// `EVTCHNSTAT_virq`.
    Virq(Virq),
    /// `EVTCHNSTAT_ipi`.
    Ipi,
}

impl StatusState {
    /// The `EVTCHNSTAT_*` number.
    pub const fn code(self) -> u32 {
        use super::abi::evtchnstat;
        match self {
            Self::Closed => evtchnstat::CLOSED,
            Self::Unbound { .. } => evtchnstat::UNBOUND,
            Self::Interdomain { .. } => evtchnstat::INTERDOMAIN,
            Self::Pirq(_) => evtchnstat::PIRQ,
            Self::Virq(_) => evtchnstat::VIRQ,
            Self::Ipi => evtchnstat::IPI,
        }
    }
}

type Events<'a, D> = DomainEvents<'a, <D as Domains>::Store, <D as Domains>::Shared>;

/// Domain `id`'s event state, or `-ESRCH`.
fn lookup<D: Domains>(doms: &mut D, id: DomId) -> Result<Events<'_, D>, EvtchnError> {
    doms.events(id).ok_or(EvtchnError::NoSuchDomain(id))
}

/// `EVTCHNOP_alloc_unbound`: a fresh port in `dom` that only `remote_dom` may bind to.
/// `remote_dom` is not checked for existence (Xen does not either).
pub fn alloc_unbound<D: Domains>(
    doms: &mut D,
    caller: Caller,
    dom: DomId,
    remote_dom: DomId,
) -> Result<EvtchnPort, EvtchnError> {
    let dom = dom.or_self(caller.domain);
    let ev = lookup(doms, dom)?;
    let port = ev.channels.find_free_port()?;
    caller.may_target(dom)?;
    let remote = remote_dom.or_self(caller.domain);
    ev.channels
        .bind(port, ChannelState::Unbound { remote }, VcpuId(0));
    Ok(port)
}

/// `EVTCHNOP_bind_interdomain`: connects a fresh local port to `remote_port` of `remote_dom`,
/// which must be unbound and waiting for the caller (possibly the caller itself: loopback).
/// The local port is set pending, in case the remote end signalled before the binding.
pub fn bind_interdomain<D: Domains>(
    doms: &mut D,
    caller: Caller,
    remote_dom: DomId,
    remote_port: EvtchnPort,
) -> Result<(EvtchnPort, Wake), EvtchnError> {
    let ld = caller.domain;
    let rd = remote_dom.or_self(ld);
    lookup(doms, rd)?;
    let lport = lookup(doms, ld)?.channels.find_free_port()?;
    let remote = lookup(doms, rd)?;
    match remote.channels.channel(remote_port)?.state {
        ChannelState::Unbound { remote } if remote == ld => {}
        _ => {
            return Err(EvtchnError::NotUnboundForUs {
                dom: rd,
                port: remote_port,
            });
        }
    }
    remote.channels.set_state(
        remote_port,
        ChannelState::Interdomain {
            remote: ld,
            remote_port: lport,
        },
    );
    let local = lookup(doms, ld)?;
    let state = ChannelState::Interdomain {
        remote: rd,
        remote_port,
    };
    local.channels.bind(lport, state, VcpuId(0));
    let vcpus = local.channels.set_pending(local.shared, VcpuId(0), lport);
    Ok((lport, Wake { domain: ld, vcpus }))
}

/// `EVTCHNOP_bind_virq`: a fresh port for VIRQ number `virq` on `vcpu` (vCPU 0 for global
/// VIRQs). Each VIRQ binds at most once per vCPU.
pub fn bind_virq<D: Domains>(
    doms: &mut D,
    caller: Caller,
    virq: u32,
    vcpu: VcpuId,
) -> Result<EvtchnPort, EvtchnError> {
    let virq = Virq::new(virq).ok_or(EvtchnError::InvalidVirq(virq))?;
    if virq.is_global() && vcpu != VcpuId(0) {
        return Err(EvtchnError::GlobalVirqOffVcpu0);
    }
    let ev = lookup(doms, caller.domain)?;
    ev.channels.check_vcpu(vcpu)?;
    if ev.channels.virq_port(vcpu, virq).is_some() {
        return Err(EvtchnError::VirqBound);
    }
    let port = ev.channels.find_free_port()?;
    ev.channels.bind(port, ChannelState::Virq(virq), vcpu);
    Ok(port)
}

/// `EVTCHNOP_bind_ipi`: a fresh port that `EVTCHNOP_send` raises on `vcpu` of the caller.
pub fn bind_ipi<D: Domains>(
    doms: &mut D,
    caller: Caller,
    vcpu: VcpuId,
) -> Result<EvtchnPort, EvtchnError> {
    let ev = lookup(doms, caller.domain)?;
    ev.channels.check_vcpu(vcpu)?;
    let port = ev.channels.find_free_port()?;
    ev.channels.bind(port, ChannelState::Ipi, vcpu);
    Ok(port)
}

/// `EVTCHNOP_bind_pirq`: no domain has access to physical IRQs here (Xen answers `-EPERM`
/// to a domain without IRQ permissions).
pub fn bind_pirq<D: Domains>(
    _doms: &mut D,
    _caller: Caller,
    _pirq: u32,
) -> Result<EvtchnPort, EvtchnError> {
    Err(EvtchnError::PirqUnsupported)
}

/// `EVTCHNOP_close`: frees `port` of the caller. The other end of an interdomain channel goes
/// back to `Unbound`, waiting for the caller's domain again (Xen's defined state).
pub fn close<D: Domains>(
    doms: &mut D,
    caller: Caller,
    port: EvtchnPort,
) -> Result<(), EvtchnError> {
    close_port(doms, caller.domain, port)
}

/// Xen's `evtchn_close` on domain `d1`.
fn close_port<D: Domains>(doms: &mut D, d1: DomId, port: EvtchnPort) -> Result<(), EvtchnError> {
    let state = lookup(doms, d1)?.channels.channel(port)?.state;
    match state {
        ChannelState::Free | ChannelState::Reserved => return Err(EvtchnError::WrongState(port)),
        ChannelState::Interdomain {
            remote,
            remote_port,
        } => {
            // If the peer was removed without `close_all` there is nothing to update.
            if let Some(r) = doms.events(remote) {
                debug_assert_eq!(
                    r.channels.channel(remote_port).map(|c| c.state),
                    Ok(ChannelState::Interdomain {
                        remote: d1,
                        remote_port: port
                    }),
                    "interdomain ends point at each other"
                );
                r.channels
                    .set_state(remote_port, ChannelState::Unbound { remote: d1 });
            }
        }
        ChannelState::Unbound { .. }
        | ChannelState::Virq(_)
        | ChannelState::Ipi
        | ChannelState::Pirq(_) => {}
    }
    let ev = lookup(doms, d1)?;
    ev.channels.free(ev.shared, port);
    Ok(())
}

/// `EVTCHNOP_send`: raises the other end of an interdomain channel, or the bound vCPU of an
/// IPI port. Sending on an unbound port is silently dropped. The hot path: two table look-ups
/// and the 2-level bit operations, no allocation.
pub fn send<D: Domains>(
    doms: &mut D,
    caller: Caller,
    port: EvtchnPort,
) -> Result<Wake, EvtchnError> {
    let local = lookup(doms, caller.domain)?;
    let ch = local.channels.channel(port)?;
    match ch.state {
        ChannelState::Interdomain {
            remote,
            remote_port,
        } => {
            let Some(r) = doms.events(remote) else {
                // The peer was removed without `close_all`: the event has nowhere to go.
                return Ok(Wake::none(remote));
            };
            let notify = r.channels.channel(remote_port)?.notify_vcpu;
            let vcpus = r.channels.set_pending(r.shared, notify, remote_port);
            Ok(Wake {
                domain: remote,
                vcpus,
            })
        }
        ChannelState::Ipi => {
            let vcpus = local
                .channels
                .set_pending(local.shared, ch.notify_vcpu, port);
            Ok(Wake {
                domain: caller.domain,
                vcpus,
            })
        }
        ChannelState::Unbound { .. } => Ok(Wake::none(caller.domain)),
        ChannelState::Free
        | ChannelState::Reserved
        | ChannelState::Virq(_)
        | ChannelState::Pirq(_) => Err(EvtchnError::WrongState(port)),
    }
}

/// `EVTCHNOP_status` of `port` in `dom` (the caller, or any domain for dom0).
pub fn status<D: Domains>(
    doms: &mut D,
    caller: Caller,
    dom: DomId,
    port: EvtchnPort,
) -> Result<Status, EvtchnError> {
    let dom = dom.or_self(caller.domain);
    let ch = lookup(doms, dom)?.channels.channel(port)?;
    caller.may_target(dom)?;
    let state = match ch.state {
        ChannelState::Free | ChannelState::Reserved => StatusState::Closed,
        ChannelState::Unbound { remote } => StatusState::Unbound { dom: remote },
        ChannelState::Interdomain {
            remote,
            remote_port,
        } => StatusState::Interdomain {
            dom: remote,
            port: remote_port,
        },
        ChannelState::Virq(v) => StatusState::Virq(v),
        ChannelState::Ipi => StatusState::Ipi,
        ChannelState::Pirq(p) => StatusState::Pirq(p),
    };
    Ok(Status {
        state,
        vcpu: ch.notify_vcpu,
    })
}

/// `EVTCHNOP_bind_vcpu`: moves the notifications of `port` to `vcpu`. Allowed for unbound,
/// interdomain and global-VIRQ ports; IPI and per-vCPU VIRQ ports are fixed.
pub fn bind_vcpu<D: Domains>(
    doms: &mut D,
    caller: Caller,
    port: EvtchnPort,
    vcpu: VcpuId,
) -> Result<(), EvtchnError> {
    let ev = lookup(doms, caller.domain)?;
    ev.channels.check_vcpu(vcpu)?;
    match ev.channels.channel(port)?.state {
        ChannelState::Unbound { .. } | ChannelState::Interdomain { .. } | ChannelState::Pirq(_) => {
        }
        ChannelState::Virq(v) if v.is_global() => {}
        ChannelState::Virq(_) | ChannelState::Ipi => return Err(EvtchnError::FixedVcpu(port)),
        ChannelState::Free | ChannelState::Reserved => return Err(EvtchnError::WrongState(port)),
    }
    ev.channels.set_notify_vcpu(port, vcpu);
    Ok(())
}

/// `EVTCHNOP_unmask`: clears the mask bit of the caller's `port` and, if the port is pending,
/// re-raises it on its notify vCPU. Any valid port may be unmasked, whatever its state; only
/// the caller's own ports can be named.
pub fn unmask<D: Domains>(
    doms: &mut D,
    caller: Caller,
    port: EvtchnPort,
) -> Result<Wake, EvtchnError> {
    let ev = lookup(doms, caller.domain)?;
    let ch = ev.channels.channel(port)?;
    let vcpus = if shared::unmask(ev.shared, ch.notify_vcpu, port) {
        VcpuSet::single(ch.notify_vcpu)
    } else {
        VcpuSet::EMPTY
    };
    Ok(Wake {
        domain: caller.domain,
        vcpus,
    })
}

/// `EVTCHNOP_reset`: closes every port of `dom` (the caller, or for dom0 a domain it has
/// paused; `controller_paused` is the scheduler's answer). Ports that cannot be closed (port
/// 0, free ports) are skipped.
pub fn reset<D: Domains>(
    doms: &mut D,
    caller: Caller,
    dom: DomId,
    controller_paused: impl FnOnce(DomId) -> bool,
) -> Result<(), EvtchnError> {
    let dom = dom.or_self(caller.domain);
    lookup(doms, dom)?;
    caller.may_target(dom)?;
    if dom != caller.domain && !controller_paused(dom) {
        return Err(EvtchnError::NotPaused(dom));
    }
    close_all(doms, dom);
    Ok(())
}

/// The event side of destroying `dom` (Xen's `evtchn_destroy`): marks it dying, so that no
/// port can be allocated in it any more (`alloc_unbound` naming it, or anything it would bind,
/// fails with `-EINVAL`), and closes every port. The domain stays in the registry until it is
/// gone for good; meanwhile other domains see what Xen shows them: their ends of its channels
/// are unbound again (sends there are dropped) and binding to its old ports fails with
/// `-EINVAL`.
pub fn kill<D: Domains>(doms: &mut D, dom: DomId) {
    if let Some(ev) = doms.events(dom) {
        ev.channels.set_dying();
    }
    close_all(doms, dom);
}

/// Closes every port of `dom`, as when the domain is destroyed: afterwards no other domain's
/// port points at it.
pub fn close_all<D: Domains>(doms: &mut D, dom: DomId) {
    let valid = doms.events(dom).map_or(0, |ev| ev.channels.valid_ports());
    for p in 0..valid {
        // Errors are expected (free ports, port 0) and ignored, as in Xen.
        let _ = close_port(doms, dom, EvtchnPort(p as u32));
    }
}

/// Raises `virq` in domain `dom`: a per-vCPU VIRQ on `vcpu` (Xen's `send_guest_vcpu_virq`), a
/// global VIRQ on whichever vCPU its port notifies (`send_guest_global_virq`; `vcpu` is
/// ignored). Nothing happens if the VIRQ is not bound or the domain or vCPU does not exist.
pub fn raise_virq<D: Domains>(doms: &mut D, dom: DomId, vcpu: VcpuId, virq: Virq) -> Wake {
    let Some(ev) = doms.events(dom) else {
        return Wake::none(dom);
    };
    let binder = if virq.is_global() { VcpuId(0) } else { vcpu };
    let Some(port) = ev.channels.virq_port(binder, virq) else {
        return Wake::none(dom);
    };
    let notify = ev
        .channels
        .channel(port)
        .map_or(binder, |ch| ch.notify_vcpu);
    let vcpus = ev.channels.set_pending(ev.shared, notify, port);
    Wake { domain: dom, vcpus }
}

/// Checks the cross-domain invariant among `ids`: both ends of every interdomain channel point
/// at each other, and each domain's own invariants ([`EventChannels::check`]) hold.
pub fn check_links<D: Domains>(doms: &mut D, ids: &[DomId]) -> Result<(), &'static str> {
    for &d in ids {
        let Some(ev) = doms.events(d) else {
            continue;
        };
        ev.channels.check()?;
        let valid = ev.channels.valid_ports();
        for p in 0..valid {
            let port = EvtchnPort(p as u32);
            let Some(ev) = doms.events(d) else {
                return Err("a domain vanished");
            };
            let Ok(ChannelState::Interdomain {
                remote,
                remote_port,
            }) = ev.channels.channel(port).map(|c| c.state)
            else {
                continue;
            };
            let Some(r) = doms.events(remote) else {
                return Err("an interdomain channel points at a domain that does not exist");
            };
            let back = r.channels.channel(remote_port).map(|c| c.state);
            let expected = ChannelState::Interdomain {
                remote: d,
                remote_port: port,
            };
            if back != Ok(expected) {
                return Err("the ends of an interdomain channel do not point at each other");
            }
        }
    }
    Ok(())
}
