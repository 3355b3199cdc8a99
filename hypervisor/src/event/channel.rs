//! One domain's event channels: the port table, the VIRQ bindings of its vCPUs and the state
//! of vCPUs blocked in `SCHEDOP_poll`.

use super::abi::{DomId, EvtchnPort, MAX_VCPUS, NR_EVENT_CHANNELS, NR_VIRQS, VcpuId, Virq};
use super::error::EvtchnError;
use super::shared::{self, Raised, SharedInfoView};

/// Ports are made valid in blocks of this many, as Xen allocates `struct evtchn` buckets
/// (a page of 64-byte entries on x86-64). A port beyond the last block is "invalid" (`-EINVAL`)
/// rather than "closed", exactly as in Xen.
pub const PORTS_PER_BUCKET: usize = 64;

/// The state of one port (Xen's `ECS_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelState {
    /// Not in use (`ECS_FREE`).
    Free,
    /// Never usable: port 0 (`ECS_RESERVED`).
    Reserved,
    /// Allocated and waiting for `remote` to bind to it (`ECS_UNBOUND`).
    Unbound {
        /// The only domain allowed to bind.
        remote: DomId,
    },
    /// Connected to `remote_port` of `remote` (`ECS_INTERDOMAIN`); possibly the same domain.
    Interdomain {
        /// The other end's domain.
        remote: DomId,
        /// The other end's port.
        remote_port: EvtchnPort,
    },
    /// Bound to a virtual IRQ (`ECS_VIRQ`).
    Virq(Virq),
    /// Bound as an inter-processor interrupt within the domain (`ECS_IPI`).
    Ipi,
    /// Bound to a physical IRQ (`ECS_PIRQ`). Never entered: PIRQs are not supported.
    Pirq(u32),
}

impl ChannelState {
    /// Whether this is a binding to a global VIRQ.
    pub const fn is_global_virq(self) -> bool {
        matches!(self, Self::Virq(v) if v.is_global())
    }
}

/// One port: its state and the vCPU it notifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel {
    /// What the port is bound to.
    pub state: ChannelState,
    /// The vCPU whose selector and upcall flag a pending event raises.
    pub notify_vcpu: VcpuId,
}

impl Channel {
    /// A free port notifying vCPU 0 (the state of every port before its first use).
    pub const FREE: Self = Self {
        state: ChannelState::Free,
        notify_vcpu: VcpuId(0),
    };
}

/// Storage for a domain's ports: a boxed slice, a vector, a static array.
pub trait ChannelStore: AsRef<[Channel]> + AsMut<[Channel]> {}

impl<T: AsRef<[Channel]> + AsMut<[Channel]>> ChannelStore for T {}

/// A set of vCPUs of one domain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSet(u64);

const _: () = assert!(MAX_VCPUS <= 64);

impl VcpuSet {
    /// No vCPU.
    pub const EMPTY: Self = Self(0);

    /// Just `v` (empty if `v` is beyond [`MAX_VCPUS`]).
    pub const fn single(v: VcpuId) -> Self {
        if v.index() < MAX_VCPUS {
            Self(1 << v.0)
        } else {
            Self(0)
        }
    }

    /// Whether `v` is in the set.
    pub const fn contains(self, v: VcpuId) -> bool {
        v.index() < MAX_VCPUS && self.0 & (1 << v.0) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The union of two sets.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The set without `v`.
    #[must_use]
    pub const fn without(self, v: VcpuId) -> Self {
        Self(self.0 & !Self::single(v).0)
    }

    /// The members, lowest first.
    pub fn iter(self) -> impl Iterator<Item = VcpuId> {
        let mut bits = self.0;
        core::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let v = bits.trailing_zeros();
            bits &= bits - 1;
            Some(VcpuId(v))
        })
    }
}

/// What a polling vCPU waits for (Xen's `poll_evtchn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PollTarget {
    /// Any port (several were given, or the poll is being set up).
    Any,
    /// One port.
    One(EvtchnPort),
}

/// Per-domain port table and event bindings.
///
/// Invariants (checked by [`EventChannels::check`]):
/// - port 0 is `Reserved`; ports at or beyond `valid` are `Free` and notify vCPU 0;
/// - every notify vCPU is below `nr_vcpus`;
/// - `virq_ports[v][virq] == p` (non-zero) exactly when port `p` is `Virq(virq)` and `v` is its
///   binding vCPU: the notify vCPU for a per-vCPU VIRQ, vCPU 0 for a global one;
/// - a polling vCPU has a target.
pub struct EventChannels<T> {
    chans: T,
    /// Ports below this are allocated (Xen's `valid_evtchns`).
    valid: usize,
    /// Highest port the domain may allocate (Xen's `max_evtchn_port`).
    max_port: u32,
    nr_vcpus: u32,
    /// EvtchnPort bound to each VIRQ on each vCPU; 0 = none (port 0 is never bound).
    virq_ports: [[u16; NR_VIRQS]; MAX_VCPUS],
    /// vCPUs blocked in `SCHEDOP_poll` (Xen's `poll_mask`).
    polling: VcpuSet,
    poll_target: [PollTarget; MAX_VCPUS],
    /// The domain is being destroyed: no new port is allocated (Xen's `is_dying`).
    dying: bool,
}

/// A domain's event channel configuration could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `nr_vcpus` is 0 or above [`MAX_VCPUS`].
    BadVcpuCount(u32),
    /// The storage holds fewer channels than [`EventChannels::storage_len`] asks.
    StorageTooSmall {
        /// Channels needed.
        need: usize,
        /// Channels given.
        have: usize,
    },
}

impl<T: ChannelStore> EventChannels<T> {
    /// Channels of storage needed for a domain whose highest port is `max_port`: whole
    /// buckets, at most [`NR_EVENT_CHANNELS`].
    pub const fn storage_len(max_port: u32) -> usize {
        let ports = if (max_port as usize) < NR_EVENT_CHANNELS {
            max_port as usize + 1
        } else {
            NR_EVENT_CHANNELS
        };
        ports.div_ceil(PORTS_PER_BUCKET) * PORTS_PER_BUCKET
    }

    /// A table for a domain with `nr_vcpus` vCPUs whose ports go up to `max_port` (Xen's
    /// `max_evtchn_port`: 4095 for dom0, what the toolstack sets for others). EvtchnPort 0 is
    /// reserved and the first bucket is valid, as after Xen's `evtchn_init`.
    pub fn new(mut chans: T, nr_vcpus: u32, max_port: u32) -> Result<Self, ConfigError> {
        if nr_vcpus == 0 || nr_vcpus as usize > MAX_VCPUS {
            return Err(ConfigError::BadVcpuCount(nr_vcpus));
        }
        let need = Self::storage_len(max_port);
        let have = chans.as_ref().len();
        if have < need {
            return Err(ConfigError::StorageTooSmall { need, have });
        }
        let table = chans.as_mut();
        table.fill(Channel::FREE);
        table[0].state = ChannelState::Reserved;
        Ok(Self {
            chans,
            valid: PORTS_PER_BUCKET,
            max_port: max_port.min(NR_EVENT_CHANNELS as u32 - 1),
            nr_vcpus,
            virq_ports: [[0; NR_VIRQS]; MAX_VCPUS],
            polling: VcpuSet::EMPTY,
            poll_target: [PollTarget::Any; MAX_VCPUS],
            dying: false,
        })
    }

    /// The domain's vCPU count.
    pub fn nr_vcpus(&self) -> u32 {
        self.nr_vcpus
    }

    /// Marks the domain dying: from now on no port can be allocated in it.
    pub fn set_dying(&mut self) {
        self.dying = true;
    }

    /// Whether the domain is dying.
    pub fn is_dying(&self) -> bool {
        self.dying
    }

    /// The highest port the domain may allocate.
    pub fn max_port(&self) -> u32 {
        self.max_port
    }

    /// Ports below this number are valid (allocated); the others give `-EINVAL`.
    pub fn valid_ports(&self) -> usize {
        self.valid
    }

    /// Whether `vcpu` exists in the domain.
    pub fn has_vcpu(&self, vcpu: VcpuId) -> bool {
        vcpu.0 < self.nr_vcpus
    }

    /// `Ok(())` if `vcpu` exists, else `NoSuchVcpu` (`-ENOENT`).
    pub fn check_vcpu(&self, vcpu: VcpuId) -> Result<(), EvtchnError> {
        if self.has_vcpu(vcpu) {
            Ok(())
        } else {
            Err(EvtchnError::NoSuchVcpu(vcpu))
        }
    }

    /// The channel at a valid port (Xen's `port_is_valid` + `evtchn_from_port`).
    pub fn channel(&self, port: EvtchnPort) -> Result<Channel, EvtchnError> {
        if port.index() < self.valid {
            Ok(self.chans.as_ref()[port.index()])
        } else {
            Err(EvtchnError::InvalidPort(port))
        }
    }

    /// Valid ports and their channels, in port order.
    pub fn channels(&self) -> impl Iterator<Item = (EvtchnPort, Channel)> + '_ {
        self.chans.as_ref()[..self.valid]
            .iter()
            .enumerate()
            .map(|(i, c)| (EvtchnPort(i as u32), *c))
    }

    /// The port bound to `virq` on `vcpu`, if any.
    pub fn virq_port(&self, vcpu: VcpuId, virq: Virq) -> Option<EvtchnPort> {
        let row = self.virq_ports.get(vcpu.index())?;
        match row[virq.index()] {
            0 => None,
            p => Some(EvtchnPort(u32::from(p))),
        }
    }

    /// Xen's `get_free_port`: the lowest free port, making its bucket valid if needed. The
    /// port stays `Free` until the caller binds it.
    pub fn find_free_port(&mut self) -> Result<EvtchnPort, EvtchnError> {
        if self.dying {
            return Err(EvtchnError::Dying);
        }
        let limit = self.max_port as usize + 1;
        let chans = self.chans.as_ref();
        if let Some(p) = (0..self.valid.min(limit)).find(|&p| chans[p].state == ChannelState::Free)
        {
            return Ok(EvtchnPort(p as u32));
        }
        if self.valid >= limit {
            return Err(EvtchnError::NoFreePort);
        }
        let port = EvtchnPort(self.valid as u32);
        self.valid += PORTS_PER_BUCKET;
        Ok(port)
    }

    /// Binds a port found by [`Self::find_free_port`] (or any valid port).
    pub(super) fn bind(&mut self, port: EvtchnPort, state: ChannelState, notify_vcpu: VcpuId) {
        debug_assert!(port.index() < self.valid && self.has_vcpu(notify_vcpu));
        let ch = &mut self.chans.as_mut()[port.index()];
        ch.state = state;
        ch.notify_vcpu = notify_vcpu;
        if let ChannelState::Virq(virq) = state {
            let binder = if virq.is_global() {
                VcpuId(0)
            } else {
                notify_vcpu
            };
            self.virq_ports[binder.index()][virq.index()] = port.0 as u16;
        }
    }

    /// Changes a port's state, keeping its notify vCPU (the other end of a closed
    /// interdomain channel going back to `Unbound`).
    pub(super) fn set_state(&mut self, port: EvtchnPort, state: ChannelState) {
        debug_assert!(port.index() < self.valid);
        self.chans.as_mut()[port.index()].state = state;
    }

    /// Changes a port's notify vCPU (`EVTCHNOP_bind_vcpu`).
    pub(super) fn set_notify_vcpu(&mut self, port: EvtchnPort, vcpu: VcpuId) {
        debug_assert!(port.index() < self.valid && self.has_vcpu(vcpu));
        self.chans.as_mut()[port.index()].notify_vcpu = vcpu;
    }

    /// Xen's `evtchn_free`: clears the port's pending bit, drops any VIRQ binding to it, and
    /// makes it `Free` notifying vCPU 0.
    pub(super) fn free<S: SharedInfoView + ?Sized>(&mut self, shared: &S, port: EvtchnPort) {
        debug_assert!(port.index() < self.valid);
        shared::clear_pending(shared, port);
        let ch = &mut self.chans.as_mut()[port.index()];
        if let ChannelState::Virq(virq) = ch.state {
            for row in &mut self.virq_ports {
                if u32::from(row[virq.index()]) == port.0 {
                    row[virq.index()] = 0;
                }
            }
        }
        *ch = Channel::FREE;
    }

    /// Xen's `evtchn_port_set_pending` for the 2-level ABI: raises `port` towards `vcpu` and,
    /// if the port newly became pending, wakes the vCPUs polling for it. Returns the vCPUs to
    /// kick (unblock, and interrupt if running). O(1) when nobody polls; never allocates.
    pub fn set_pending<S: SharedInfoView + ?Sized>(
        &mut self,
        shared: &S,
        vcpu: VcpuId,
        port: EvtchnPort,
    ) -> VcpuSet {
        match shared::set_pending(shared, vcpu, port) {
            Raised::AlreadyPending => VcpuSet::EMPTY,
            Raised::Newly { kick } => {
                let kicked = if kick {
                    VcpuSet::single(vcpu)
                } else {
                    VcpuSet::EMPTY
                };
                kicked.union(self.check_pollers(port))
            }
        }
    }

    /// Xen's `evtchn_check_pollers`: every vCPU polling for `port` (or for any port) stops
    /// polling and is returned to be woken.
    fn check_pollers(&mut self, port: EvtchnPort) -> VcpuSet {
        let mut woken = VcpuSet::EMPTY;
        for v in self.polling.iter() {
            let wants = match self.poll_target[v.index()] {
                PollTarget::Any => true,
                PollTarget::One(p) => p == port,
            };
            if wants {
                woken = woken.union(VcpuSet::single(v));
            }
        }
        self.polling = VcpuSet(self.polling.0 & !woken.0);
        woken
    }

    /// `SCHEDOP_poll` set-up: `vcpu` polls for any port until [`Self::poll_for`] narrows it.
    pub fn begin_poll(&mut self, vcpu: VcpuId) {
        if self.has_vcpu(vcpu) {
            self.polling = self.polling.union(VcpuSet::single(vcpu));
            self.poll_target[vcpu.index()] = PollTarget::Any;
        }
    }

    /// `SCHEDOP_poll` with a single port: only that port wakes `vcpu`.
    pub fn poll_for(&mut self, vcpu: VcpuId, port: EvtchnPort) {
        if self.has_vcpu(vcpu) {
            self.poll_target[vcpu.index()] = PollTarget::One(port);
        }
    }

    /// Ends `vcpu`'s poll without waking it (the poll returned at once). Returns whether it
    /// was polling: Xen's poll timer uses exactly this to decide whether to unblock.
    pub fn end_poll(&mut self, vcpu: VcpuId) -> bool {
        let was = self.polling.contains(vcpu);
        self.polling = self.polling.without(vcpu);
        was
    }

    /// The vCPUs currently polling.
    pub fn pollers(&self) -> VcpuSet {
        self.polling
    }

    /// Checks the invariants listed on the type; `Err` names the first one broken.
    pub fn check(&self) -> Result<(), &'static str> {
        let chans = self.chans.as_ref();
        if chans[0].state != ChannelState::Reserved {
            return Err("port 0 is not reserved");
        }
        if chans[self.valid..].iter().any(|c| *c != Channel::FREE) {
            return Err("a port beyond the valid range is in use");
        }
        for (port, ch) in self.channels() {
            if !self.has_vcpu(ch.notify_vcpu) {
                return Err("a port notifies a vcpu that does not exist");
            }
            if ch.state == ChannelState::Free && ch.notify_vcpu != VcpuId(0) {
                return Err("a free port does not notify vcpu 0");
            }
            if let ChannelState::Virq(virq) = ch.state {
                let binder = if virq.is_global() {
                    VcpuId(0)
                } else {
                    ch.notify_vcpu
                };
                if self.virq_port(binder, virq) != Some(port) {
                    return Err("a virq port is not in its vcpu's virq table");
                }
            }
        }
        for (v, row) in self.virq_ports.iter().enumerate() {
            for (virq, &p) in row.iter().enumerate() {
                if p == 0 {
                    continue;
                }
                let Ok(ch) = self.channel(EvtchnPort(u32::from(p))) else {
                    return Err("a virq table entry names an invalid port");
                };
                let binder = if ch.state.is_global_virq() {
                    VcpuId(0)
                } else {
                    ch.notify_vcpu
                };
                let expected = Virq::new(virq as u32).map(ChannelState::Virq);
                if Some(ch.state) != expected || binder != VcpuId(v as u32) {
                    return Err("a virq table entry names a port not bound to that virq");
                }
            }
        }
        if self.polling.iter().any(|v| !self.has_vcpu(v)) {
            return Err("a vcpu that does not exist is polling");
        }
        Ok(())
    }
}
