//! What the toolstack needs from the hypervisor: the [`Hypervisor`] trait, which the dom0
//! kernel implements with hypercalls, and the decoded results it returns.
//!
//! Each method is one hypercall (or one foreign-memory operation) of Xen's ABI, named in
//! its documentation; the kernel's implementation fills the request struct from
//! `guest_abi` and decodes the answer. Failures are Xen's errno values.

use alloc::string::String;
use alloc::vec::Vec;

use guest_abi::arch::VcpuGuestContext;
use guest_abi::domctl::{
    DominfFlags, XEN_DOMINF_SHUTDOWNMASK, XEN_DOMINF_SHUTDOWNSHIFT, XenDomctlCreatedomain,
    XenDomctlGetdomaininfo,
};
use guest_abi::sched::ShutdownReason;
use guest_abi::sysctl::XenSysctlPhysinfo;
use guest_abi::{DomId, EvtchnPort, Mfn, PAGE_SIZE, Pfn, VcpuId, XenError};

use crate::blkback::grants::GrantCopy;
use crate::console::ConsoleRing;

/// One domain as `XEN_DOMCTL_getdomaininfo` / `XEN_SYSCTL_getdomaininfolist` report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    /// The domain.
    pub id: DomId,
    /// `XEN_DOMINF_*` flags (without the shutdown code).
    pub flags: DominfFlags,
    /// The shutdown code (`SHUTDOWN_*`), meaningful when [`DominfFlags::SHUTDOWN`] is set.
    pub shutdown_code: u32,
    /// Pages the domain owns.
    pub tot_pages: u64,
    /// Its page limit.
    pub max_pages: u64,
    /// The frame of its shared info page.
    pub shared_info_frame: Mfn,
    /// CPU time used, in nanoseconds.
    pub cpu_time_ns: u64,
    /// vCPUs online.
    pub online_vcpus: u32,
}

impl DomainInfo {
    /// Decodes the hypervisor's answer.
    pub fn from_raw(raw: &XenDomctlGetdomaininfo) -> Self {
        Self {
            id: DomId(raw.domain),
            flags: DominfFlags::from_bits_truncate(raw.flags),
            shutdown_code: (raw.flags >> XEN_DOMINF_SHUTDOWNSHIFT) & XEN_DOMINF_SHUTDOWNMASK,
            tot_pages: raw.tot_pages,
            max_pages: raw.max_pages,
            shared_info_frame: Mfn(raw.shared_info_frame),
            cpu_time_ns: raw.cpu_time,
            online_vcpus: raw.nr_online_vcpus,
        }
    }

    /// Encodes it again (for fakes and tests).
    pub fn to_raw(&self) -> XenDomctlGetdomaininfo {
        XenDomctlGetdomaininfo {
            domain: self.id.0,
            flags: self.flags.bits()
                | ((self.shutdown_code & XEN_DOMINF_SHUTDOWNMASK) << XEN_DOMINF_SHUTDOWNSHIFT),
            tot_pages: self.tot_pages,
            max_pages: self.max_pages,
            shared_info_frame: self.shared_info_frame.0,
            cpu_time: self.cpu_time_ns,
            nr_online_vcpus: self.online_vcpus,
            max_vcpu_id: self.online_vcpus.saturating_sub(1),
            ..XenDomctlGetdomaininfo::default()
        }
    }

    /// The shutdown code, if the domain has shut down.
    pub fn shutdown(&self) -> Option<u32> {
        self.flags
            .contains(DominfFlags::SHUTDOWN)
            .then_some(self.shutdown_code)
    }

    /// Memory it owns, in MiB (rounded down), as `xl list` shows it.
    pub fn mem_mib(&self) -> u64 {
        self.tot_pages * PAGE_SIZE / (1 << 20)
    }
}

/// Host facts from `XEN_SYSCTL_physinfo`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysInfo {
    /// CPUs online.
    pub nr_cpus: u32,
    /// Host pages.
    pub total_pages: u64,
    /// Free pages.
    pub free_pages: u64,
}

impl PhysInfo {
    /// Decodes the hypervisor's answer.
    pub fn from_raw(raw: &XenSysctlPhysinfo) -> Self {
        Self {
            nr_cpus: raw.nr_cpus,
            total_pages: raw.total_pages,
            free_pages: raw.free_pages,
        }
    }
}

/// The hypervisor's version (`XENVER_version` and `XENVER_extraversion`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionInfo {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// The extra version string (`".0"`, `"-rc"`).
    pub extra: String,
}

/// The hypercalls the toolstack makes. The dom0 kernel implements this; host tests use a
/// fake that models memory.
///
/// Contract the builder relies on:
/// - [`populate_physmap`](Self::populate_physmap) returns frames that are zero, as Xen's
///   are (it scrubs pages before giving them to a domain); the builder writes only the
///   non-zero parts of the domain's memory and whole pages of its own structures;
/// - [`write_frame`](Self::write_frame) maps the foreign frame, copies, and unmaps; no
///   mapping outlives the call, so page-table frames can be typed afterwards;
/// - the hypervisor fills the L4's hypervisor slots when it validates the L4
///   ([`pin_l4_table`](Self::pin_l4_table)), as Xen does.
pub trait Hypervisor: GrantCopy {
    /// A mapping of a domain's console ring page into dom0.
    type Ring: ConsoleRing + crate::shared_page::SharedPage;
    /// A page another domain granted, mapped into dom0 (a block device's ring page).
    type GrantPage: crate::shared_page::SharedPage;

    /// `XEN_DOMCTL_createdomain` (domain field 0: the hypervisor picks the id). The new
    /// domain is paused.
    fn create_domain(&mut self, config: &XenDomctlCreatedomain) -> Result<DomId, XenError>;
    /// `XEN_DOMCTL_destroydomain`: frees the domain's memory. Like libxc, the
    /// implementation repeats the call while it fails with `EAGAIN`.
    fn destroy_domain(&mut self, dom: DomId) -> Result<(), XenError>;
    /// `XEN_DOMCTL_pausedomain`.
    fn pause_domain(&mut self, dom: DomId) -> Result<(), XenError>;
    /// `XEN_DOMCTL_unpausedomain`.
    fn unpause_domain(&mut self, dom: DomId) -> Result<(), XenError>;
    /// `XEN_DOMCTL_getdomaininfo` for exactly `dom` (`ESRCH` if it does not exist).
    fn domain_info(&mut self, dom: DomId) -> Result<DomainInfo, XenError>;
    /// `XEN_SYSCTL_getdomaininfolist` from domain 0: every domain, by id.
    fn list_domains(&mut self) -> Result<Vec<DomainInfo>, XenError>;
    /// `XEN_DOMCTL_max_mem`: the domain's memory limit, in KiB.
    fn set_max_mem(&mut self, dom: DomId, max_kib: u64) -> Result<(), XenError>;
    /// `XEN_DOMCTL_max_vcpus`.
    fn set_max_vcpus(&mut self, dom: DomId, max: u32) -> Result<(), XenError>;
    /// `XEN_DOMCTL_setvcpucontext`.
    fn set_vcpu_context(
        &mut self,
        dom: DomId,
        vcpu: VcpuId,
        context: &VcpuGuestContext,
    ) -> Result<(), XenError>;
    /// `XEN_DOMCTL_hypercall_init`: the hypervisor writes its hypercall stubs into `frame`
    /// (for a PV domain the `gmfn` argument is the machine frame).
    fn hypercall_init(&mut self, dom: DomId, frame: Mfn) -> Result<(), XenError>;
    /// `XENMEM_populate_physmap` for `dom`, order 0: gives the domain one new frame per
    /// PFN in `pfns` and writes their numbers to `mfns` (same length).
    fn populate_physmap(
        &mut self,
        dom: DomId,
        pfns: &[Pfn],
        mfns: &mut [Mfn],
    ) -> Result<(), XenError>;
    /// Writes `bytes` at `offset` into a frame of `dom` (a foreign mapping through
    /// `mmu_update` with the domain as owner, or `privcmd`'s equivalent).
    /// `offset + bytes.len()` is at most a page.
    fn write_frame(
        &mut self,
        dom: DomId,
        frame: Mfn,
        offset: usize,
        bytes: &[u8],
    ) -> Result<(), XenError>;
    /// `MMUEXT_PIN_L4_TABLE` on `frame` with `dom` as the foreign domain: validates and pins
    /// the bootstrap L4.
    fn pin_l4_table(&mut self, dom: DomId, frame: Mfn) -> Result<(), XenError>;
    /// `EVTCHNOP_alloc_unbound`: a port of `dom` that `remote` may bind to.
    fn evtchn_alloc_unbound(&mut self, dom: DomId, remote: DomId) -> Result<EvtchnPort, XenError>;
    /// `EVTCHNOP_bind_interdomain`: binds a local port to `remote_port` of `remote_dom`.
    fn evtchn_bind_interdomain(
        &mut self,
        remote_dom: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, XenError>;
    /// `EVTCHNOP_close` on a local port.
    fn evtchn_close(&mut self, port: EvtchnPort) -> Result<(), XenError>;
    /// `EVTCHNOP_send` on a local port.
    fn evtchn_send(&mut self, port: EvtchnPort) -> Result<(), XenError>;
    /// Maps `dom`'s console ring page into dom0 until [`unmap_console`](Self::unmap_console).
    fn map_console(&mut self, dom: DomId, frame: Mfn) -> Result<Self::Ring, XenError>;
    /// Unmaps a console ring page.
    fn unmap_console(&mut self, ring: Self::Ring);
    /// `GNTTABOP_map_grant_ref` (`GNTMAP_host_map`, writable) of `dom`'s reference `gref`
    /// into dom0, until [`unmap_grant`](Self::unmap_grant).
    fn map_grant(&mut self, dom: DomId, gref: u32) -> Result<Self::GrantPage, XenError>;
    /// `GNTTABOP_unmap_grant_ref` of a page [`map_grant`](Self::map_grant) mapped.
    fn unmap_grant(&mut self, page: Self::GrantPage);
    /// `SCHEDOP_remote_shutdown`: shuts `dom` down with `reason` (there is no xenstore to
    /// ask the guest, as `xl shutdown` would).
    fn remote_shutdown(&mut self, dom: DomId, reason: ShutdownReason) -> Result<(), XenError>;
    /// `XEN_SYSCTL_physinfo`.
    fn physinfo(&mut self) -> Result<PhysInfo, XenError>;
    /// `XENVER_version` and `XENVER_extraversion`.
    fn version(&mut self) -> Result<VersionInfo, XenError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_info_round_trips() {
        let info = DomainInfo {
            id: DomId(3),
            flags: DominfFlags::SHUTDOWN | DominfFlags::PAUSED,
            shutdown_code: ShutdownReason::Crash as u32,
            tot_pages: 2048,
            max_pages: 4096,
            shared_info_frame: Mfn(0x1234),
            cpu_time_ns: 1_500_000_000,
            online_vcpus: 2,
        };
        assert_eq!(DomainInfo::from_raw(&info.to_raw()), info);
        assert_eq!(info.shutdown(), Some(3));
        assert_eq!(info.mem_mib(), 8);
        let running = DomainInfo {
            flags: DominfFlags::RUNNING,
            ..info
        };
        assert_eq!(running.shutdown(), None);
    }
}
