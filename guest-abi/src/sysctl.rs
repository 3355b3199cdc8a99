//! The subset of `sysctl` (`sysctl.h`, Xen 4.17, interface version 0x15) that the dom0
//! toolstack uses: physinfo and getdomaininfolist. The command numbers are complete.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::macros::xen_enum;
use crate::payload::Payload;

/// `XEN_SYSCTL_INTERFACE_VERSION` of Xen 4.17.
pub const XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x0000_0015;

xen_enum! {
    /// `xen_sysctl.cmd`.
    pub enum SysctlCmd: u32, prefix "XEN_SYSCTL_" {
        /// Read the console ring.
        Readconsole = 1 => "readconsole",
        /// Trace buffer control.
        TbufOp = 2 => "tbuf_op",
        /// Host information (`xen_sysctl_physinfo`).
        Physinfo = 3 => "physinfo",
        /// Scheduler id.
        SchedId = 4 => "sched_id",
        /// Performance counters.
        PerfcOp = 5 => "perfc_op",
        /// Information about several domains (`xen_sysctl_getdomaininfolist`).
        Getdomaininfolist = 6 => "getdomaininfolist",
        /// Send debug keys.
        DebugKeys = 7 => "debug_keys",
        /// Physical CPU information.
        Getcpuinfo = 8 => "getcpuinfo",
        /// Free heap.
        Availheap = 9 => "availheap",
        /// Power-management statistics.
        GetPmstat = 10 => "get_pmstat",
        /// CPU hotplug.
        CpuHotplug = 11 => "cpu_hotplug",
        /// Power-management operations.
        PmOp = 12 => "pm_op",
        /// Offline pages.
        PageOfflineOp = 14 => "page_offline_op",
        /// Lock profiling.
        LockprofOp = 15 => "lockprof_op",
        /// CPU topology.
        Cputopoinfo = 16 => "cputopoinfo",
        /// NUMA information.
        Numainfo = 17 => "numainfo",
        /// CPU pools.
        CpupoolOp = 18 => "cpupool_op",
        /// Scheduler control.
        SchedulerOp = 19 => "scheduler_op",
        /// Coverage.
        CoverageOp = 20 => "coverage_op",
        /// Cache monitoring.
        PsrCmtOp = 21 => "psr_cmt_op",
        /// PCI topology.
        Pcitopoinfo = 22 => "pcitopoinfo",
        /// Cache allocation.
        PsrAlloc = 23 => "psr_alloc",
        /// CPU levelling capabilities.
        GetCpuLevellingCaps = 25 => "get_cpu_levelling_caps",
        /// CPU feature set.
        GetCpuFeatureset = 26 => "get_cpu_featureset",
        /// Live patching.
        LivepatchOp = 27 => "livepatch_op",
        /// CPU policy.
        GetCpuPolicy = 29 => "get_cpu_policy",
    }
}

/// `struct xen_sysctl`: the argument of the `sysctl` hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(8))]
pub struct XenSysctl {
    /// [`SysctlCmd`].
    pub cmd: u32,
    /// Must be [`XEN_SYSCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// The `u` union: the command's payload.
    pub u: Payload,
}

impl XenSysctl {
    /// A request for `cmd` with a zero payload.
    pub const fn new(cmd: SysctlCmd) -> Self {
        Self {
            cmd: cmd as u32,
            interface_version: XEN_SYSCTL_INTERFACE_VERSION,
            u: Payload::ZERO,
        }
    }

    /// A request for `cmd` carrying `payload`.
    pub fn with_payload<T: IntoBytes + Immutable>(cmd: SysctlCmd, payload: &T) -> Self {
        let mut s = Self::new(cmd);
        s.u.write(payload);
        s
    }
}

/// `XEN_SYSCTL_PHYSCAP_hvm`: HVM guests supported.
pub const XEN_SYSCTL_PHYSCAP_HVM: u32 = 1 << 0;
/// `XEN_SYSCTL_PHYSCAP_pv`: PV guests supported.
pub const XEN_SYSCTL_PHYSCAP_PV: u32 = 1 << 1;
/// `XEN_SYSCTL_PHYSCAP_directio`: device passthrough supported.
pub const XEN_SYSCTL_PHYSCAP_DIRECTIO: u32 = 1 << 2;
/// `XEN_SYSCTL_PHYSCAP_gnttab_v1`: grant table v1 supported.
pub const XEN_SYSCTL_PHYSCAP_GNTTAB_V1: u32 = 1 << 8;

/// `struct xen_sysctl_physinfo`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenSysctlPhysinfo {
    /// Threads per core.
    pub threads_per_core: u32,
    /// Cores per socket.
    pub cores_per_socket: u32,
    /// CPUs online.
    pub nr_cpus: u32,
    /// Highest possible CPU id.
    pub max_cpu_id: u32,
    /// NUMA nodes online.
    pub nr_nodes: u32,
    /// Highest possible node id.
    pub max_node_id: u32,
    /// CPU frequency in kHz.
    pub cpu_khz: u32,
    /// `XEN_SYSCTL_PHYSCAP_*`.
    pub capabilities: u32,
    /// Arch-specific capabilities.
    pub arch_capabilities: u32,
    /// Padding.
    pub pad: u32,
    /// Host pages.
    pub total_pages: u64,
    /// Free pages.
    pub free_pages: u64,
    /// Pages waiting to be scrubbed.
    pub scrub_pages: u64,
    /// Claimed pages.
    pub outstanding_pages: u64,
    /// Highest possible MFN.
    pub max_mfn: u64,
    /// CPUID feature words.
    pub hw_cap: [u32; 8],
}

/// `struct xen_sysctl_getdomaininfolist`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenSysctlGetdomaininfolist {
    /// IN: first domain id to report.
    pub first_domain: u16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole0: u16,
    /// IN: room in the buffer.
    pub max_domains: u32,
    /// IN: guest handle of an array of
    /// [`XenDomctlGetdomaininfo`](crate::domctl::XenDomctlGetdomaininfo).
    pub buffer: u64,
    /// OUT: domains written.
    pub num_domains: u32,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole1: u32,
}

const _: () = assert!(size_of::<XenSysctl>() == 136);
