//! The `vcpu_op`s that need the caller's whole domain rather than only the running vCPU
//! (`MachineCall::VcpuOp`, decoded by `hypercall/vcpu.rs`): bringing another vCPU to life
//! (`VCPUOP_initialise` with its context, then `VCPUOP_up`), taking a vCPU down (the caller
//! itself, as Linux does when a CPU goes offline or the kernel stops), and another vCPU's
//! runstate area or information. They run with the machine lock, after the caller's own
//! state is released, like `domctl`.
//!
//! Xen's rules: `initialise` answers `-EEXIST` for a vCPU that already has a context, and
//! takes its GDT frames (descriptor-page type references) and its VM assists only for
//! vCPU 0; `up` needs a context (`-EINVAL`); `down` of the caller takes effect as the call
//! returns (the vCPU stops there and resumes after it when brought up again).

use super::domain::{MACHINE, Machine};
use super::domctl::apply_vcpu_context;
use super::mmu::{MMU, install_gdt};
use super::resched;
use crate::arch::x86_64::uaccess::CurrentGuest;
use crate::event::abi as eabi;
use crate::hypercall::{DomainInfo, HcResult};
use crate::pv::guest_mem::{GuestMemory, check_guest_range};
use crate::pv::runstate::RunstateArea;
use crate::sched::scheduler::vcpu as vcpu_ref;
use guest_abi::XenError;
use guest_abi::arch::VcpuGuestContext;
use guest_abi::vcpu::{VcpuOp, VcpuRegisterMemoryArea, VcpuRunstateInfo};

/// Carries out `cmd` on vCPU `vcpu` of the caller's domain (its existence already checked).
///
/// Never inlined: its frame holds a whole `VcpuGuestContext` (5 KiB), which inlined into the
/// exit path would cost every exit a stack probe (`scripts/bench.sh --check` caught it).
#[inline(never)]
pub fn vcpu_op(caller: &DomainInfo, cmd: VcpuOp, vcpu: u32, arg: u64) -> HcResult {
    let dom = caller.id.0;
    let mut guard = MACHINE.lock();
    let m = guard.as_mut().ok_or(XenError::NoSys)?;
    let target = vcpu_ref(eabi::DomId(dom), eabi::VcpuId(vcpu));
    match cmd {
        VcpuOp::Initialise => initialise(m, dom, vcpu, arg),
        VcpuOp::Up => {
            let d = m.domain_mut(dom).ok_or(XenError::Srch)?;
            if !d.vcpus.get(vcpu as usize).is_some_and(|v| v.initialised) {
                return Err(XenError::Inval);
            }
            let _ = m.sched.vcpu_up(target);
            resched::request_reschedule();
            Ok(0)
        }
        VcpuOp::Down => {
            let _ = m.sched.vcpu_down(target);
            if m.current == dom && m.current_vcpu == vcpu {
                resched::request_reschedule();
            }
            Ok(0)
        }
        VcpuOp::RegisterRunstateMemoryArea => {
            let req: VcpuRegisterMemoryArea = CurrentGuest.read_obj(arg)?;
            check_guest_range(req.addr, size_of::<VcpuRunstateInfo>())?;
            let v = vcpu_of(m, dom, vcpu)?;
            // Written when that vCPU next runs (Xen writes the area at once only for the caller).
            v.pv.runstate_area = RunstateArea {
                va: req.addr,
                stale: req.addr != 0,
            };
            Ok(0)
        }
        VcpuOp::GetRunstateInfo => {
            let now = m.clock.now(crate::arch::x86_64::cpu::rdtsc());
            let info = vcpu_of(m, dom, vcpu)?.pv.runstate.snapshot(now);
            CurrentGuest.write_obj(arg, &info)?;
            Ok(0)
        }
        _ => Err(XenError::NoSys),
    }
}

/// `VCPUOP_initialise`: the context is read before anything changes (`-EFAULT`), then the
/// vCPU must have none yet (`-EEXIST`); its GDT frames are taken last, and a refused frame
/// leaves the vCPU without a context.
fn initialise(m: &mut Machine, dom: u16, vcpu: u32, arg: u64) -> HcResult {
    let c: VcpuGuestContext = CurrentGuest.read_obj(arg)?;
    if vcpu_of(m, dom, vcpu)?.initialised {
        return Err(XenError::Exist);
    }
    apply_vcpu_context(m, dom, vcpu, &c)?;
    let d = m.domain_mut(dom).ok_or(XenError::Srch)?;
    let mm = d.mm;
    let v = d.vcpus.get_mut(vcpu as usize).ok_or(XenError::Inval)?;
    let mut guard = MMU.lock();
    let mmu = guard.as_mut().ok_or(XenError::NoSys)?;
    if let Err(e) = install_gdt(mmu, mm, &mut v.pv, &c.gdt_frames, c.gdt_ents, false) {
        v.initialised = false;
        return Err(e.errno());
    }
    Ok(0)
}

/// The caller's vCPU `vcpu`.
fn vcpu_of(m: &mut Machine, dom: u16, vcpu: u32) -> Result<&mut super::domain::Vcpu, XenError> {
    m.domain_mut(dom)
        .and_then(|d| d.vcpus.get_mut(vcpu as usize))
        .ok_or(XenError::Inval)
}
