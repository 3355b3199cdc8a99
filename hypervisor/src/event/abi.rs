//! The few numbers of Xen's public ABI that event channels, timers and the scheduler need.
//!
//! They are local copies, checked against `xen/include/public/{errno,xen,event_channel,vcpu}.h`
//! (Xen 4.17), kept in this one file so that switching to the shared `guest-abi` crate later is
//! a matter of replacing this module with re-exports.

use guest_abi::XenError;

/// The identifiers are guest-abi's, the one set the whole hypervisor uses.
pub use guest_abi::{DomId, EvtchnPort, VcpuId};

/// `XEN_LEGACY_MAX_VCPUS`: vCPUs whose `vcpu_info` lives in the shared_info page. It is also
/// the vCPU limit per domain: `VCPUOP_register_vcpu_info` can move a vCPU's `vcpu_info` into a
/// guest frame, but every vCPU is created with its domain, and the port tables keep per-vCPU
/// state for this many.
pub const MAX_VCPUS: usize = 32;

/// Bits in one word of the 2-level pending/mask arrays (`xen_ulong_t` on x86-64).
pub const BITS_PER_EVTCHN_WORD: usize = 64;

/// Ports of the 2-level ABI for 64-bit guests: `EVTCHN_2L_NR_CHANNELS` = 64 × 64.
pub const NR_EVENT_CHANNELS: usize = BITS_PER_EVTCHN_WORD * BITS_PER_EVTCHN_WORD;

/// `NR_VIRQS`.
pub const NR_VIRQS: usize = 24;

/// A virtual IRQ number, known to be below [`NR_VIRQS`] (Xen binds any such number, including
/// the unassigned ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Virq(u8);

impl Virq {
    /// `VIRQ_TIMER` (per vCPU): timebase update or requested timeout.
    pub const TIMER: Self = Self(0);
    /// `VIRQ_DEBUG` (per vCPU): request to dump debug information.
    pub const DEBUG: Self = Self(1);
    /// `VIRQ_CONSOLE` (global): bytes received on the emergency console.
    pub const CONSOLE: Self = Self(2);
    /// `VIRQ_DOM_EXC` (global): an exceptional event for some domain.
    pub const DOM_EXC: Self = Self(3);
    /// `VIRQ_TBUF` (global): trace buffer records available.
    pub const TBUF: Self = Self(4);
    /// `VIRQ_DEBUGGER` (global): a domain paused for debugging.
    pub const DEBUGGER: Self = Self(6);
    /// `VIRQ_XENOPROF` (per vCPU): new profiling sample.
    pub const XENOPROF: Self = Self(7);
    /// `VIRQ_CON_RING` (global): bytes received on the console ring.
    pub const CON_RING: Self = Self(8);
    /// `VIRQ_PCPU_STATE` (global): physical CPU state changed.
    pub const PCPU_STATE: Self = Self(9);
    /// `VIRQ_MEM_EVENT` (global): a memory event occurred.
    pub const MEM_EVENT: Self = Self(10);
    /// `VIRQ_ARGO` (global): Argo message notification.
    pub const ARGO: Self = Self(11);
    /// `VIRQ_ENOMEM` (global): low on heap memory.
    pub const ENOMEM: Self = Self(12);
    /// `VIRQ_XENPMU` (per vCPU): performance counter interrupt.
    pub const XENPMU: Self = Self(13);

    /// The VIRQ numbered `n`, if `n < NR_VIRQS`.
    pub const fn new(n: u32) -> Option<Self> {
        if (n as usize) < NR_VIRQS {
            Some(Self(n as u8))
        } else {
            None
        }
    }

    /// The VIRQ's number.
    pub const fn number(self) -> u32 {
        self.0 as u32
    }

    /// The VIRQ as an index into per-VIRQ tables.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Xen's `virq_is_global`: global VIRQs are bound on vCPU 0 and may be moved with
    /// `EVTCHNOP_bind_vcpu`; the others are per vCPU and stay on the vCPU they were bound for.
    /// `VIRQ_ARCH_*` are global on x86.
    pub const fn is_global(self) -> bool {
        !matches!(
            self,
            Self::TIMER | Self::DEBUG | Self::XENOPROF | Self::XENPMU
        )
    }
}

/// `EVTCHNOP_*` sub-operations of `HYPERVISOR_event_channel_op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvtchnOp {
    /// `EVTCHNOP_bind_interdomain` (0).
    BindInterdomain,
    /// `EVTCHNOP_bind_virq` (1).
    BindVirq,
    /// `EVTCHNOP_bind_pirq` (2).
    BindPirq,
    /// `EVTCHNOP_close` (3).
    Close,
    /// `EVTCHNOP_send` (4).
    Send,
    /// `EVTCHNOP_status` (5).
    Status,
    /// `EVTCHNOP_alloc_unbound` (6).
    AllocUnbound,
    /// `EVTCHNOP_bind_ipi` (7).
    BindIpi,
    /// `EVTCHNOP_bind_vcpu` (8).
    BindVcpu,
    /// `EVTCHNOP_unmask` (9).
    Unmask,
    /// `EVTCHNOP_reset` (10).
    Reset,
    /// `EVTCHNOP_init_control` (11): FIFO ABI, not supported.
    InitControl,
    /// `EVTCHNOP_expand_array` (12): FIFO ABI, not supported.
    ExpandArray,
    /// `EVTCHNOP_set_priority` (13): FIFO ABI, not supported.
    SetPriority,
}

impl TryFrom<u32> for EvtchnOp {
    type Error = XenError;

    /// Unknown sub-operations are `-ENOSYS`, as in Xen.
    fn try_from(cmd: u32) -> Result<Self, XenError> {
        Ok(match cmd {
            0 => Self::BindInterdomain,
            1 => Self::BindVirq,
            2 => Self::BindPirq,
            3 => Self::Close,
            4 => Self::Send,
            5 => Self::Status,
            6 => Self::AllocUnbound,
            7 => Self::BindIpi,
            8 => Self::BindVcpu,
            9 => Self::Unmask,
            10 => Self::Reset,
            11 => Self::InitControl,
            12 => Self::ExpandArray,
            13 => Self::SetPriority,
            _ => return Err(XenError::NoSys),
        })
    }
}

/// `EVTCHNSTAT_*` values of `evtchn_status.status`.
pub mod evtchnstat {
    /// Channel is not in use.
    pub const CLOSED: u32 = 0;
    /// Channel is waiting for an interdomain connection.
    pub const UNBOUND: u32 = 1;
    /// Channel is connected to a remote domain.
    pub const INTERDOMAIN: u32 = 2;
    /// Channel is bound to a physical IRQ.
    pub const PIRQ: u32 = 3;
    /// Channel is bound to a virtual IRQ.
    pub const VIRQ: u32 = 4;
    /// Channel is bound to a virtual IPI.
    pub const IPI: u32 = 5;
}

/// `VCPU_SSHOTTMR_future`: fail `set_singleshot_timer` with `-ETIME` if the deadline has passed.
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;

/// `XEN_PVCLOCK_TSC_STABLE_BIT` in `vcpu_time_info.flags`.
pub const PVCLOCK_TSC_STABLE: u8 = 1 << 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evtchn_ops_decode_and_unknown_is_enosys() {
        assert_eq!(EvtchnOp::try_from(0), Ok(EvtchnOp::BindInterdomain));
        assert_eq!(EvtchnOp::try_from(6), Ok(EvtchnOp::AllocUnbound));
        assert_eq!(EvtchnOp::try_from(10), Ok(EvtchnOp::Reset));
        assert_eq!(EvtchnOp::try_from(14), Err(XenError::NoSys));
        assert_eq!(EvtchnOp::try_from(u32::MAX), Err(XenError::NoSys));
    }

    #[test]
    fn virq_classes_follow_xen() {
        let per_vcpu = [Virq::TIMER, Virq::DEBUG, Virq::XENOPROF, Virq::XENPMU];
        for n in 0..NR_VIRQS as u32 {
            let v = Virq::new(n).unwrap();
            assert_eq!(v.is_global(), !per_vcpu.contains(&v), "virq {n}");
        }
        assert!(Virq::new(NR_VIRQS as u32).is_none());
        assert!(Virq::CONSOLE.is_global() && Virq::DOM_EXC.is_global());
    }

    #[test]
    fn domid_self_resolves_to_caller() {
        assert_eq!(DomId::SELF.or_self(DomId(3)), DomId(3));
        assert_eq!(DomId(5).or_self(DomId(3)), DomId(5));
    }
}
