//! Event channels (`event_channel.h`): `EVTCHNOP_*` and their argument structs.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::macros::xen_enum;

/// `EVTCHN_2L_NR_CHANNELS`: ports of the 2-level ABI on x86-64.
pub const EVTCHN_2L_NR_CHANNELS: u32 = 64 * 64;

xen_enum! {
    /// `event_channel_op` sub-ops.
    pub enum EvtchnOp: u32, prefix "EVTCHNOP_" {
        /// Connect to a port another domain allocated.
        BindInterdomain = 0 => "bind_interdomain",
        /// Bind a VIRQ to a new port.
        BindVirq = 1 => "bind_virq",
        /// Bind a physical IRQ to a new port.
        BindPirq = 2 => "bind_pirq",
        /// Close a port.
        Close = 3 => "close",
        /// Send an event.
        Send = 4 => "send",
        /// Query a port.
        Status = 5 => "status",
        /// Allocate a port for another domain to bind.
        AllocUnbound = 6 => "alloc_unbound",
        /// Bind an inter-vCPU IPI port.
        BindIpi = 7 => "bind_ipi",
        /// Change the vCPU a port notifies.
        BindVcpu = 8 => "bind_vcpu",
        /// Unmask a port (and redeliver if pending).
        Unmask = 9 => "unmask",
        /// Close all ports of a domain.
        Reset = 10 => "reset",
        /// FIFO ABI: set up a control block.
        InitControl = 11 => "init_control",
        /// FIFO ABI: add an event array page.
        ExpandArray = 12 => "expand_array",
        /// FIFO ABI: set a port's priority.
        SetPriority = 13 => "set_priority",
    }
}

xen_enum! {
    /// `evtchn_status.status`.
    pub enum EvtchnStat: u32, prefix "EVTCHNSTAT_" {
        /// Closed.
        Closed = 0 => "closed",
        /// Allocated, waiting for a remote domain.
        Unbound = 1 => "unbound",
        /// Connected to another domain.
        Interdomain = 2 => "interdomain",
        /// Bound to a physical IRQ.
        Pirq = 3 => "pirq",
        /// Bound to a VIRQ.
        Virq = 4 => "virq",
        /// Bound to an IPI.
        Ipi = 5 => "ipi",
    }
}

/// `struct evtchn_alloc_unbound`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnAllocUnbound {
    /// IN: the allocating domain (`DOMID_SELF`).
    pub dom: u16,
    /// IN: the domain that may bind.
    pub remote_dom: u16,
    /// OUT: the new port.
    pub port: u32,
}

/// `struct evtchn_bind_interdomain`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnBindInterdomain {
    /// IN: the remote domain.
    pub remote_dom: u16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: u16,
    /// IN: the remote port.
    pub remote_port: u32,
    /// OUT: the local port.
    pub local_port: u32,
}

/// `struct evtchn_bind_virq`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnBindVirq {
    /// IN: the VIRQ.
    pub virq: u32,
    /// IN: the vCPU to notify.
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: u32,
}

/// `BIND_PIRQ__WILL_SHARE`: the PIRQ may be shared.
pub const BIND_PIRQ__WILL_SHARE: u32 = 1;

/// `struct evtchn_bind_pirq`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnBindPirq {
    /// IN: the physical IRQ.
    pub pirq: u32,
    /// IN: `BIND_PIRQ__*`.
    pub flags: u32,
    /// OUT: the new port.
    pub port: u32,
}

/// `struct evtchn_bind_ipi`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnBindIpi {
    /// IN: the vCPU to notify.
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: u32,
}

/// `struct evtchn_close`, `struct evtchn_send` and `struct evtchn_unmask`: one port.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnPortArg {
    /// IN: the port.
    pub port: u32,
}

/// `struct evtchn_close`.
pub type EvtchnClose = EvtchnPortArg;
/// `struct evtchn_send`.
pub type EvtchnSend = EvtchnPortArg;
/// `struct evtchn_unmask`.
pub type EvtchnUnmask = EvtchnPortArg;

/// `struct evtchn_status`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnStatus {
    /// IN: the domain (`DOMID_SELF` or, for dom0, any).
    pub dom: u16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: u16,
    /// IN: the port.
    pub port: u32,
    /// OUT: [`EvtchnStat`].
    pub status: u32,
    /// OUT: the vCPU notified.
    pub vcpu: u32,
    /// OUT: the union `u`: `unbound.dom`, `interdomain.{dom, port}`, `pirq` or `virq`.
    /// The first word holds `dom` (low 16 bits), `pirq` or `virq`; the second the port.
    pub u: [u32; 2],
}

/// `struct evtchn_bind_vcpu`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnBindVcpu {
    /// IN: the port.
    pub port: u32,
    /// IN: the vCPU to notify from now on.
    pub vcpu: u32,
}

/// `struct evtchn_reset`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnReset {
    /// IN: the domain.
    pub dom: u16,
}
