//! Host tests for event channels: the port allocator, the state machine (every operation from
//! every state), pending/mask/upcall delivery, VIRQs, bad input, and random operation
//! sequences that must keep the invariants.

use super::abi::*;
use super::channel::*;
use super::error::EvtchnError;
use super::evtchn_ops::*;
use super::shared::{self, SharedInfo};
use core::sync::atomic::Ordering;
use guest_abi::XenError;
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

const A: DomId = DomId(1);
const B: DomId = DomId(2);
const C: DomId = DomId(3);
const NOBODY: DomId = DomId(77);

pub(crate) struct FakeDomain {
    pub id: DomId,
    pub ev: EventChannels<Vec<Channel>>,
    pub shared: SharedInfo,
    pub controller_paused: bool,
}

/// A registry of a few domains, each with 4 vCPUs and the full 4096 ports.
pub(crate) struct Fake {
    pub doms: Vec<FakeDomain>,
}

impl Fake {
    pub fn new(ids: &[DomId]) -> Self {
        Self::with_max_port(ids, 4095)
    }

    pub fn with_max_port(ids: &[DomId], max_port: u32) -> Self {
        let doms = ids
            .iter()
            .map(|&id| {
                let store =
                    vec![Channel::FREE; EventChannels::<Vec<Channel>>::storage_len(max_port)];
                FakeDomain {
                    id,
                    ev: EventChannels::new(store, 4, max_port).unwrap(),
                    shared: SharedInfo::new(),
                    controller_paused: false,
                }
            })
            .collect();
        Self { doms }
    }

    pub fn dom(&self, id: DomId) -> &FakeDomain {
        self.doms.iter().find(|d| d.id == id).unwrap()
    }

    pub fn state(&self, id: DomId, port: EvtchnPort) -> ChannelState {
        self.dom(id).ev.channel(port).unwrap().state
    }

    pub fn pending(&self, id: DomId, port: EvtchnPort) -> bool {
        shared::is_pending(&self.dom(id).shared, port)
    }

    pub fn ids(&self) -> Vec<DomId> {
        self.doms.iter().map(|d| d.id).collect()
    }
}

impl Domains for Fake {
    type Store = Vec<Channel>;
    type Shared = SharedInfo;

    fn events(&mut self, id: DomId) -> Option<DomainEvents<'_, Vec<Channel>, SharedInfo>> {
        self.doms
            .iter_mut()
            .find(|d| d.id == id)
            .map(|d| DomainEvents {
                channels: &mut d.ev,
                shared: &d.shared,
            })
    }
}

/// `reset` with the fake's controller pauses (the scheduler's answer in the kernel).
fn reset(f: &mut Fake, caller: Caller, dom: DomId) -> Result<(), EvtchnError> {
    let paused: Vec<DomId> = f
        .doms
        .iter()
        .filter(|d| d.controller_paused)
        .map(|d| d.id)
        .collect();
    super::evtchn_ops::reset(f, caller, dom, |d| paused.contains(&d))
}

pub(crate) fn me(d: DomId) -> Caller {
    Caller {
        domain: d,
        privilege: None,
    }
}

fn dom0() -> Caller {
    Caller {
        domain: DomId(0),
        privilege: Some(crate::privilege::Privilege::hardware_domain()),
    }
}

fn err<T: core::fmt::Debug>(r: Result<T, EvtchnError>) -> XenError {
    r.expect_err("operation should fail").errno()
}

fn check(f: &mut Fake) {
    let ids = f.ids();
    if let Err(e) = check_links(f, &ids) {
        panic!("invariant broken: {e}");
    }
}

// ---------------------------------------------------------------- port allocation

#[test]
fn ports_are_allocated_lowest_first_from_1_and_reused() {
    let mut f = Fake::new(&[A]);
    let p: Vec<EvtchnPort> = (0..3)
        .map(|_| bind_ipi(&mut f, me(A), VcpuId(0)).unwrap())
        .collect();
    assert_eq!(p, [EvtchnPort(1), EvtchnPort(2), EvtchnPort(3)]);
    close(&mut f, me(A), EvtchnPort(2)).unwrap();
    assert_eq!(bind_ipi(&mut f, me(A), VcpuId(0)), Ok(EvtchnPort(2)));
    assert_eq!(bind_ipi(&mut f, me(A), VcpuId(0)), Ok(EvtchnPort(4)));
    check(&mut f);
}

#[test]
fn valid_range_grows_by_buckets_and_stops_at_4096() {
    let mut f = Fake::new(&[A]);
    assert_eq!(f.dom(A).ev.valid_ports(), PORTS_PER_BUCKET);
    // A port beyond the valid range is invalid, one inside it but unused is closed.
    assert_eq!(
        err(status(&mut f, me(A), DomId::SELF, EvtchnPort(64))),
        XenError::Inval
    );
    let st = status(&mut f, me(A), DomId::SELF, EvtchnPort(63)).unwrap();
    assert_eq!(st.state, StatusState::Closed);
    for i in 1..NR_EVENT_CHANNELS {
        assert_eq!(bind_ipi(&mut f, me(A), VcpuId(0)), Ok(EvtchnPort(i as u32)));
    }
    assert_eq!(f.dom(A).ev.valid_ports(), NR_EVENT_CHANNELS);
    assert_eq!(err(bind_ipi(&mut f, me(A), VcpuId(0))), XenError::NoSpc);
    assert_eq!(
        err(alloc_unbound(&mut f, me(A), DomId::SELF, B)),
        XenError::NoSpc
    );
    close(&mut f, me(A), EvtchnPort(4000)).unwrap();
    assert_eq!(bind_ipi(&mut f, me(A), VcpuId(0)), Ok(EvtchnPort(4000)));
    check(&mut f);
}

#[test]
fn a_smaller_port_limit_gives_enospc_earlier() {
    let mut f = Fake::with_max_port(&[A], 99);
    for i in 1..=99 {
        assert_eq!(bind_ipi(&mut f, me(A), VcpuId(0)), Ok(EvtchnPort(i)));
    }
    assert_eq!(err(bind_ipi(&mut f, me(A), VcpuId(0))), XenError::NoSpc);
    // The second bucket is valid as a whole, as in Xen.
    assert_eq!(f.dom(A).ev.valid_ports(), 128);
    check(&mut f);
}

#[test]
fn storage_and_vcpu_count_are_checked() {
    let small = vec![Channel::FREE; 10];
    assert!(matches!(
        EventChannels::new(small, 1, 4095),
        Err(ConfigError::StorageTooSmall {
            need: 4096,
            have: 10
        })
    ));
    let store = vec![Channel::FREE; 64];
    assert!(matches!(
        EventChannels::new(store.clone(), 0, 63),
        Err(ConfigError::BadVcpuCount(0))
    ));
    assert!(EventChannels::new(store.clone(), MAX_VCPUS as u32 + 1, 63).is_err());
    assert!(EventChannels::new(store, MAX_VCPUS as u32, 63).is_ok());
}

// ---------------------------------------------------------------- the state machine

/// A port of domain A in each state the ABI can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    Free,
    Reserved,
    UnboundForB,
    InterdomainToB,
    Loopback,
    GlobalVirq,
    PerVcpuVirq,
    Ipi,
    Invalid,
}

const STARTS: [Start; 9] = [
    Start::Free,
    Start::Reserved,
    Start::UnboundForB,
    Start::InterdomainToB,
    Start::Loopback,
    Start::GlobalVirq,
    Start::PerVcpuVirq,
    Start::Ipi,
    Start::Invalid,
];

/// Builds the state; returns the port and, for channels, the other end (domain, port).
fn setup(f: &mut Fake, s: Start) -> (EvtchnPort, Option<(DomId, EvtchnPort)>) {
    match s {
        Start::Free => (EvtchnPort(5), None),
        Start::Reserved => (EvtchnPort(0), None),
        Start::UnboundForB => (alloc_unbound(f, me(A), DomId::SELF, B).unwrap(), None),
        Start::InterdomainToB => {
            let rp = alloc_unbound(f, me(B), DomId::SELF, A).unwrap();
            let (lp, _) = bind_interdomain(f, me(A), B, rp).unwrap();
            (lp, Some((B, rp)))
        }
        Start::Loopback => {
            let rp = alloc_unbound(f, me(A), DomId::SELF, DomId::SELF).unwrap();
            let (lp, _) = bind_interdomain(f, me(A), DomId::SELF, rp).unwrap();
            (lp, Some((A, rp)))
        }
        Start::GlobalVirq => (
            bind_virq(f, me(A), Virq::CONSOLE.number(), VcpuId(0)).unwrap(),
            None,
        ),
        Start::PerVcpuVirq => (
            bind_virq(f, me(A), Virq::TIMER.number(), VcpuId(2)).unwrap(),
            None,
        ),
        Start::Ipi => (bind_ipi(f, me(A), VcpuId(3)).unwrap(), None),
        Start::Invalid => (EvtchnPort(4000), None),
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Close,
    Send,
    Status,
    BindVcpu,
    Unmask,
    /// B binds to A's port.
    BindFromB,
}

/// The errno each operation gives from each state, `None` for success.
fn expected(op: Op, s: Start) -> Option<XenError> {
    use Start::*;
    let einval = Some(XenError::Inval);
    match (op, s) {
        (_, Invalid) => einval,
        (Op::Close, Free | Reserved) => einval,
        (Op::Close, _) => None,
        (Op::Send, Free | Reserved | GlobalVirq | PerVcpuVirq) => einval,
        (Op::Send, _) => None,
        (Op::Status, _) => None,
        (Op::BindVcpu, Free | Reserved | PerVcpuVirq | Ipi) => einval,
        (Op::BindVcpu, _) => None,
        (Op::Unmask, _) => None,
        (Op::BindFromB, UnboundForB) => None,
        (Op::BindFromB, _) => einval,
    }
}

fn run(f: &mut Fake, op: Op, port: EvtchnPort) -> Result<(), EvtchnError> {
    match op {
        Op::Close => close(f, me(A), port),
        Op::Send => send(f, me(A), port).map(drop),
        Op::Status => status(f, me(A), DomId::SELF, port).map(drop),
        Op::BindVcpu => bind_vcpu(f, me(A), port, VcpuId(1)),
        Op::Unmask => unmask(f, me(A), port).map(drop),
        Op::BindFromB => bind_interdomain(f, me(B), A, port).map(drop),
    }
}

#[test]
fn every_operation_from_every_state() {
    let ops = [
        Op::Close,
        Op::Send,
        Op::Status,
        Op::BindVcpu,
        Op::Unmask,
        Op::BindFromB,
    ];
    for op in ops {
        for s in STARTS {
            let mut f = Fake::new(&[A, B]);
            let (port, _) = setup(&mut f, s);
            let got = run(&mut f, op, port).err().map(EvtchnError::errno);
            assert_eq!(got, expected(op, s), "{op:?} from {s:?}");
            check(&mut f);
        }
    }
}

#[test]
fn status_reports_each_state() {
    for s in STARTS {
        let mut f = Fake::new(&[A, B]);
        let (port, peer) = setup(&mut f, s);
        let Ok(st) = status(&mut f, me(A), DomId::SELF, port) else {
            assert_eq!(s, Start::Invalid);
            continue;
        };
        let (state, vcpu) = match s {
            Start::Free | Start::Reserved => (StatusState::Closed, 0),
            Start::UnboundForB => (StatusState::Unbound { dom: B }, 0),
            Start::InterdomainToB | Start::Loopback => {
                let (dom, port) = peer.unwrap();
                (StatusState::Interdomain { dom, port }, 0)
            }
            Start::GlobalVirq => (StatusState::Virq(Virq::CONSOLE), 0),
            Start::PerVcpuVirq => (StatusState::Virq(Virq::TIMER), 2),
            Start::Ipi => (StatusState::Ipi, 3),
            Start::Invalid => unreachable!(),
        };
        assert_eq!(
            st,
            Status {
                state,
                vcpu: VcpuId(vcpu)
            },
            "{s:?}"
        );
    }
}

#[test]
fn status_codes_are_xens() {
    assert_eq!(StatusState::Closed.code(), 0);
    assert_eq!(StatusState::Unbound { dom: A }.code(), 1);
    assert_eq!(
        StatusState::Interdomain {
            dom: A,
            port: EvtchnPort(1)
        }
        .code(),
        2
    );
    assert_eq!(StatusState::Pirq(3).code(), 3);
    assert_eq!(StatusState::Virq(Virq::TIMER).code(), 4);
    assert_eq!(StatusState::Ipi.code(), 5);
}

#[test]
fn closing_one_end_leaves_the_other_unbound_for_the_closer() {
    let mut f = Fake::new(&[A, B]);
    let (lp, peer) = setup(&mut f, Start::InterdomainToB);
    let (_, rp) = peer.unwrap();
    bind_vcpu(&mut f, me(B), rp, VcpuId(2)).unwrap();
    close(&mut f, me(A), lp).unwrap();
    assert_eq!(f.state(A, lp), ChannelState::Free);
    assert_eq!(f.state(B, rp), ChannelState::Unbound { remote: A });
    // The survivor keeps its notify vCPU, and A can connect to it again.
    assert_eq!(f.dom(B).ev.channel(rp).unwrap().notify_vcpu, VcpuId(2));
    let (again, _) = bind_interdomain(&mut f, me(A), B, rp).unwrap();
    assert_eq!(
        f.state(B, rp),
        ChannelState::Interdomain {
            remote: A,
            remote_port: again
        }
    );
    // Sending on the surviving end after the peer closed is dropped, not an error.
    close(&mut f, me(A), again).unwrap();
    assert_eq!(send(&mut f, me(B), rp).map(|w| w.is_empty()), Ok(true));
    check(&mut f);
}

#[test]
fn loopback_channels_signal_each_other_and_close_cleanly() {
    let mut f = Fake::new(&[A]);
    let q = alloc_unbound(&mut f, me(A), DomId::SELF, DomId::SELF).unwrap();
    assert_eq!(f.state(A, q), ChannelState::Unbound { remote: A });
    let (p, wake) = bind_interdomain(&mut f, me(A), DomId::SELF, q).unwrap();
    assert_eq!(
        wake.vcpus,
        VcpuSet::single(VcpuId(0)),
        "bind raises the new port"
    );
    assert!(f.pending(A, p));
    assert!(!f.pending(A, q));
    let _ = send(&mut f, me(A), p).unwrap();
    assert!(f.pending(A, q));
    close(&mut f, me(A), q).unwrap();
    assert_eq!(f.state(A, p), ChannelState::Unbound { remote: A });
    assert!(f.pending(A, p), "closing q does not touch p's pending bit");
    close(&mut f, me(A), p).unwrap();
    assert!(!f.pending(A, p), "freeing clears the pending bit");
    check(&mut f);
}

// ---------------------------------------------------------------- delivery

#[test]
fn send_raises_remote_port_on_its_notify_vcpu_once() {
    let mut f = Fake::new(&[A, B]);
    let (lp, peer) = setup(&mut f, Start::InterdomainToB);
    let (_, rp) = peer.unwrap();
    bind_vcpu(&mut f, me(B), rp, VcpuId(3)).unwrap();
    let w = send(&mut f, me(A), lp).unwrap();
    assert_eq!(
        w,
        Wake {
            domain: B,
            vcpus: VcpuSet::single(VcpuId(3))
        }
    );
    assert!(f.pending(B, rp));
    let sel = f.dom(B).shared.vcpu_info[3]
        .evtchn_pending_sel
        .load(Ordering::SeqCst);
    assert_eq!(sel, 1 << (rp.0 / 64));
    // Already pending: no new kick.
    assert!(send(&mut f, me(A), lp).unwrap().is_empty());
}

#[test]
fn masked_ports_pend_silently_and_unmask_delivers() {
    let mut f = Fake::new(&[A, B]);
    let (lp, peer) = setup(&mut f, Start::InterdomainToB);
    let (_, rp) = peer.unwrap();
    f.dom(B).shared.set_masked(rp, true);
    assert!(send(&mut f, me(A), lp).unwrap().is_empty());
    assert!(f.pending(B, rp));
    assert_eq!(
        f.dom(B).shared.vcpu_info[0]
            .evtchn_upcall_pending
            .load(Ordering::SeqCst),
        0
    );
    let w = unmask(&mut f, me(B), rp).unwrap();
    assert_eq!(w.vcpus, VcpuSet::single(VcpuId(0)));
    assert!(
        unmask(&mut f, me(B), rp).unwrap().is_empty(),
        "second unmask is a no-op"
    );
}

#[test]
fn ipi_raises_its_bound_vcpu() {
    let mut f = Fake::new(&[A]);
    let p = bind_ipi(&mut f, me(A), VcpuId(2)).unwrap();
    let w = send(&mut f, me(A), p).unwrap();
    assert_eq!(
        w,
        Wake {
            domain: A,
            vcpus: VcpuSet::single(VcpuId(2))
        }
    );
}

#[test]
fn unmask_cannot_reach_another_domains_ports() {
    let mut f = Fake::new(&[A, B]);
    let (_, peer) = setup(&mut f, Start::InterdomainToB);
    let (_, rp) = peer.unwrap();
    f.dom(B).shared.set_masked(rp, true);
    // A names B's port number: it is A's port of that number that gets unmasked.
    let _ = unmask(&mut f, me(A), rp);
    assert!(shared::is_masked(&f.dom(B).shared, rp));
}

#[test]
fn interdomain_bind_sets_the_new_port_pending() {
    let mut f = Fake::new(&[A, B]);
    let rp = alloc_unbound(&mut f, me(B), DomId::SELF, A).unwrap();
    // B signals before A binds: the event is dropped...
    assert!(send(&mut f, me(B), rp).unwrap().is_empty());
    // ...so binding conservatively raises A's new port.
    let (lp, w) = bind_interdomain(&mut f, me(A), B, rp).unwrap();
    assert!(f.pending(A, lp));
    assert_eq!(
        w,
        Wake {
            domain: A,
            vcpus: VcpuSet::single(VcpuId(0))
        }
    );
}

// ---------------------------------------------------------------- VIRQs

#[test]
fn virq_binding_rules() {
    let mut f = Fake::new(&[A]);
    let t = Virq::TIMER.number();
    let p1 = bind_virq(&mut f, me(A), t, VcpuId(1)).unwrap();
    assert_eq!(err(bind_virq(&mut f, me(A), t, VcpuId(1))), XenError::Exist);
    let p2 = bind_virq(&mut f, me(A), t, VcpuId(2)).unwrap();
    assert_ne!(p1, p2);
    let con = Virq::CONSOLE.number();
    assert_eq!(
        err(bind_virq(&mut f, me(A), con, VcpuId(1))),
        XenError::Inval
    );
    bind_virq(&mut f, me(A), con, VcpuId(0)).unwrap();
    assert_eq!(
        err(bind_virq(&mut f, me(A), con, VcpuId(0))),
        XenError::Exist
    );
    assert_eq!(
        err(bind_virq(&mut f, me(A), NR_VIRQS as u32, VcpuId(0))),
        XenError::Inval
    );
    assert_eq!(
        err(bind_virq(&mut f, me(A), u32::MAX, VcpuId(0))),
        XenError::Inval
    );
    assert_eq!(err(bind_virq(&mut f, me(A), t, VcpuId(4))), XenError::NoEnt);
    assert_eq!(
        err(bind_virq(&mut f, me(A), t, VcpuId(u32::MAX))),
        XenError::NoEnt
    );
    // Unassigned numbers below NR_VIRQS bind, as in Xen.
    bind_virq(&mut f, me(A), 5, VcpuId(0)).unwrap();
    // Closing frees the VIRQ for binding again.
    close(&mut f, me(A), p1).unwrap();
    assert_eq!(bind_virq(&mut f, me(A), t, VcpuId(1)), Ok(p1));
    check(&mut f);
}

#[test]
fn raise_virq_delivers_per_vcpu_and_global() {
    let mut f = Fake::new(&[A]);
    let timer1 = bind_virq(&mut f, me(A), Virq::TIMER.number(), VcpuId(1)).unwrap();
    let w = raise_virq(&mut f, A, VcpuId(1), Virq::TIMER);
    assert_eq!(
        w,
        Wake {
            domain: A,
            vcpus: VcpuSet::single(VcpuId(1))
        }
    );
    assert!(f.pending(A, timer1));
    // Not bound on vCPU 2: nothing happens.
    assert!(raise_virq(&mut f, A, VcpuId(2), Virq::TIMER).is_empty());
    // A global VIRQ follows bind_vcpu.
    let con = bind_virq(&mut f, me(A), Virq::CONSOLE.number(), VcpuId(0)).unwrap();
    bind_vcpu(&mut f, me(A), con, VcpuId(3)).unwrap();
    let w = raise_virq(&mut f, A, VcpuId(0), Virq::CONSOLE);
    assert_eq!(w.vcpus, VcpuSet::single(VcpuId(3)));
    // The per-vCPU one cannot be moved.
    assert_eq!(
        err(bind_vcpu(&mut f, me(A), timer1, VcpuId(3))),
        XenError::Inval
    );
    // Nonexistent domain or vCPU: nothing, no panic.
    assert!(raise_virq(&mut f, NOBODY, VcpuId(0), Virq::TIMER).is_empty());
    assert!(raise_virq(&mut f, A, VcpuId(u32::MAX), Virq::TIMER).is_empty());
    check(&mut f);
}

// ---------------------------------------------------------------- bad input and privilege

#[test]
fn out_of_range_ports_are_einval_everywhere() {
    let mut f = Fake::new(&[A, B]);
    for port in [
        EvtchnPort(64),
        EvtchnPort(4095),
        EvtchnPort(4096),
        EvtchnPort(u32::MAX),
    ] {
        assert_eq!(err(close(&mut f, me(A), port)), XenError::Inval);
        assert_eq!(err(send(&mut f, me(A), port)), XenError::Inval);
        assert_eq!(
            err(status(&mut f, me(A), DomId::SELF, port)),
            XenError::Inval
        );
        assert_eq!(
            err(bind_vcpu(&mut f, me(A), port, VcpuId(0))),
            XenError::Inval
        );
        assert_eq!(err(unmask(&mut f, me(A), port)), XenError::Inval);
        assert_eq!(
            err(bind_interdomain(&mut f, me(A), B, port)),
            XenError::Inval
        );
    }
    check(&mut f);
}

#[test]
fn sending_on_a_closed_port_is_einval() {
    let mut f = Fake::new(&[A]);
    let p = bind_ipi(&mut f, me(A), VcpuId(0)).unwrap();
    close(&mut f, me(A), p).unwrap();
    assert_eq!(err(send(&mut f, me(A), p)), XenError::Inval);
    assert_eq!(err(close(&mut f, me(A), p)), XenError::Inval);
}

#[test]
fn bind_interdomain_needs_a_port_unbound_for_us() {
    let mut f = Fake::new(&[A, B, C]);
    let for_c = alloc_unbound(&mut f, me(B), DomId::SELF, C).unwrap();
    assert_eq!(
        err(bind_interdomain(&mut f, me(A), B, for_c)),
        XenError::Inval
    );
    assert_eq!(f.state(B, for_c), ChannelState::Unbound { remote: C });
    let ipi = bind_ipi(&mut f, me(B), VcpuId(0)).unwrap();
    assert_eq!(
        err(bind_interdomain(&mut f, me(A), B, ipi)),
        XenError::Inval
    );
    assert_eq!(
        err(bind_interdomain(&mut f, me(A), NOBODY, EvtchnPort(1))),
        XenError::Srch
    );
    // Already connected: a second binder is refused.
    let _ = bind_interdomain(&mut f, me(C), B, for_c).unwrap();
    assert_eq!(
        err(bind_interdomain(&mut f, me(C), B, for_c)),
        XenError::Inval
    );
    check(&mut f);
}

#[test]
fn other_domains_need_privilege() {
    let mut f = Fake::new(&[DomId(0), A, B]);
    assert_eq!(err(alloc_unbound(&mut f, me(A), B, A)), XenError::Perm);
    assert_eq!(err(alloc_unbound(&mut f, me(A), NOBODY, A)), XenError::Srch);
    let p = alloc_unbound(&mut f, dom0(), B, A).unwrap();
    assert_eq!(f.state(B, p), ChannelState::Unbound { remote: A });
    // remote_dom SELF means the caller, not the target.
    let q = alloc_unbound(&mut f, dom0(), B, DomId::SELF).unwrap();
    assert_eq!(f.state(B, q), ChannelState::Unbound { remote: DomId(0) });
    assert_eq!(err(status(&mut f, me(A), B, p)), XenError::Perm);
    assert_eq!(err(status(&mut f, me(A), NOBODY, p)), XenError::Srch);
    assert_eq!(
        status(&mut f, dom0(), B, p).unwrap().state,
        StatusState::Unbound { dom: A }
    );
    assert_eq!(err(reset(&mut f, me(A), B)), XenError::Perm);
    assert_eq!(err(reset(&mut f, dom0(), B)), XenError::Inval, "not paused");
    assert_eq!(err(reset(&mut f, dom0(), NOBODY)), XenError::Srch);
    f.doms[2].controller_paused = true;
    reset(&mut f, dom0(), B).unwrap();
    assert_eq!(f.state(B, p), ChannelState::Free);
    check(&mut f);
}

#[test]
fn a_dying_domain_gets_no_port_and_its_peers_are_unbound() {
    let mut f = Fake::new(&[DomId(0), A, B]);
    // A channel between A and B set up by dom0, as the toolstack does.
    let pa = alloc_unbound(&mut f, dom0(), A, B).unwrap();
    let (pb, _) = bind_interdomain(&mut f, me(B), A, pa).unwrap();
    let offered = alloc_unbound(&mut f, dom0(), A, B).unwrap();
    let waiting = alloc_unbound(&mut f, me(B), DomId::SELF, A).unwrap();
    kill(&mut f, A);
    assert!(f.dom(A).ev.is_dying());
    assert!(!f.dom(B).ev.is_dying());
    for p in [pa, offered] {
        assert_eq!(f.state(A, p), ChannelState::Free);
    }
    assert_eq!(f.state(B, pb), ChannelState::Unbound { remote: A });
    // Xen's get_free_port refuses a dying domain with EINVAL, whoever asks.
    assert_eq!(err(alloc_unbound(&mut f, dom0(), A, B)), XenError::Inval);
    // Its old ports are closed: nothing to bind to; sends to it are dropped.
    assert_eq!(
        err(bind_interdomain(&mut f, me(B), A, offered)),
        XenError::Inval
    );
    let wake = send(&mut f, me(B), pb).unwrap();
    assert!(wake.is_empty());
    assert!(!f.pending(A, pa));
    // Status still answers (closed) while the domain exists, for dom0.
    assert_eq!(
        status(&mut f, dom0(), A, pa).unwrap().state,
        StatusState::Closed
    );
    // B's port waiting for A stays as it is, and B can close it.
    assert_eq!(f.state(B, waiting), ChannelState::Unbound { remote: A });
    close(&mut f, me(B), waiting).unwrap();
    check(&mut f);
}

#[test]
fn reset_closes_everything_and_unbinds_peers() {
    let mut f = Fake::new(&[A, B]);
    for s in STARTS {
        setup(&mut f, s);
    }
    let peers: Vec<EvtchnPort> = f
        .dom(B)
        .ev
        .channels()
        .filter(|(_, c)| matches!(c.state, ChannelState::Interdomain { .. }))
        .map(|(p, _)| p)
        .collect();
    reset(&mut f, me(A), DomId::SELF).unwrap();
    assert!(
        f.dom(A)
            .ev
            .channels()
            .skip(1)
            .all(|(_, c)| c == Channel::FREE)
    );
    for p in peers {
        assert_eq!(f.state(B, p), ChannelState::Unbound { remote: A });
    }
    // VIRQs can be bound again.
    bind_virq(&mut f, me(A), Virq::TIMER.number(), VcpuId(2)).unwrap();
    check(&mut f);
}

#[test]
fn bind_ipi_and_bind_vcpu_check_the_vcpu() {
    let mut f = Fake::new(&[A]);
    assert_eq!(err(bind_ipi(&mut f, me(A), VcpuId(4))), XenError::NoEnt);
    let p = alloc_unbound(&mut f, me(A), DomId::SELF, B).unwrap();
    assert_eq!(err(bind_vcpu(&mut f, me(A), p, VcpuId(9))), XenError::NoEnt);
    // ENOENT comes before the port check, as in Xen.
    assert_eq!(
        err(bind_vcpu(&mut f, me(A), EvtchnPort(u32::MAX), VcpuId(9))),
        XenError::NoEnt
    );
    assert_eq!(err(bind_pirq(&mut f, me(A), 3)), XenError::Perm);
    assert_eq!(err(send(&mut f, me(NOBODY), EvtchnPort(1))), XenError::Srch);
}

#[test]
fn freed_ports_go_back_to_vcpu0() {
    let mut f = Fake::new(&[A]);
    let p = alloc_unbound(&mut f, me(A), DomId::SELF, B).unwrap();
    bind_vcpu(&mut f, me(A), p, VcpuId(2)).unwrap();
    close(&mut f, me(A), p).unwrap();
    let q = alloc_unbound(&mut f, me(A), DomId::SELF, B).unwrap();
    assert_eq!(q, p);
    assert_eq!(
        status(&mut f, me(A), DomId::SELF, q).unwrap().vcpu,
        VcpuId(0)
    );
}

// ---------------------------------------------------------------- random sequences

/// How an operation picks its port: a raw number (mostly small, sometimes anything), or the
/// n-th port of the caller (or, for binding, of the remote domain) that the operation can use,
/// so that successful paths are exercised as often as failing ones.
#[derive(Clone, Copy, Debug)]
enum Pick {
    Raw(u32),
    Nth(usize),
}

#[derive(Clone, Debug)]
enum RandOp {
    AllocUnbound {
        caller: DomId,
        dom: DomId,
        remote: DomId,
        privileged: bool,
    },
    BindInterdomain {
        caller: DomId,
        remote: DomId,
        port: Pick,
    },
    /// The domain some unbound port waits for binds to it.
    Connect {
        nth: usize,
    },
    BindVirq {
        caller: DomId,
        virq: u32,
        vcpu: u32,
    },
    BindIpi {
        caller: DomId,
        vcpu: u32,
    },
    Close {
        caller: DomId,
        port: Pick,
    },
    Send {
        caller: DomId,
        port: Pick,
    },
    Status {
        caller: DomId,
        dom: DomId,
        port: Pick,
    },
    BindVcpu {
        caller: DomId,
        port: Pick,
        vcpu: u32,
    },
    Unmask {
        caller: DomId,
        port: Pick,
    },
    Mask {
        caller: DomId,
        port: Pick,
    },
    GuestAck {
        dom: DomId,
        vcpu: u32,
    },
    Reset {
        caller: DomId,
    },
    Raise {
        dom: DomId,
        vcpu: u32,
        virq: u32,
    },
}

const LIVE: [DomId; 4] = [DomId(0), DomId(1), DomId(2), DomId(4)];

/// Mostly live domains; sometimes one that does not exist (3), or DOMID_SELF.
fn dom() -> impl Strategy<Value = DomId> {
    prop_oneof![
        12 => (0..LIVE.len()).prop_map(|i| LIVE[i]),
        1 => Just(DomId(3)),
        2 => Just(DomId::SELF),
    ]
}

fn caller() -> impl Strategy<Value = DomId> {
    prop_oneof![12 => (0..LIVE.len()).prop_map(|i| LIVE[i]), 1 => Just(DomId(3))]
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        6 => (0usize..6).prop_map(Pick::Nth),
        3 => (0u32..10).prop_map(Pick::Raw),
        1 => prop_oneof![60u32..70, any::<u32>()].prop_map(Pick::Raw),
    ]
}

fn vcpu() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 0u32..4, 1 => any::<u32>()]
}

fn virq() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 0u32..4, 1 => any::<u32>()]
}

fn rand_op() -> impl Strategy<Value = RandOp> {
    prop_oneof![
        4 => (caller(), dom(), dom(), any::<bool>()).prop_map(|(caller, dom, remote, privileged)| RandOp::AllocUnbound { caller, dom, remote, privileged }),
        4 => (caller(), dom(), pick()).prop_map(|(caller, remote, port)| RandOp::BindInterdomain { caller, remote, port }),
        3 => (0usize..8).prop_map(|nth| RandOp::Connect { nth }),
        2 => (caller(), virq(), vcpu()).prop_map(|(caller, virq, vcpu)| RandOp::BindVirq { caller, virq, vcpu }),
        2 => (caller(), vcpu()).prop_map(|(caller, vcpu)| RandOp::BindIpi { caller, vcpu }),
        3 => (caller(), pick()).prop_map(|(caller, port)| RandOp::Close { caller, port }),
        4 => (caller(), pick()).prop_map(|(caller, port)| RandOp::Send { caller, port }),
        1 => (caller(), dom(), pick()).prop_map(|(caller, dom, port)| RandOp::Status { caller, dom, port }),
        2 => (caller(), pick(), vcpu()).prop_map(|(caller, port, vcpu)| RandOp::BindVcpu { caller, port, vcpu }),
        2 => (caller(), pick()).prop_map(|(caller, port)| RandOp::Unmask { caller, port }),
        2 => (caller(), pick()).prop_map(|(caller, port)| RandOp::Mask { caller, port }),
        1 => (caller(), vcpu()).prop_map(|(dom, vcpu)| RandOp::GuestAck { dom, vcpu }),
        1 => (caller(), dom(), vcpu(), virq()).prop_map(|(_, dom, vcpu, virq)| RandOp::Raise { dom, vcpu, virq }),
        1 => caller().prop_map(|caller| RandOp::Reset { caller }),
    ]
}

const XEN_ERRNOS: [XenError; 6] = [
    XenError::Perm,
    XenError::NoEnt,
    XenError::Srch,
    XenError::Exist,
    XenError::Inval,
    XenError::NoSpc,
];

/// The port `pick` names among the ports of `dom` that satisfy `usable`.
fn port_of(f: &Fake, dom: DomId, pick: Pick, usable: impl Fn(&Channel) -> bool) -> EvtchnPort {
    match pick {
        Pick::Raw(p) => EvtchnPort(p),
        Pick::Nth(n) => f
            .doms
            .iter()
            .find(|d| d.id == dom)
            .and_then(|d| {
                let count = d.ev.channels().filter(|(_, c)| usable(c)).count();
                let mut ports = d.ev.channels().filter(|(_, c)| usable(c));
                ports.nth(n % count.max(1))
            })
            .map_or(EvtchnPort(n as u32), |(p, _)| p),
    }
}

fn in_use(c: &Channel) -> bool {
    !matches!(c.state, ChannelState::Free | ChannelState::Reserved)
}

fn apply(f: &mut Fake, op: &RandOp) -> Result<(), EvtchnError> {
    match *op {
        RandOp::AllocUnbound {
            caller,
            dom,
            remote,
            privileged,
        } => {
            let c = Caller {
                domain: caller,
                privilege: privileged.then(crate::privilege::Privilege::hardware_domain),
            };
            alloc_unbound(f, c, dom, remote).map(drop)
        }
        RandOp::BindInterdomain {
            caller,
            remote,
            port,
        } => {
            let rd = remote.or_self(caller);
            let p = port_of(f, rd, port, |c| {
                c.state == ChannelState::Unbound { remote: caller }
            });
            bind_interdomain(f, me(caller), remote, p).map(drop)
        }
        RandOp::Connect { nth } => {
            let waiting: Vec<(DomId, EvtchnPort, DomId)> = f
                .doms
                .iter()
                .flat_map(|d| {
                    d.ev.channels().filter_map(move |(p, c)| match c.state {
                        ChannelState::Unbound { remote } => Some((d.id, p, remote)),
                        _ => None,
                    })
                })
                .collect();
            match waiting.get(nth % waiting.len().max(1)) {
                Some(&(dom, port, binder)) => bind_interdomain(f, me(binder), dom, port).map(drop),
                None => Ok(()),
            }
        }
        RandOp::BindVirq { caller, virq, vcpu } => {
            bind_virq(f, me(caller), virq, VcpuId(vcpu)).map(drop)
        }
        RandOp::BindIpi { caller, vcpu } => bind_ipi(f, me(caller), VcpuId(vcpu)).map(drop),
        RandOp::Close { caller, port } => {
            let p = port_of(f, caller, port, in_use);
            close(f, me(caller), p)
        }
        RandOp::Send { caller, port } => {
            let p = port_of(f, caller, port, in_use);
            send(f, me(caller), p).map(drop)
        }
        RandOp::Status { caller, dom, port } => {
            let p = port_of(f, dom.or_self(caller), port, in_use);
            status(f, me(caller), dom, p).map(drop)
        }
        RandOp::BindVcpu { caller, port, vcpu } => {
            let p = port_of(f, caller, port, in_use);
            bind_vcpu(f, me(caller), p, VcpuId(vcpu))
        }
        RandOp::Unmask { caller, port } => {
            let p = port_of(f, caller, port, in_use);
            unmask(f, me(caller), p).map(drop)
        }
        RandOp::Mask { caller, port } => {
            let p = port_of(f, caller, port, in_use);
            if let Some(d) = f.doms.iter().find(|d| d.id == caller)
                && p.index() < NR_EVENT_CHANNELS
            {
                d.shared.set_masked(p, true);
            }
            Ok(())
        }
        RandOp::GuestAck { dom, vcpu } => {
            // The guest's upcall handler: clear upcall_pending, take the selector, and clear
            // the pending bits of unmasked ports in the selected words.
            if let Some(d) = f.doms.iter().find(|d| d.id == dom)
                && let Some(vi) = d.shared.vcpu_info.get(vcpu as usize)
            {
                vi.evtchn_upcall_pending.store(0, Ordering::SeqCst);
                let mut sel = vi.evtchn_pending_sel.swap(0, Ordering::SeqCst);
                while sel != 0 {
                    let w = sel.trailing_zeros() as usize;
                    sel &= sel - 1;
                    let mask = d.shared.evtchn_mask[w].load(Ordering::SeqCst);
                    d.shared.evtchn_pending[w].fetch_and(mask, Ordering::SeqCst);
                }
            }
            Ok(())
        }
        RandOp::Reset { caller } => reset(f, me(caller), DomId::SELF),
        RandOp::Raise { dom, vcpu, virq } => {
            if let Some(v) = Virq::new(virq) {
                let _ = raise_virq(f, dom, VcpuId(vcpu), v);
            }
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random operations by random (and nonexistent) domains on random ports never panic,
    /// fail only with Xen's errnos, and keep every invariant after every step.
    #[test]
    fn random_operation_sequences_keep_the_invariants(ops in proptest::collection::vec(rand_op(), 1..120)) {
        let mut f = Fake::new(&LIVE);
        for op in &ops {
            if let Err(e) = apply(&mut f, op) {
                prop_assert!(XEN_ERRNOS.contains(&e.errno()), "{:?} gave {:?}", op, e);
            }
            let ids = f.ids();
            if let Err(broken) = check_links(&mut f, &ids) {
                prop_assert!(false, "after {:?}: {}", op, broken);
            }
        }
    }

    /// The pending/selector/upcall relation: after any sequence of sends and unmasks, every
    /// unmasked pending port has its selector bit set on its notify vCPU, and that vCPU's
    /// upcall is pending (the guest never clears them in this test).
    #[test]
    fn unmasked_pending_ports_are_always_announced(ops in proptest::collection::vec(rand_op(), 1..120)) {
        let mut f = Fake::new(&LIVE);
        for op in &ops {
            let _ = apply(&mut f, op);
        }
        for d in &f.doms {
            for (port, ch) in d.ev.channels() {
                if matches!(ch.state, ChannelState::Free | ChannelState::Reserved) {
                    continue;
                }
                if shared::is_pending(&d.shared, port) && !shared::is_masked(&d.shared, port) {
                    let v = &d.shared.vcpu_info[ch.notify_vcpu.index()];
                    // Pending before a bind_vcpu moved the port may be announced on the old vCPU.
                    let announced = d.shared.vcpu_info.iter().any(|vi| {
                        vi.evtchn_pending_sel.load(Ordering::SeqCst) & (1 << (port.0 / 64)) != 0
                            && vi.evtchn_upcall_pending.load(Ordering::SeqCst) != 0
                    });
                    prop_assert!(announced, "port {} of {:?} pending unannounced (vcpu {:?}, sel {:#x})",
                        port.0, d.id, ch.notify_vcpu, v.evtchn_pending_sel.load(Ordering::SeqCst));
                }
            }
        }
    }
}
