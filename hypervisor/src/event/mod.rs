//! Event channels: Xen's 2-level event ABI.
//!
//! # Model
//! Every domain has a port table ([`EventChannels`]): port `p` is free, reserved (port 0),
//! unbound (waiting for one named domain to connect), interdomain (connected to a port of
//! another domain or of the same one), bound to a VIRQ, or an IPI. An event on a port sets its
//! bit in the domain's `shared_info.evtchn_pending`; if the port is not masked that raises the
//! port's word in the notify vCPU's `evtchn_pending_sel` and then its `evtchn_upcall_pending`,
//! and a 0→1 change of the latter means the vCPU needs a kick (see [`shared`]).
//!
//! # Invariants
//! 1. EvtchnPort 0 of every domain is reserved; ports beyond a domain's valid range are free.
//! 2. If port `p` of domain `a` is interdomain to port `q` of domain `b`, then port `q` of `b`
//!    is interdomain to port `p` of `a` (`a == b` for loopback). Closing one end returns the
//!    other to unbound, waiting for `a`.
//! 3. A VIRQ is bound to at most one port per vCPU (global VIRQs: on vCPU 0), and the per-vCPU
//!    VIRQ table and the port states agree.
//! 4. A port notifies a vCPU that exists; a free port notifies vCPU 0.
//! 5. Guest input never panics: every port, vCPU, VIRQ and domain id is checked and answered
//!    with Xen's errno.
//!
//! [`evtchn_ops::check_links`] and [`EventChannels::check`] verify these; property tests run random
//! operation sequences against them.
//!
//! # Locking
//! The logic takes `&mut` access to the domains it touches; see [`evtchn_ops::Domains`] for the
//! lock order the hypervisor must follow. The shared_info bits are changed with atomic
//! operations only, because guests change them concurrently.

pub mod abi;
pub mod channel;
pub mod error;
pub mod evtchn_ops;
pub mod shared;

#[cfg(test)]
pub(crate) mod tests;

pub use abi::{DomId, EvtchnPort, VcpuId, Virq};
pub use channel::{Channel, ChannelState, ChannelStore, EventChannels, VcpuSet};
pub use error::EvtchnError;
pub use evtchn_ops::{Caller, DomainEvents, Domains, Status, StatusState, Wake};
pub use shared::{SharedInfo, SharedInfoView};
