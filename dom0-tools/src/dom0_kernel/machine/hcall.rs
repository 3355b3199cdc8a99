//! The hypercalls the dom0 kernel makes that guest-abi's runtime has no wrapper for:
//! `domctl`, `sysctl`, `update_va_mapping_otherdomain` and `SCHEDOP_remote_shutdown`. Each goes through [`hypercall::call`], the runtime's one
//! way into the hypercall page.

use guest_abi::domctl::XenDomctl;
use guest_abi::runtime::hypercall;
use guest_abi::sched::{SchedOp, SchedRemoteShutdown};
use guest_abi::sysctl::XenSysctl;
use guest_abi::{DomId, Hypercall, VirtAddr, XenError};

/// `domctl(op)`: the hypervisor reads `op` and writes its answer back into it.
///
/// # Safety
/// Guest handles in the payload (`setvcpucontext`'s context, for example) must point to
/// memory of the type and size the command reads or writes, valid for the call.
pub unsafe fn domctl(op: &mut XenDomctl) -> Result<u64, XenError> {
    // SAFETY: `op` is a valid, exclusively borrowed xen_domctl; the caller vouches for the
    // handles inside it.
    unsafe { hypercall::call(Hypercall::Domctl, [op as *mut XenDomctl as u64, 0, 0, 0, 0]) }
}

/// `sysctl(op)`, as [`domctl`].
///
/// # Safety
/// As for [`domctl`] (`getdomaininfolist`'s buffer, for example).
pub unsafe fn sysctl(op: &mut XenSysctl) -> Result<u64, XenError> {
    // SAFETY: as in `domctl`.
    unsafe { hypercall::call(Hypercall::Sysctl, [op as *mut XenSysctl as u64, 0, 0, 0, 0]) }
}

/// `update_va_mapping_otherdomain(va, pte, flags, dom)`: points the L1 entry of `va` in
/// our own page tables at a frame of `dom`.
///
/// # Safety
/// Nothing Rust relies on may live at `va` (its old contents disappear), and whoever uses
/// the new mapping must treat it as memory another domain may change.
pub unsafe fn update_va_mapping_otherdomain(
    va: VirtAddr,
    pte: u64,
    flags: u64,
    dom: DomId,
) -> Result<u64, XenError> {
    let args = [va.0, pte, flags, u64::from(dom.0), 0];
    // SAFETY: no pointer argument Xen dereferences; the caller vouches for the mapping.
    unsafe { hypercall::call(Hypercall::UpdateVaMappingOtherdomain, args) }
}

/// `SCHEDOP_remote_shutdown`.
pub fn remote_shutdown(arg: &SchedRemoteShutdown) -> Result<u64, XenError> {
    let mut arg = *arg;
    let args = [SchedOp::RemoteShutdown as u64, &raw mut arg as u64, 0, 0, 0];
    // SAFETY: `arg` is a valid sched_remote_shutdown for the call; it holds no pointer.
    unsafe { hypercall::call(Hypercall::SchedOp, args) }
}
