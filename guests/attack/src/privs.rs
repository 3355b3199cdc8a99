//! `priv.*`: the operations only dom0 may use (`domctl`, `sysctl`, foreign memory operations,
//! `console_io` read). Run as dom0 they must be allowed; with the command-line word `domu` the
//! guest expects `EPERM` for each, as an unprivileged domain must get. Also the checks that come
//! before privilege: interface versions, domains that do not exist, unknown commands.

use guest_abi::domctl::{DomctlCmd, XEN_DOMCTL_INTERFACE_VERSION, XenDomctl};
use guest_abi::event_channel::{EvtchnAllocUnbound, EvtchnStatus};
use guest_abi::hypercall::Hypercall;
use guest_abi::runtime::hypercall;
use guest_abi::sysctl::{SysctlCmd, XenSysctl};
use guest_abi::{DomId, XenError};

use crate::report::{OK, Report, Want, err};

/// A domain that does not exist: far above the ids a toolstack hands out (ours takes the
/// lowest free one, Xen counts up), so that domains created next to this guest never take it.
pub const NO_DOMAIN: u16 = 32000;
/// `DOMID_XEN`.
const DOMID_XEN: u64 = 0x7ff2;

fn domctl(d: &mut XenDomctl) -> i64 {
    // SAFETY: the commands used here only read the struct and write its payload.
    unsafe { hypercall::raw(Hypercall::Domctl, [d as *mut XenDomctl as u64, 0, 0, 0, 0]) }
}

fn sysctl(s: &mut XenSysctl) -> i64 {
    // SAFETY: as for `domctl`.
    unsafe { hypercall::raw(Hypercall::Sysctl, [s as *mut XenSysctl as u64, 0, 0, 0, 0]) }
}

pub fn run(r: &mut Report) {
    let mut d = XenDomctl::new(DomctlCmd::Getdomaininfo, 0);
    r.ret(
        "priv.domctl getdomaininfo of dom0",
        domctl(&mut d),
        OK.domu(XenError::Perm),
    );
    let mut d = XenDomctl::new(DomctlCmd::Getdomaininfo, NO_DOMAIN);
    r.ret(
        "priv.domctl getdomaininfo of a domain that does not exist",
        domctl(&mut d),
        err(XenError::Srch),
    );
    let mut d = XenDomctl::new(DomctlCmd::Getdomaininfo, 0);
    d.interface_version = XEN_DOMCTL_INTERFACE_VERSION - 1;
    r.ret(
        "priv.domctl with an old interface version",
        domctl(&mut d),
        err(XenError::Acces),
    );
    let mut d = XenDomctl::new(DomctlCmd::Getdomaininfo, 0);
    d.cmd = 999;
    r.ret(
        "priv.domctl unknown command 999",
        domctl(&mut d),
        err(XenError::NoSys).domu(XenError::Perm),
    );
    let mut s = XenSysctl::new(SysctlCmd::Physinfo);
    r.ret(
        "priv.sysctl physinfo",
        sysctl(&mut s),
        OK.domu(XenError::Perm),
    );
    let mut s = XenSysctl::new(SysctlCmd::Physinfo);
    s.cmd = 999;
    r.ret(
        "priv.sysctl unknown command 999",
        sysctl(&mut s),
        err(XenError::NoSys).domu(XenError::Perm),
    );
    let mut buf = [0u8; 16];
    let ret = hypercall::console_read(&mut buf).map_or_else(XenError::to_ret, |n| n as i64);
    r.ret("priv.console_io read", ret, OK.domu(XenError::Perm));

    // Foreign memory operations.
    let mut done = 0u32;
    // SAFETY: no request (count 0): only the foreign domain is checked.
    let ret = unsafe {
        hypercall::raw(
            Hypercall::MmuUpdate,
            [8, 0, &raw mut done as u64, DOMID_XEN, 0],
        )
    };
    r.ret(
        "priv.mmu_update naming DOMID_XEN as page owner (no requests)",
        ret,
        OK.domu(XenError::Perm).domu_xen(Want::Ok),
    );
    // SAFETY: as above.
    let ret = unsafe {
        hypercall::raw(
            Hypercall::MmuUpdate,
            [8, 0, &raw mut done as u64, u64::from(NO_DOMAIN), 0],
        )
    };
    r.ret(
        "priv.mmu_update naming a domain that does not exist",
        ret,
        err(XenError::Srch),
    );
    // SAFETY: a not-present entry at an address we do not use, for a domain that does not
    // exist: refused.
    let ret = unsafe {
        hypercall::raw(
            Hypercall::UpdateVaMappingOtherdomain,
            [0x1000, 0, 0, u64::from(NO_DOMAIN), 0],
        )
    };
    r.ret(
        "priv.update_va_mapping_otherdomain of a domain that does not exist",
        ret,
        err(XenError::Srch),
    );
    let mut unbound = EvtchnAllocUnbound {
        dom: NO_DOMAIN,
        remote_dom: 0,
        port: 0,
    };
    let ret = hypercall::event_channel_op(&mut unbound).map_or_else(XenError::to_ret, |v| v as i64);
    r.ret(
        "priv.evtchn alloc_unbound in a domain that does not exist",
        ret,
        err(XenError::Srch),
    );
    let mut status = EvtchnStatus {
        dom: NO_DOMAIN,
        _hole: 0,
        port: 1,
        status: 0,
        vcpu: 0,
        u: [0; 2],
    };
    let ret = hypercall::event_channel_op(&mut status).map_or_else(XenError::to_ret, |v| v as i64);
    r.ret(
        "priv.evtchn status of a domain that does not exist",
        ret,
        err(XenError::Srch),
    );
    let shutdown = [u64::from(NO_DOMAIN) | (2 << 16)];
    // SAFETY: the domain does not exist: refused.
    let ret = unsafe { hypercall::raw(Hypercall::SchedOp, [4, shutdown.as_ptr() as u64, 0, 0, 0]) };
    r.ret(
        "priv.sched_op remote_shutdown of a domain that does not exist",
        ret,
        err(XenError::Srch),
    );
    let reservation: [u64; 4] = [0, 1, 0, u64::from(NO_DOMAIN)];
    // SAFETY: no extent list (null handle) and a domain that does not exist: refused.
    let ret = unsafe {
        hypercall::raw(
            Hypercall::MemoryOp,
            [0, reservation.as_ptr() as u64, 0, 0, 0],
        )
    };
    // Xen answers with the number of extents done (0), not an error.
    r.ret(
        "priv.memory_op increase_reservation for a domain that does not exist",
        ret,
        OK,
    );
    let _ = DomId::SELF;
}
