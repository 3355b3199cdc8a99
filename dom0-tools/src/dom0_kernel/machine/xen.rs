//! [`Hypervisor`] over real hypercalls: `requests` builds each argument, this module makes
//! the call and decodes the answer.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use dom0_tools::blkback::grants::{GrantCopy, GrantSegment};
use dom0_tools::hv::{DomainInfo, Hypervisor, PhysInfo, VersionInfo};
use dom0_tools::requests;
use dom0_tools::shared_page::AtomicRing;
use guest_abi::arch::VcpuGuestContext;
use guest_abi::domctl::{DomctlCmd, XenDomctl, XenDomctlCreatedomain, XenDomctlGetdomaininfo};
use guest_abi::event_channel::EvtchnOp;
use guest_abi::memory::MemoryOp;
use guest_abi::runtime::hypercall;
use guest_abi::sched::ShutdownReason;
use guest_abi::sysctl::XenSysctlGetdomaininfolist;
use guest_abi::version::XenVersionOp;
use guest_abi::{DomId, EvtchnPort, Mfn, Pfn, VcpuId, XenError};

use super::grant_io::{self, GrantMapping};
use super::hcall;
use super::mapping::{self, Mapping};

/// Entries asked for per `getdomaininfolist` call.
const LIST_BATCH: usize = 32;
/// `destroydomain` attempts while it answers `EAGAIN`.
const DESTROY_ATTEMPTS: u32 = 10_000;

/// The hypervisor, through hypercalls.
#[derive(Debug, Default)]
pub struct Xen;

/// A `domctl` whose payload has no guest handle.
fn domctl(mut op: XenDomctl) -> Result<XenDomctl, XenError> {
    // SAFETY: every caller passes a command whose payload holds no guest handle.
    unsafe { hcall::domctl(&mut op) }?;
    Ok(op)
}

impl GrantCopy for Xen {
    fn copy_from_guest(&mut self, dom: DomId, segments: &[GrantSegment], buf: &mut [u8]) -> bool {
        grant_io::copy_from_guest(dom, segments, buf)
    }

    fn copy_to_guest(&mut self, dom: DomId, segments: &[GrantSegment], buf: &[u8]) -> bool {
        grant_io::copy_to_guest(dom, segments, buf)
    }
}

impl Hypervisor for Xen {
    type Ring = AtomicRing<Mapping>;
    type GrantPage = AtomicRing<GrantMapping>;

    fn create_domain(&mut self, config: &XenDomctlCreatedomain) -> Result<DomId, XenError> {
        domctl(requests::createdomain(config)).map(|d| requests::created_domid(&d))
    }

    fn destroy_domain(&mut self, dom: DomId) -> Result<(), XenError> {
        for _ in 0..DESTROY_ATTEMPTS {
            match domctl(requests::domctl(DomctlCmd::Destroydomain, dom)) {
                Err(XenError::Again) => {
                    let _ = hypercall::sched_yield();
                }
                other => return other.map(|_| ()),
            }
        }
        Err(XenError::Again)
    }

    fn pause_domain(&mut self, dom: DomId) -> Result<(), XenError> {
        domctl(requests::domctl(DomctlCmd::Pausedomain, dom)).map(|_| ())
    }

    fn unpause_domain(&mut self, dom: DomId) -> Result<(), XenError> {
        domctl(requests::domctl(DomctlCmd::Unpausedomain, dom)).map(|_| ())
    }

    fn domain_info(&mut self, dom: DomId) -> Result<DomainInfo, XenError> {
        let answer = domctl(requests::domctl(DomctlCmd::Getdomaininfo, dom))?;
        requests::domain_info(dom, &answer)
    }

    fn list_domains(&mut self) -> Result<Vec<DomainInfo>, XenError> {
        let mut all = Vec::new();
        let mut buffer = vec![XenDomctlGetdomaininfo::default(); LIST_BATCH];
        let mut first = DomId(0);
        loop {
            let mut op =
                requests::getdomaininfolist(first, LIST_BATCH as u32, buffer.as_mut_ptr() as u64);
            // SAFETY: the payload's buffer handle points to LIST_BATCH entries, which is
            // the room it announces.
            unsafe { hcall::sysctl(&mut op) }?;
            let arg: XenSysctlGetdomaininfolist = op.u.read().ok_or(XenError::Inval)?;
            let got = (arg.num_domains as usize).min(LIST_BATCH);
            all.extend(buffer[..got].iter().map(DomainInfo::from_raw));
            // A full batch may have more after it; stop if the ids do not move on.
            match buffer[..got].last().and_then(|l| l.domain.checked_add(1)) {
                Some(next) if got == LIST_BATCH && next > first.0 => first = DomId(next),
                _ => return Ok(all),
            }
        }
    }

    fn set_max_mem(&mut self, dom: DomId, max_kib: u64) -> Result<(), XenError> {
        domctl(requests::max_mem(dom, max_kib)).map(|_| ())
    }

    fn set_max_vcpus(&mut self, dom: DomId, max: u32) -> Result<(), XenError> {
        domctl(requests::max_vcpus(dom, max)).map(|_| ())
    }

    fn set_vcpu_context(
        &mut self,
        dom: DomId,
        vcpu: VcpuId,
        context: &VcpuGuestContext,
    ) -> Result<(), XenError> {
        let mut op = requests::setvcpucontext(dom, vcpu, context as *const _ as u64);
        // SAFETY: the handle points to `context`, a vcpu_guest_context valid for the call;
        // setvcpucontext only reads it.
        unsafe { hcall::domctl(&mut op) }.map(|_| ())
    }

    fn hypercall_init(&mut self, dom: DomId, frame: Mfn) -> Result<(), XenError> {
        domctl(requests::hypercall_init(dom, frame)).map(|_| ())
    }

    fn populate_physmap(
        &mut self,
        dom: DomId,
        pfns: &[Pfn],
        mfns: &mut [Mfn],
    ) -> Result<(), XenError> {
        if pfns.len() != mfns.len() {
            return Err(XenError::Inval);
        }
        let mut extents: Vec<u64> = pfns.iter().map(|p| p.0).collect();
        let mut arg =
            requests::populate_physmap(dom, extents.as_mut_ptr() as u64, extents.len() as u64);
        // SAFETY: the reservation's extent handle points to `extents`, which has room for
        // the nr_extents frame numbers Xen writes back.
        let done = unsafe { hypercall::memory_op(MemoryOp::PopulatePhysmap, &mut arg) }?;
        if done != extents.len() as u64 {
            return Err(XenError::NoMem);
        }
        for (mfn, &raw) in mfns.iter_mut().zip(&extents) {
            *mfn = Mfn(raw);
        }
        Ok(())
    }

    fn write_frame(
        &mut self,
        dom: DomId,
        frame: Mfn,
        offset: usize,
        bytes: &[u8],
    ) -> Result<(), XenError> {
        mapping::map(dom, frame)?.write(offset, bytes)
    }

    fn pin_l4_table(&mut self, dom: DomId, frame: Mfn) -> Result<(), XenError> {
        let mut done = 0;
        // SAFETY: pinning another domain's table changes none of our mappings.
        unsafe { hypercall::mmuext_op(&[requests::pin_l4(frame)], &mut done, dom) }.map(|_| ())
    }

    fn evtchn_alloc_unbound(&mut self, dom: DomId, remote: DomId) -> Result<EvtchnPort, XenError> {
        let mut arg = requests::alloc_unbound(dom, remote);
        hypercall::event_channel_op(&mut arg)?;
        Ok(EvtchnPort(arg.port))
    }

    fn evtchn_bind_interdomain(
        &mut self,
        remote_dom: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, XenError> {
        let mut arg = requests::bind_interdomain(remote_dom, remote_port);
        hypercall::event_channel_op(&mut arg)?;
        Ok(EvtchnPort(arg.local_port))
    }

    fn evtchn_close(&mut self, port: EvtchnPort) -> Result<(), XenError> {
        hypercall::evtchn_port_op(EvtchnOp::Close, port.0).map(|_| ())
    }

    fn evtchn_send(&mut self, port: EvtchnPort) -> Result<(), XenError> {
        hypercall::evtchn_send(port.0).map(|_| ())
    }

    fn map_console(&mut self, dom: DomId, frame: Mfn) -> Result<Self::Ring, XenError> {
        mapping::map(dom, frame).map(AtomicRing)
    }

    fn unmap_console(&mut self, ring: Self::Ring) {
        drop(ring);
    }

    fn map_grant(&mut self, dom: DomId, gref: u32) -> Result<Self::GrantPage, XenError> {
        grant_io::map(dom, gref).map(AtomicRing)
    }

    fn unmap_grant(&mut self, page: Self::GrantPage) {
        grant_io::unmap(page.0);
    }

    fn remote_shutdown(&mut self, dom: DomId, reason: ShutdownReason) -> Result<(), XenError> {
        hcall::remote_shutdown(&requests::remote_shutdown(dom, reason)).map(|_| ())
    }

    fn physinfo(&mut self) -> Result<PhysInfo, XenError> {
        let mut op = requests::physinfo();
        // SAFETY: physinfo's payload holds no guest handle.
        unsafe { hcall::sysctl(&mut op) }?;
        requests::physinfo_result(&op)
    }

    fn version(&mut self) -> Result<VersionInfo, XenError> {
        let (major, minor) = hypercall::xen_version()?;
        let mut extra = [0u8; 16];
        hypercall::xen_version_string(XenVersionOp::Extraversion, &mut extra)?;
        let len = extra.iter().position(|&b| b == 0).unwrap_or(extra.len());
        Ok(VersionInfo {
            major: major.into(),
            minor: minor.into(),
            extra: String::from_utf8_lossy(&extra[..len]).into_owned(),
        })
    }
}
