//! The subset of `domctl` (`domctl.h`, Xen 4.17, interface version 0x15) that the dom0
//! toolstack uses: create, destroy, pause, unpause, getdomaininfo, max_mem, max_vcpus and
//! get/setvcpucontext. The command numbers are complete.

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::macros::xen_enum;
use crate::payload::{PAYLOAD_SIZE, Payload};
use crate::version::XenDomainHandle;

/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17.
pub const XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x0000_0015;

xen_enum! {
    /// `xen_domctl.cmd`.
    pub enum DomctlCmd: u32, prefix "XEN_DOMCTL_" {
        /// Create a domain (`xen_domctl_createdomain`).
        Createdomain = 1 => "createdomain",
        /// Destroy a domain.
        Destroydomain = 2 => "destroydomain",
        /// Pause a domain.
        Pausedomain = 3 => "pausedomain",
        /// Unpause a domain.
        Unpausedomain = 4 => "unpausedomain",
        /// Information about a domain (`xen_domctl_getdomaininfo`).
        Getdomaininfo = 5 => "getdomaininfo",
        /// Set a vCPU's affinity.
        Setvcpuaffinity = 9 => "setvcpuaffinity",
        /// Shadow paging control.
        ShadowOp = 10 => "shadow_op",
        /// Set the memory limit (`xen_domctl_max_mem`).
        MaxMem = 11 => "max_mem",
        /// Set a vCPU's context (`xen_domctl_vcpucontext`).
        Setvcpucontext = 12 => "setvcpucontext",
        /// Read a vCPU's context.
        Getvcpucontext = 13 => "getvcpucontext",
        /// vCPU information.
        Getvcpuinfo = 14 => "getvcpuinfo",
        /// Set the vCPU count (`xen_domctl_max_vcpus`).
        MaxVcpus = 15 => "max_vcpus",
        /// Scheduler parameters.
        SchedulerOp = 16 => "scheduler_op",
        /// Set the domain handle.
        Setdomainhandle = 17 => "setdomainhandle",
        /// Enable debugging.
        Setdebugging = 18 => "setdebugging",
        /// Grant an IRQ.
        IrqPermission = 19 => "irq_permission",
        /// Grant I/O memory.
        IomemPermission = 20 => "iomem_permission",
        /// Grant I/O ports.
        IoportPermission = 21 => "ioport_permission",
        /// Write a hypercall page into a domain.
        HypercallInit = 22 => "hypercall_init",
        /// Set the wallclock offset.
        Settimeoffset = 24 => "settimeoffset",
        /// Read a vCPU's affinity.
        Getvcpuaffinity = 25 => "getvcpuaffinity",
        /// Obsolete (PPC).
        RealModeArea = 26 => "real_mode_area",
        /// Resume a suspended domain.
        Resumedomain = 27 => "resumedomain",
        /// Send a trigger (NMI, power button...).
        Sendtrigger = 28 => "sendtrigger",
        /// Subscribe to suspend notifications.
        Subscribe = 29 => "subscribe",
        /// Read HVM context.
        Gethvmcontext = 33 => "gethvmcontext",
        /// Write HVM context.
        Sethvmcontext = 34 => "sethvmcontext",
        /// Set the guest address size.
        SetAddressSize = 35 => "set_address_size",
        /// Read the guest address size.
        GetAddressSize = 36 => "get_address_size",
        /// Assign a device.
        AssignDevice = 37 => "assign_device",
        /// Bind a passthrough IRQ.
        BindPtIrq = 38 => "bind_pt_irq",
        /// Map machine memory.
        MemoryMapping = 39 => "memory_mapping",
        /// Map I/O ports.
        IoportMapping = 40 => "ioport_mapping",
        /// Set extended vCPU context.
        SetExtVcpucontext = 42 => "set_ext_vcpucontext",
        /// Read extended vCPU context.
        GetExtVcpucontext = 43 => "get_ext_vcpucontext",
        /// Obsolete (IA64).
        SetOptFeature = 44 => "set_opt_feature",
        /// Test whether a device can be assigned.
        TestAssignDevice = 45 => "test_assign_device",
        /// Set the target domain (device model).
        SetTarget = 46 => "set_target",
        /// Deassign a device.
        DeassignDevice = 47 => "deassign_device",
        /// Unbind a passthrough IRQ.
        UnbindPtIrq = 48 => "unbind_pt_irq",
        /// Device group.
        GetDeviceGroup = 50 => "get_device_group",
        /// Debugger operations.
        DebugOp = 54 => "debug_op",
        /// Read part of the HVM context.
        GethvmcontextPartial = 55 => "gethvmcontext_partial",
        /// VM event operations.
        VmEventOp = 56 => "vm_event_op",
        /// Memory sharing operations.
        MemSharingOp = 57 => "mem_sharing_op",
        /// Read TSC information.
        Gettscinfo = 59 => "gettscinfo",
        /// Set TSC information.
        Settscinfo = 60 => "settscinfo",
        /// Page frame types.
        Getpageframeinfo3 = 61 => "getpageframeinfo3",
        /// Set extended vCPU state.
        Setvcpuextstate = 62 => "setvcpuextstate",
        /// Read extended vCPU state.
        Getvcpuextstate = 63 => "getvcpuextstate",
        /// Require a memory access listener.
        SetAccessRequired = 64 => "set_access_required",
        /// Audit the P2M.
        AuditP2m = 65 => "audit_p2m",
        /// Route a global VIRQ.
        SetVirqHandler = 66 => "set_virq_handler",
        /// Mark a broken page.
        SetBrokenPageP2m = 67 => "set_broken_page_p2m",
        /// Set NUMA node affinity.
        Setnodeaffinity = 68 => "setnodeaffinity",
        /// Read NUMA node affinity.
        Getnodeaffinity = 69 => "getnodeaffinity",
        /// Cache flush.
        Cacheflush = 71 => "cacheflush",
        /// Read vCPU MSRs.
        GetVcpuMsrs = 72 => "get_vcpu_msrs",
        /// Set vCPU MSRs.
        SetVcpuMsrs = 73 => "set_vcpu_msrs",
        /// Set vNUMA information.
        Setvnumainfo = 74 => "setvnumainfo",
        /// Cache monitoring.
        PsrCmtOp = 75 => "psr_cmt_op",
        /// Monitor operations.
        MonitorOp = 77 => "monitor_op",
        /// Cache allocation.
        PsrAlloc = 78 => "psr_alloc",
        /// Soft reset.
        SoftReset = 79 => "soft_reset",
        /// Virtual UART.
        VuartOp = 81 => "vuart_op",
        /// Read the CPU policy.
        GetCpuPolicy = 82 => "get_cpu_policy",
        /// Set the CPU policy.
        SetCpuPolicy = 83 => "set_cpu_policy",
        /// Processor trace.
        VmtraceOp = 84 => "vmtrace_op",
        /// Read the paging pool size.
        GetPagingMempoolSize = 85 => "get_paging_mempool_size",
        /// Set the paging pool size.
        SetPagingMempoolSize = 86 => "set_paging_mempool_size",
        /// gdbsx: guest memory I/O.
        GdbsxGuestmemio = 1000 => "gdbsx_guestmemio",
        /// gdbsx: pause a vCPU.
        GdbsxPausevcpu = 1001 => "gdbsx_pausevcpu",
        /// gdbsx: unpause a vCPU.
        GdbsxUnpausevcpu = 1002 => "gdbsx_unpausevcpu",
        /// gdbsx: domain status.
        GdbsxDomstatus = 1003 => "gdbsx_domstatus",
    }
}

/// `struct xen_domctl`: the argument of the `domctl` hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(8))]
pub struct XenDomctl {
    /// [`DomctlCmd`].
    pub cmd: u32,
    /// Must be [`XEN_DOMCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// The target domain.
    pub domain: u16,
    /// Padding.
    pub _pad: [u16; 3],
    /// The `u` union: the command's payload.
    pub u: Payload,
}

impl XenDomctl {
    /// A request for `cmd` on `domain` with a zero payload.
    pub const fn new(cmd: DomctlCmd, domain: u16) -> Self {
        Self {
            cmd: cmd as u32,
            interface_version: XEN_DOMCTL_INTERFACE_VERSION,
            domain,
            _pad: [0; 3],
            u: Payload::ZERO,
        }
    }

    /// A request for `cmd` on `domain` carrying `payload`.
    pub fn with_payload<T: IntoBytes + Immutable>(
        cmd: DomctlCmd,
        domain: u16,
        payload: &T,
    ) -> Self {
        let mut d = Self::new(cmd, domain);
        d.u.write(payload);
        d
    }
}

/// `struct xen_arch_domainconfig` (x86).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenArchDomainconfig {
    /// `XEN_X86_EMU_*`: emulated devices (0 for PV).
    pub emulation_flags: u32,
    /// `XEN_X86_MSR_RELAXED` etc.
    pub misc_flags: u32,
}

bitflags! {
    /// `xen_domctl_createdomain.flags` (`XEN_DOMCTL_CDF_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct CdfFlags: u32 {
        /// HVM guest.
        const HVM = 1 << 0;
        /// Hardware-assisted paging.
        const HAP = 1 << 1;
        /// tboot integrity.
        const S3_INTEGRITY = 1 << 2;
        /// No out-of-sync shadows.
        const OOS_OFF = 1 << 3;
        /// Xenstore domain.
        const XS_DOMAIN = 1 << 4;
        /// May use the IOMMU.
        const IOMMU = 1 << 5;
        /// Nested virtualisation.
        const NESTED_VIRT = 1 << 6;
        /// Virtual PMU.
        const VPMU = 1 << 7;
    }
}

/// `struct xen_domctl_createdomain`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenDomctlCreatedomain {
    /// Security label.
    pub ssidref: u32,
    /// The domain's UUID.
    pub handle: XenDomainHandle,
    /// [`CdfFlags`].
    pub flags: u32,
    /// `XEN_DOMCTL_IOMMU_*`.
    pub iommu_opts: u32,
    /// vCPUs.
    pub max_vcpus: u32,
    /// Highest event channel port.
    pub max_evtchn_port: u32,
    /// Grant frames (negative: default).
    pub max_grant_frames: i32,
    /// Maptrack frames (negative: default).
    pub max_maptrack_frames: i32,
    /// Grant table version in the low 4 bits.
    pub grant_opts: u32,
    /// Per-vCPU trace buffer size.
    pub vmtrace_size: u32,
    /// CPU pool.
    pub cpupool_id: u32,
    /// Arch configuration.
    pub arch: XenArchDomainconfig,
}

bitflags! {
    /// `xen_domctl_getdomaininfo.flags` (`XEN_DOMINF_*`), besides the shutdown code.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct DominfFlags: u32 {
        /// Scheduled to die.
        const DYING = 1 << 0;
        /// HVM guest.
        const HVM_GUEST = 1 << 1;
        /// The guest has shut down.
        const SHUTDOWN = 1 << 2;
        /// Paused by the toolstack.
        const PAUSED = 1 << 3;
        /// Blocked waiting for an event.
        const BLOCKED = 1 << 4;
        /// Running.
        const RUNNING = 1 << 5;
        /// Being debugged.
        const DEBUGGED = 1 << 6;
        /// Xenstore domain.
        const XS_DOMAIN = 1 << 7;
        /// Hardware-assisted paging.
        const HAP = 1 << 8;
    }
}

/// `XEN_DOMINF_shutdownshift`: where the shutdown code sits in `flags`.
pub const XEN_DOMINF_SHUTDOWNSHIFT: u32 = 16;
/// `XEN_DOMINF_shutdownmask`: its width.
pub const XEN_DOMINF_SHUTDOWNMASK: u32 = 255;
/// `XEN_INVALID_MAX_VCPU_ID`: the domain has no vCPUs.
pub const XEN_INVALID_MAX_VCPU_ID: u32 = !0;

/// `struct xen_domctl_getdomaininfo`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenDomctlGetdomaininfo {
    /// The domain.
    pub domain: u16,
    /// Padding.
    pub pad1: u16,
    /// [`DominfFlags`] and the shutdown code.
    pub flags: u32,
    /// Pages owned.
    pub tot_pages: u64,
    /// Page limit.
    pub max_pages: u64,
    /// Claimed but unallocated pages.
    pub outstanding_pages: u64,
    /// Shared pages.
    pub shr_pages: u64,
    /// Paged-out pages.
    pub paged_pages: u64,
    /// Frame of the shared info page.
    pub shared_info_frame: u64,
    /// CPU time used (ns).
    pub cpu_time: u64,
    /// vCPUs online.
    pub nr_online_vcpus: u32,
    /// Highest vCPU id.
    pub max_vcpu_id: u32,
    /// Security label.
    pub ssidref: u32,
    /// UUID.
    pub handle: XenDomainHandle,
    /// CPU pool.
    pub cpupool: u32,
    /// Guest physical address bits.
    pub gpaddr_bits: u8,
    /// Padding.
    pub pad2: [u8; 7],
    /// Arch configuration.
    pub arch_config: XenArchDomainconfig,
}

/// `struct xen_domctl_max_mem`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenDomctlMaxMem {
    /// Limit in KiB.
    pub max_memkb: u64,
}

/// `struct xen_domctl_vcpucontext`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenDomctlVcpucontext {
    /// The vCPU.
    pub vcpu: u32,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: u32,
    /// Guest handle of a [`VcpuGuestContext`](crate::arch::VcpuGuestContext).
    pub ctxt: u64,
}

/// `struct xen_domctl_max_vcpus`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenDomctlMaxVcpus {
    /// vCPU count.
    pub max: u32,
}

const _: () = assert!(size_of::<XenDomctl>() == 144);
const _: () = assert!(size_of::<XenDomctlGetdomaininfo>() <= PAYLOAD_SIZE);
const _: () = assert!(size_of::<XenDomctlCreatedomain>() <= PAYLOAD_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let info = XenDomctlMaxMem { max_memkb: 65536 };
        let d = XenDomctl::with_payload(DomctlCmd::MaxMem, 3, &info);
        assert_eq!(d.interface_version, XEN_DOMCTL_INTERFACE_VERSION);
        assert_eq!(d.u.read::<XenDomctlMaxMem>(), Some(info));
    }
}
