//! What happens on every exit from a guest: hypercalls, user `syscall`s, exceptions and
//! interrupts, then the checks every return makes (pending events), and the actions a call may
//! leave behind (shutdown, block, crash).

use super::domain::MACHINE;
use super::host::KernelHost;
use crate::arch::x86_64::entry::SYSCALL32_VECTOR;
use crate::arch::x86_64::{power, trap};
use crate::hypercall::{self, Action, Ctx, Host};
use crate::pv::bounce::{self, Bounce};
use crate::pv::emulate;
use crate::pv::vcpu::PvVcpu;
use crate::regs::{Regs, SYSCALL_VECTOR};
use crate::{error, info, warn};
use guest_abi::sched::ShutdownReason;
use x86_64::registers::control::Cr2;

use crate::arch::x86_64::uaccess::CurrentGuest;

/// Runs `f` on the running vCPU, its domain info and a host bound to them.
fn with_current<R>(
    f: impl FnOnce(&mut PvVcpu, u32, &mut crate::hypercall::DomainInfo, &mut KernelHost) -> R,
) -> R {
    let mut machine = MACHINE.lock();
    let Some(m) = machine.as_mut() else {
        drop(machine);
        error!("guest exit with no domain running");
        power::crash();
    };
    let vcpu_id = m.current_vcpu;
    let dom = &mut m.domains[m.current];
    let mut host = KernelHost {
        vcpu_info: dom.vcpu_info(vcpu_id),
        privileged: dom.info.privileged,
    };
    let vcpu = &mut dom.vcpus[vcpu_id as usize];
    f(&mut vcpu.pv, vcpu_id, &mut dom.info, &mut host)
}

/// `syscall` from a guest: a hypercall from guest kernel mode, else a system call of guest
/// user space, bounced to the guest kernel's syscall callback.
#[unsafe(no_mangle)]
extern "C" fn guest_syscall(regs: &mut Regs) {
    let action = with_current(|vcpu, vcpu_id, domain, host| {
        if regs.vector == SYSCALL_VECTOR && vcpu.kernel_mode {
            let mut ctx = Ctx {
                regs,
                vcpu,
                vcpu_id,
                domain,
                mem: &mut CurrentGuest,
                host,
                action: Action::Resume,
            };
            hypercall::handle(&mut ctx);
            ctx.action
        } else {
            let cb = if regs.vector == SYSCALL32_VECTOR {
                vcpu.syscall32_callback
            } else {
                vcpu.syscall_callback
            };
            if cb.address == 0 {
                return bounce_exception(regs, vcpu, host, 6, None);
            }
            let b = Bounce {
                target: cb.address,
                mask_events: cb.mask_events,
                error_code: None,
            };
            deliver(regs, vcpu, host, &b)
        }
    });
    finish(regs, action);
}

/// An exception or interrupt that arrived while a guest ran.
pub fn guest_trap(regs: &mut Regs) {
    let vector = regs.vector as u8;
    let action = with_current(|vcpu, _, _, host| match vector {
        // Interrupts are the hypervisor's; the guest just resumes.
        2 | 32..=255 => Action::Resume,
        7 if vcpu.fpu_ts => {
            // Xen: #NM with the virtual TS set goes to the guest, which clears it.
            vcpu.fpu_ts = false;
            crate::arch::x86_64::guest::set_fpu_trap(false);
            bounce_exception(regs, vcpu, host, 7, None)
        }
        7 => {
            crate::arch::x86_64::guest::set_fpu_trap(false);
            Action::Resume
        }
        14 => {
            host.vcpu_info().arch.cr2 = Cr2::read_raw();
            bounce_exception(regs, vcpu, host, 14, Some(regs.error_code))
        }
        6 | 13 => privileged_op(regs, vcpu, host, vector),
        v @ (8 | 10..=12 | 17 | 21) => bounce_exception(regs, vcpu, host, v, Some(regs.error_code)),
        v => bounce_exception(regs, vcpu, host, v, None),
    });
    finish(regs, action);
}

/// #GP or #UD from a guest: emulate the privileged instruction, or deliver a software
/// interrupt the guest's virtual IDT allows, or bounce the fault.
fn privileged_op(regs: &mut Regs, vcpu: &mut PvVcpu, host: &mut KernelHost, vector: u8) -> Action {
    const IDT_ERROR: u64 = 1 << 1;
    let mut bytes = [0u8; 15];
    let n = emulate::fetch(&mut CurrentGuest, regs.rip, &mut bytes);
    match emulate::emulate(
        regs,
        vcpu,
        &bytes[..n],
        vector == 6,
        &mut CurrentGuest,
        host,
    ) {
        emulate::Outcome::Emulated => return Action::Resume,
        emulate::Outcome::Block => {
            host.vcpu_info().evtchn_upcall_mask = 0;
            return Action::Block;
        }
        emulate::Outcome::Fault => {}
    }
    if vector == 13 && regs.error_code & IDT_ERROR != 0 {
        // `int $n` through a gate the hardware IDT keeps at DPL 0: allowed if the guest's
        // virtual IDT entry permits the caller's mode (Xen's permit_softint).
        let n = (regs.error_code >> 3) as u8;
        if let Some(t) = vcpu.trap_handler(n)
            && (vcpu.kernel_mode || t.flags & 3 == 3)
        {
            let b = Bounce {
                target: t.address,
                mask_events: t.flags & crate::pv::vcpu::TRAP_FLAG_MASK_EVENTS != 0,
                error_code: None,
            };
            regs.rip = regs.rip.wrapping_add(2);
            return deliver(regs, vcpu, host, &b);
        }
    }
    let error_code = (vector == 13).then_some(regs.error_code);
    bounce_exception(regs, vcpu, host, vector, error_code)
}

/// Bounces exception `vector` to the guest's handler, or crashes the domain if it has none.
fn bounce_exception(
    regs: &mut Regs,
    vcpu: &mut PvVcpu,
    host: &mut KernelHost,
    vector: u8,
    error_code: Option<u64>,
) -> Action {
    let Some(t) = vcpu.trap_handler(vector) else {
        return Action::Crash(EXCEPTION_NAMES_NO_HANDLER[usize::from(vector.min(31))]);
    };
    let b = Bounce {
        target: t.address,
        mask_events: t.flags & crate::pv::vcpu::TRAP_FLAG_MASK_EVENTS != 0,
        error_code,
    };
    deliver(regs, vcpu, host, &b)
}

const EXCEPTION_NAMES_NO_HANDLER: [&str; 32] = {
    let mut names = ["unhandled exception"; 32];
    names[0] = "unhandled #DE";
    names[3] = "unhandled #BP";
    names[6] = "unhandled #UD";
    names[7] = "unhandled #NM";
    names[13] = "unhandled #GP";
    names[14] = "unhandled #PF";
    names
};

fn deliver(regs: &mut Regs, vcpu: &mut PvVcpu, host: &mut KernelHost, b: &Bounce) -> Action {
    let mut mask = host.vcpu_info().evtchn_upcall_mask;
    let result = bounce::deliver(regs, vcpu, &mut mask, b, &mut CurrentGuest, |v| {
        crate::arch::x86_64::guest::load_mode(v)
    });
    host.vcpu_info().evtchn_upcall_mask = mask;
    match result {
        Ok(()) => Action::Resume,
        Err(_) => Action::Crash("cannot deliver a trap (bad kernel stack or handler)"),
    }
}

/// Delivers a pending event upcall if the guest has events unmasked.
fn check_events(regs: &mut Regs) -> Action {
    with_current(|vcpu, _, _, host| {
        let info = host.vcpu_info();
        if info.evtchn_upcall_pending == 0 || info.evtchn_upcall_mask != 0 {
            return Action::Resume;
        }
        let cb = vcpu.event_callback;
        if cb.address == 0 {
            return Action::Resume;
        }
        deliver(
            regs,
            vcpu,
            host,
            &Bounce {
                target: cb.address,
                mask_events: true,
                error_code: None,
            },
        )
    })
}

/// Carries out what the exit left to do; returns only when the guest is to resume.
fn finish(regs: &mut Regs, action: Action) {
    let action = match action {
        Action::Resume | Action::Yield => check_events(regs),
        other => other,
    };
    match action {
        Action::Resume | Action::Yield => {}
        Action::Block => block(regs),
        Action::Shutdown(reason) => dom0_shutdown(reason),
        Action::Crash(why) => crash_domain(regs, why),
    }
}

/// Waits with interrupts on until the blocked vCPU has an event pending.
fn block(regs: &mut Regs) {
    loop {
        let pending = with_current(|_, _, _, host| host.vcpu_info().evtchn_upcall_pending != 0);
        if pending {
            break;
        }
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
    }
    finish(regs, Action::Resume);
}

fn dom0_shutdown(reason: ShutdownReason) -> ! {
    info!("Hardware domain 0 shut down: {}", reason.c_name());
    match reason {
        ShutdownReason::Reboot => power::reboot(),
        ShutdownReason::Crash => {
            error!("Domain 0 crashed");
            power::dom0_crashed()
        }
        ShutdownReason::Poweroff => power::power_off(),
        other => {
            warn!(
                "dom0 shutdown reason {} is treated as power off",
                other.c_name()
            );
            power::power_off()
        }
    }
}

/// The CPU refused to resume the guest with the frame it was given (a selector or address
/// the checks before it missed): the guest's domain crashes, the hypervisor does not.
pub fn bad_return_frame() -> ! {
    // SAFETY: the frame at the top of the ring-0 stack still holds the guest's registers
    // (the return path only popped copies of them).
    let regs = unsafe { &*crate::arch::x86_64::entry::guest_frame() };
    crash_domain(regs, "the CPU refused its return frame")
}

/// A guest did something it cannot survive: log it with its registers and stop it.
fn crash_domain(regs: &Regs, why: &str) -> ! {
    error!("d0v0 crashed: {why}");
    trap::print_guest_registers(regs);
    power::dom0_crashed()
}
