//! Why an event channel operation failed, and the errno Xen returns for it.

use super::abi::{DomId, EvtchnPort, VcpuId};
use guest_abi::XenError;

/// An event channel operation's failure. [`EvtchnError::errno`] maps it to Xen's errno at the
/// hypercall boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvtchnError {
    /// No domain with this id (`-ESRCH`).
    NoSuchDomain(DomId),
    /// The domain has no such vCPU (`-ENOENT`).
    NoSuchVcpu(VcpuId),
    /// The port is beyond the domain's allocated ports (`-EINVAL`).
    InvalidPort(EvtchnPort),
    /// The port is not in a state this operation accepts, e.g. sending on a closed port or
    /// closing port 0 (`-EINVAL`).
    WrongState(EvtchnPort),
    /// `bind_interdomain` named a remote port that is not unbound and waiting for the caller
    /// (`-EINVAL`).
    NotUnboundForUs {
        /// The remote domain.
        dom: DomId,
        /// The remote port.
        port: EvtchnPort,
    },
    /// The VIRQ number is not below `NR_VIRQS` (`-EINVAL`).
    InvalidVirq(u32),
    /// A global VIRQ must be bound on vCPU 0 (`-EINVAL`).
    GlobalVirqOffVcpu0,
    /// Per-vCPU VIRQ and IPI channels stay on the vCPU they were bound for (`-EINVAL`).
    FixedVcpu(EvtchnPort),
    /// The VIRQ is already bound on this vCPU (`-EEXIST`).
    VirqBound,
    /// Every port up to the domain's limit is in use (`-ENOSPC`).
    NoFreePort,
    /// The caller may not act on another domain (`-EPERM`).
    NotPermitted,
    /// `EVTCHNOP_reset` of another domain that its controller has not paused (`-EINVAL`).
    NotPaused(DomId),
    /// Physical IRQs are not passed through to any domain (`-EPERM`).
    PirqUnsupported,
    /// FIFO ABI operations are not implemented; guests fall back to 2-level (`-ENOSYS`).
    Unsupported,
    /// The domain that would get the new port is being destroyed (`-EINVAL`).
    Dying,
}

impl EvtchnError {
    /// The errno Xen returns for this failure.
    pub const fn errno(self) -> XenError {
        match self {
            Self::NoSuchDomain(_) => XenError::Srch,
            Self::NoSuchVcpu(_) => XenError::NoEnt,
            Self::InvalidPort(_)
            | Self::WrongState(_)
            | Self::NotUnboundForUs { .. }
            | Self::InvalidVirq(_)
            | Self::GlobalVirqOffVcpu0
            | Self::FixedVcpu(_)
            | Self::NotPaused(_)
            | Self::Dying => XenError::Inval,
            Self::VirqBound => XenError::Exist,
            Self::NoFreePort => XenError::NoSpc,
            Self::NotPermitted | Self::PirqUnsupported => XenError::Perm,
            Self::Unsupported => XenError::NoSys,
        }
    }
}

impl core::fmt::Display for EvtchnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoSuchDomain(d) => write!(f, "no domain {}", d.0),
            Self::NoSuchVcpu(v) => write!(f, "no vcpu {}", v.0),
            Self::InvalidPort(p) => write!(f, "port {} out of range", p.0),
            Self::WrongState(p) => write!(f, "port {} is in the wrong state", p.0),
            Self::NotUnboundForUs { dom, port } => {
                write!(
                    f,
                    "port {} of domain {} is not waiting for us",
                    port.0, dom.0
                )
            }
            Self::InvalidVirq(v) => write!(f, "no virq {v}"),
            Self::GlobalVirqOffVcpu0 => write!(f, "global virqs bind on vcpu 0"),
            Self::FixedVcpu(p) => write!(f, "port {} cannot change vcpu", p.0),
            Self::VirqBound => write!(f, "virq already bound"),
            Self::NoFreePort => write!(f, "no free port"),
            Self::NotPermitted => write!(f, "not permitted"),
            Self::NotPaused(d) => write!(f, "domain {} is not paused", d.0),
            Self::PirqUnsupported => write!(f, "physical irqs are not supported"),
            Self::Unsupported => write!(f, "operation not supported"),
            Self::Dying => write!(f, "the domain is dying"),
        }
    }
}
