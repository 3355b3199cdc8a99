//! The hypercall arguments behind each [`Hypervisor`](crate::hv::Hypervisor) method, and
//! the decoding of the answers, so that the dom0 kernel's implementation of the trait is
//! a thin shell around the hypercall instruction:
//!
//! | method | hypercall | argument built here |
//! |---|---|---|
//! | `create_domain` | `domctl` | [`createdomain`]; the id comes back in [`created_domid`] |
//! | `destroy_domain`, `pause_domain`, `unpause_domain` | `domctl` | [`domctl`] |
//! | `domain_info` | `domctl` | [`domctl`] (`Getdomaininfo`), answer [`domain_info`] |
//! | `list_domains` | `sysctl` | [`getdomaininfolist`] over an array of `XenDomctlGetdomaininfo` |
//! | `set_max_mem`, `set_max_vcpus` | `domctl` | [`max_mem`], [`max_vcpus`] |
//! | `set_vcpu_context` | `domctl` | [`setvcpucontext`] pointing at the context |
//! | `hypercall_init` | `domctl` | [`hypercall_init`] |
//! | `populate_physmap` | `memory_op(XENMEM_populate_physmap)` | [`populate_physmap`] over the PFN array, which Xen overwrites with MFNs |
//! | `pin_l4_table` | `mmuext_op(.., foreigndom = dom)` | [`pin_l4`] |
//! | `evtchn_alloc_unbound`, `evtchn_bind_interdomain` | `event_channel_op` | [`alloc_unbound`], [`bind_interdomain`] |
//! | `remote_shutdown` | `sched_op(SCHEDOP_remote_shutdown)` | [`remote_shutdown`] |
//! | `physinfo` | `sysctl` | [`physinfo`], answer [`physinfo_result`] |

use guest_abi::domctl::{
    DomctlCmd, XenDomctl, XenDomctlCreatedomain, XenDomctlGetdomaininfo, XenDomctlMaxMem,
    XenDomctlMaxVcpus, XenDomctlVcpucontext,
};
use guest_abi::event_channel::{EvtchnAllocUnbound, EvtchnBindInterdomain};
use guest_abi::memory::XenMemoryReservation;
use guest_abi::sched::{SchedRemoteShutdown, ShutdownReason};
use guest_abi::sysctl::{SysctlCmd, XenSysctl, XenSysctlGetdomaininfolist, XenSysctlPhysinfo};
use guest_abi::xen::{MmuextCmd, MmuextOp};
use guest_abi::{DomId, EvtchnPort, Mfn, VcpuId, XenError};

use crate::hv::{DomainInfo, PhysInfo};

/// A `domctl` with no payload (`destroydomain`, `pausedomain`, `unpausedomain`,
/// `getdomaininfo`).
pub const fn domctl(cmd: DomctlCmd, dom: DomId) -> XenDomctl {
    XenDomctl::new(cmd, dom.0)
}

/// `XEN_DOMCTL_createdomain`; domain 0 asks the hypervisor to choose the id.
pub fn createdomain(config: &XenDomctlCreatedomain) -> XenDomctl {
    XenDomctl::with_payload(DomctlCmd::Createdomain, 0, config)
}

/// The id Xen wrote back into a `createdomain` request.
pub const fn created_domid(answer: &XenDomctl) -> DomId {
    DomId(answer.domain)
}

/// The domain a `getdomaininfo` answer describes; `ESRCH` if it is not the domain asked
/// for (older Xens answer with the next domain up).
pub fn domain_info(asked: DomId, answer: &XenDomctl) -> Result<DomainInfo, XenError> {
    let raw: XenDomctlGetdomaininfo = answer.u.read().ok_or(XenError::Inval)?;
    if raw.domain != asked.0 {
        return Err(XenError::Srch);
    }
    Ok(DomainInfo::from_raw(&raw))
}

/// `XEN_DOMCTL_max_mem`.
pub fn max_mem(dom: DomId, max_kib: u64) -> XenDomctl {
    XenDomctl::with_payload(
        DomctlCmd::MaxMem,
        dom.0,
        &XenDomctlMaxMem { max_memkb: max_kib },
    )
}

/// `XEN_DOMCTL_max_vcpus`.
pub fn max_vcpus(dom: DomId, max: u32) -> XenDomctl {
    XenDomctl::with_payload(DomctlCmd::MaxVcpus, dom.0, &XenDomctlMaxVcpus { max })
}

/// `XEN_DOMCTL_setvcpucontext`; `context` is the address of a `VcpuGuestContext`.
pub fn setvcpucontext(dom: DomId, vcpu: VcpuId, context: u64) -> XenDomctl {
    let arg = XenDomctlVcpucontext {
        vcpu: vcpu.0,
        _hole: 0,
        ctxt: context,
    };
    XenDomctl::with_payload(DomctlCmd::Setvcpucontext, dom.0, &arg)
}

/// `XEN_DOMCTL_hypercall_init` (`struct xen_domctl_hypercall_init { u64 gmfn; }`).
pub fn hypercall_init(dom: DomId, frame: Mfn) -> XenDomctl {
    XenDomctl::with_payload(DomctlCmd::HypercallInit, dom.0, &frame.0)
}

/// `XENMEM_populate_physmap` of `count` order-0 extents for `dom`; `extents` is the
/// address of the PFN array (overwritten with the MFNs).
pub fn populate_physmap(dom: DomId, extents: u64, count: u64) -> XenMemoryReservation {
    XenMemoryReservation {
        extent_start: extents,
        nr_extents: count,
        extent_order: 0,
        mem_flags: 0,
        domid: dom.0,
        _hole: [0; 3],
    }
}

/// `MMUEXT_PIN_L4_TABLE` (issue it with the new domain as `foreigndom`).
pub fn pin_l4(frame: Mfn) -> MmuextOp {
    MmuextOp {
        cmd: MmuextCmd::PinL4Table as u32,
        _hole: 0,
        arg1: frame.0,
        arg2: 0,
    }
}

/// `EVTCHNOP_alloc_unbound`; the port comes back in `.port`.
pub fn alloc_unbound(dom: DomId, remote: DomId) -> EvtchnAllocUnbound {
    EvtchnAllocUnbound {
        dom: dom.0,
        remote_dom: remote.0,
        port: 0,
    }
}

/// `EVTCHNOP_bind_interdomain`; the local port comes back in `.local_port`.
pub fn bind_interdomain(remote_dom: DomId, remote_port: EvtchnPort) -> EvtchnBindInterdomain {
    EvtchnBindInterdomain {
        remote_dom: remote_dom.0,
        _hole: 0,
        remote_port: remote_port.0,
        local_port: 0,
    }
}

/// `SCHEDOP_remote_shutdown`.
pub fn remote_shutdown(dom: DomId, reason: ShutdownReason) -> SchedRemoteShutdown {
    SchedRemoteShutdown {
        domain_id: dom.0,
        _hole: 0,
        reason: reason as u32,
    }
}

/// `XEN_SYSCTL_physinfo`.
pub fn physinfo() -> XenSysctl {
    XenSysctl::new(SysctlCmd::Physinfo)
}

/// The answer of [`physinfo`].
pub fn physinfo_result(answer: &XenSysctl) -> Result<PhysInfo, XenError> {
    let raw: XenSysctlPhysinfo = answer.u.read().ok_or(XenError::Inval)?;
    Ok(PhysInfo::from_raw(&raw))
}

/// `XEN_SYSCTL_getdomaininfolist` from `first`, into the array at `buffer` of `max`
/// entries; the count comes back in the payload's `num_domains`.
pub fn getdomaininfolist(first: DomId, max: u32, buffer: u64) -> XenSysctl {
    let arg = XenSysctlGetdomaininfolist {
        first_domain: first.0,
        max_domains: max,
        buffer,
        ..XenSysctlGetdomaininfolist::default()
    };
    XenSysctl::with_payload(SysctlCmd::Getdomaininfolist, &arg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_abi::domctl::{DominfFlags, XEN_DOMCTL_INTERFACE_VERSION};

    #[test]
    fn domctls_carry_their_command_domain_and_payload() {
        let d = max_mem(DomId(3), 65536);
        assert_eq!((d.cmd, d.domain), (DomctlCmd::MaxMem as u32, 3));
        assert_eq!(d.interface_version, XEN_DOMCTL_INTERFACE_VERSION);
        assert_eq!(d.u.read::<u64>(), Some(65536));
        assert_eq!(max_vcpus(DomId(3), 2).u.read::<u32>(), Some(2));
        let v = setvcpucontext(DomId(3), VcpuId(1), 0x1000);
        assert_eq!(
            v.u.read::<XenDomctlVcpucontext>().map(|c| (c.vcpu, c.ctxt)),
            Some((1, 0x1000))
        );
        let h = hypercall_init(DomId(3), Mfn(0x1234));
        assert_eq!(
            (h.cmd, h.u.read::<u64>()),
            (DomctlCmd::HypercallInit as u32, Some(0x1234))
        );
        let c = createdomain(&XenDomctlCreatedomain {
            max_vcpus: 4,
            ..Default::default()
        });
        assert_eq!((c.cmd, c.domain), (DomctlCmd::Createdomain as u32, 0));
        assert_eq!(
            c.u.read::<XenDomctlCreatedomain>().map(|c| c.max_vcpus),
            Some(4)
        );
        assert_eq!(domctl(DomctlCmd::Destroydomain, DomId(7)).domain, 7);
    }

    #[test]
    fn getdomaininfo_answers_are_checked() {
        let info = DomainInfo {
            id: DomId(5),
            flags: DominfFlags::RUNNING,
            shutdown_code: 0,
            tot_pages: 10,
            max_pages: 10,
            shared_info_frame: Mfn(9),
            cpu_time_ns: 1,
            online_vcpus: 1,
        };
        let answer = XenDomctl::with_payload(DomctlCmd::Getdomaininfo, 5, &info.to_raw());
        assert_eq!(domain_info(DomId(5), &answer), Ok(info));
        assert_eq!(domain_info(DomId(4), &answer), Err(XenError::Srch));
    }

    #[test]
    fn other_arguments() {
        assert_eq!(pin_l4(Mfn(0x42)).cmd, 3);
        assert_eq!(pin_l4(Mfn(0x42)).arg1, 0x42);
        let r = populate_physmap(DomId(2), 0x8000, 512);
        assert_eq!((r.domid, r.nr_extents, r.extent_order), (2, 512, 0));
        assert_eq!(alloc_unbound(DomId(2), DomId(0)).remote_dom, 0);
        assert_eq!(bind_interdomain(DomId(2), EvtchnPort(1)).remote_port, 1);
        assert_eq!(remote_shutdown(DomId(2), ShutdownReason::Reboot).reason, 1);
        assert_eq!(physinfo().cmd, SysctlCmd::Physinfo as u32);
        let answer = XenSysctl::with_payload(
            SysctlCmd::Physinfo,
            &XenSysctlPhysinfo {
                nr_cpus: 2,
                total_pages: 100,
                free_pages: 50,
                ..Default::default()
            },
        );
        assert_eq!(
            physinfo_result(&answer),
            Ok(PhysInfo {
                nr_cpus: 2,
                total_pages: 100,
                free_pages: 50
            })
        );
        let l = getdomaininfolist(DomId(0), 16, 0x9000);
        let arg: XenSysctlGetdomaininfolist = l.u.read().unwrap();
        assert_eq!((arg.max_domains, arg.buffer), (16, 0x9000));
    }
}
