//! What happens on every exit from a guest: hypercalls, user `syscall`s, exceptions and
//! interrupts; then, before every return, expired timers, the scheduling decision and pending
//! event upcalls; and the actions a call may leave behind (shutdown, block, crash).

use super::domain::{EventView, MACHINE, Machine};
use super::host::KernelHost;
use super::{exit_clock, resched};
use crate::arch::x86_64::fpu;
use crate::arch::x86_64::guest_entry::SYSCALL32_VECTOR;
use crate::arch::x86_64::{cpu, power, trap};
use crate::event::abi as eabi;
use crate::event::evtchn_ops::{self as evops, Domains};
use crate::event::shared;
use crate::hypercall::exit_times::ExitKind;
use crate::hypercall::{self, Action, Ctx, DomainInfo, Host, MachineCall, MulticallSlot};
use crate::pv::bounce::{self, Bounce};
use crate::pv::emulate;
use crate::pv::guest_mem::GuestMemory;
use crate::pv::vcpu::PvVcpu;
use crate::sched::scheduler::vcpu as vcpu_ref;
use crate::sched::{CpuId, TimerAction, VcpuRef, timer};
use crate::x86::regs::{Regs, SYSCALL_VECTOR};
use crate::{error, info, warn};
use core::sync::atomic::Ordering;
use guest_abi::sched::ShutdownReason;
use guest_abi::vcpu::Runstate;
use x86_64::registers::control::Cr2;

use crate::arch::x86_64::uaccess::CurrentGuest;

/// Page-fault error code bits: the page was present and the access a write.
const PF_PRESENT_WRITE: u64 = 0b11;

/// Runs `f` on the running vCPU, its domain info and a host bound to them.
fn with_current<R>(
    f: impl FnOnce(&mut PvVcpu, u32, &mut DomainInfo, &mut KernelHost<'_>) -> R,
) -> R {
    let mut machine = MACHINE.lock();
    let Some(m) = machine.as_mut() else {
        drop(machine);
        no_running_vcpu("no domain exists")
    };
    let Some(index) = m.current_index() else {
        drop(machine);
        no_running_vcpu("the running domain does not exist")
    };
    let Machine {
        domains,
        sched,
        timers,
        clock,
        current_vcpu,
        ..
    } = m;
    let vcpu_id = *current_vcpu;
    // The running domain's record is borrowed apart from the others; its event state stays
    // reachable through the view, as every other domain's.
    let (before, rest) = domains.split_at_mut(index);
    let Some((dom, after)) = rest.split_first_mut() else {
        drop(machine);
        no_running_vcpu("the running domain's slot is empty")
    };
    let super::domain::Domain {
        info,
        events,
        vcpus,
        console_mid_line,
        pci_cf8,
        ..
    } = &mut **dom;
    let Some(vcpu) = vcpus.get_mut(vcpu_id as usize) else {
        drop(machine);
        no_running_vcpu("the running vCPU does not exist")
    };
    let mut host = KernelHost {
        console_mid_line,
        domain: info.id,
        pci_cf8,
        vcpu_id,
        privilege: info.privilege,
        events: EventView {
            before,
            current: Some((info.id, events)),
            after,
        },
        sched,
        timers,
        clock,
    };
    f(&mut vcpu.pv, vcpu_id, info, &mut host)
}

/// A guest exit found no running vCPU to charge it to: a hypervisor bug.
#[cold]
fn no_running_vcpu(why: &str) -> ! {
    error!("guest exit with no running vCPU: {why}");
    power::crash();
}

/// `syscall` from a guest: a hypercall from guest kernel mode, else a system call of guest
/// user space, bounced to the guest kernel's syscall callback.
pub fn guest_syscall(regs: &mut Regs) {
    exit_clock::begin_exit();
    let mut kind = ExitKind::UserSyscall;
    let mut caller = None;
    let handled = with_current(|vcpu, vcpu_id, domain, host| {
        let action = if regs.vector == SYSCALL_VECTOR && vcpu.kernel_mode {
            kind = ExitKind::Hypercall(regs.rax);
            if vcpu.runstate_area.stale {
                update_runstate_area(vcpu, runstate_update_flag(domain));
            }
            let mut ctx = Ctx {
                regs,
                vcpu,
                vcpu_id,
                domain,
                mem: &mut CurrentGuest,
                host,
                action: Action::Resume,
                regs_loaded: false,
            };
            hypercall::handle(&mut ctx);
            let action = ctx.action;
            if let Action::Machine { .. } = action {
                caller = Some(domain.clone());
            }
            action
        } else {
            user_syscall(regs, vcpu, host)
        };
        settle(regs, vcpu, vcpu_id, host, action)
    });
    // By reference: the caller's record is large, and this runs on every exit.
    let handled = match (handled.action, caller.as_ref()) {
        (Action::Machine { call, slot }, Some(caller)) => {
            machine_call(regs, caller, call, slot);
            Handled {
                action: Action::Resume,
                events_checked: false,
            }
        }
        _ => handled,
    };
    finish(regs, handled);
    exit_clock::end_exit(kind);
}

/// Carries out a call that reaches across domains (decoded by `hypercall::dispatch` like every
/// other call), now that the caller's own state is released: its result goes to `rax`, or
/// into the multicall entry it came from. A call that is continued (a `destroydomain` pass)
/// is re-executed: directly, or as the multicall resumed from its entry.
fn machine_call(
    regs: &mut Regs,
    caller: &DomainInfo,
    call: MachineCall,
    slot: Option<MulticallSlot>,
) {
    let result = match call {
        MachineCall::Domctl(arg) => super::domctl::domctl(caller, arg),
        MachineCall::Sysctl(arg) => super::domctl::sysctl(caller, arg),
        MachineCall::RemoteShutdown(arg) => super::domctl::remote_shutdown(caller, arg),
        MachineCall::VcpuOp { cmd, vcpu, arg } => super::vcpu_ops::vcpu_op(caller, cmd, vcpu, arg),
    };
    match slot {
        None => hypercall::complete(regs, result),
        // The multicall's continuation is already in the registers (it resumes after the
        // entry); a continued call moves it back onto the entry.
        Some(s) if result == Err(guest_abi::XenError::Restart) => {
            regs.rdi = s.entry;
            regs.rsi = s.rest;
        }
        Some(s) => {
            let _ = CurrentGuest.write_obj(s.result_addr(), &hypercall::encode(result));
        }
    }
}

/// A `syscall` from guest user space goes to the guest kernel's syscall callback (or #UD).
fn user_syscall(regs: &mut Regs, vcpu: &mut PvVcpu, host: &mut KernelHost<'_>) -> Action {
    {
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
}

/// An exception or interrupt that arrived while a guest ran.
pub fn guest_trap(regs: &mut Regs) {
    exit_clock::begin_exit();
    let vector = regs.vector as u8;
    let kind = match vector {
        2 | 32..=255 => ExitKind::Interrupt,
        _ => ExitKind::Exception,
    };
    let handled = with_current(|vcpu, vcpu_id, domain, host| {
        let action = match vector {
            // Interrupts are the hypervisor's; the guest just resumes (after the scheduler).
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
            // A write to a read-only mapping of one of the guest's own L1 tables, from its
            // kernel: done on its behalf (Xen's ptwr, which for 64-bit PV guests does not
            // wait for VMASST_TYPE_writable_pagetables).
            14 if vcpu.kernel_mode
                && regs.error_code & PF_PRESENT_WRITE == PF_PRESENT_WRITE
                && super::mmu::ptwr(regs, vcpu, domain, Cr2::read_raw()) =>
            {
                Action::Resume
            }
            14 => {
                host.vcpu_info()
                    .arch_cr2
                    .store(Cr2::read_raw(), Ordering::SeqCst);
                // Xen shows the guest kernel its own faults as supervisor-mode faults.
                let code = if vcpu.kernel_mode {
                    regs.error_code & !4
                } else {
                    regs.error_code
                };
                bounce_exception(regs, vcpu, host, 14, Some(code))
            }
            6 | 13 => privileged_op(regs, vcpu, host, vector),
            v @ (8 | 10..=12 | 17 | 21) => {
                bounce_exception(regs, vcpu, host, v, Some(regs.error_code))
            }
            v => bounce_exception(regs, vcpu, host, v, None),
        };
        settle(regs, vcpu, vcpu_id, host, action)
    });
    finish(regs, handled);
    exit_clock::end_exit(kind);
}

/// #GP or #UD from a guest: emulate the privileged instruction, or deliver a software
/// interrupt the guest's virtual IDT allows, or bounce the fault.
fn privileged_op(
    regs: &mut Regs,
    vcpu: &mut PvVcpu,
    host: &mut KernelHost<'_>,
    vector: u8,
) -> Action {
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
        emulate::Outcome::Emulated | emulate::Outcome::Partial => return Action::Resume,
        emulate::Outcome::Block => {
            let me = vcpu_ref(host.domain, eabi::VcpuId(host.vcpu_id));
            let (shared, sched) = host.shared_and_sched();
            return match crate::sched::blocking::block(shared, sched, me) {
                Ok(crate::sched::blocking::Blocking::Blocked(_)) => Action::Block,
                _ => Action::Resume,
            };
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
    host: &mut KernelHost<'_>,
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

fn deliver(regs: &mut Regs, vcpu: &mut PvVcpu, host: &mut KernelHost<'_>, b: &Bounce) -> Action {
    let info = host.vcpu_info();
    let mut mask = info.evtchn_upcall_mask.load(Ordering::SeqCst);
    let result = bounce::deliver(regs, vcpu, &mut mask, b, &mut CurrentGuest, |v| {
        crate::arch::x86_64::guest::load_mode(v)
    });
    info.evtchn_upcall_mask.store(mask, Ordering::SeqCst);
    match result {
        Ok(()) => Action::Resume,
        Err(_) => Action::Crash("cannot deliver a trap (bad kernel stack or handler)"),
    }
}

/// Delivers a pending event upcall if the guest has events unmasked.
fn check_events(regs: &mut Regs) -> Action {
    with_current(|vcpu, vcpu_id, _, host| deliver_events(regs, vcpu, vcpu_id, host))
}

fn deliver_events(
    regs: &mut Regs,
    vcpu: &mut PvVcpu,
    vcpu_id: u32,
    host: &mut KernelHost<'_>,
) -> Action {
    if !shared::events_need_delivery(host.shared(), eabi::VcpuId(vcpu_id)) {
        return Action::Resume;
    }
    let cb = vcpu.event_callback;
    if cb.address == 0 {
        return Action::Resume;
    }
    let b = Bounce {
        target: cb.address,
        mask_events: true,
        error_code: None,
    };
    deliver(regs, vcpu, host, &b)
}

/// How an exit was handled within the running vCPU's context.
struct Handled {
    action: Action,
    /// Pending events were already looked at (nothing else has to run before the return).
    events_checked: bool,
}

/// Finishes an exit while still in the vCPU's context when neither the scheduler nor an
/// action needs the machine: the common case costs one critical section.
fn settle(
    regs: &mut Regs,
    vcpu: &mut PvVcpu,
    vcpu_id: u32,
    host: &mut KernelHost<'_>,
    action: Action,
) -> Handled {
    // A timer the call set may be due before the LAPIC is set to fire.
    if let Some(next) = host.timers.next_deadline()
        && next < resched::armed_until()
    {
        resched::arm_timer(next, host.clock.now(cpu::rdtsc()));
    }
    // A pattern, not `==`: the derived comparison of the whole action is an out-of-line call.
    if matches!(action, Action::Resume) && !resched::needed() {
        Handled {
            action: deliver_events(regs, vcpu, vcpu_id, host),
            events_checked: true,
        }
    } else {
        Handled {
            action,
            events_checked: false,
        }
    }
}

/// Runs expired timers: `VIRQ_TIMER` for one-shot and periodic timers, the end of a poll.
fn run_timers(m: &mut Machine, now: u64) {
    while let Some(key) = m.timers.pop_expired(now) {
        let v = key.vcpu;
        let Some(vt) = m
            .domains
            .iter_mut()
            .find(|d| d.info.id.0 == v.domain.0)
            .and_then(|d| d.vcpus.get_mut(v.vcpu.0 as usize))
            .map(|vc| &mut vc.pv.timers)
        else {
            continue;
        };
        match timer::on_expiry(&mut m.timers, vt, key, now) {
            Ok(TimerAction::RaiseTimerVirq(v)) => {
                let wake = evops::raise_virq(&mut m.events(), v.domain, v.vcpu, eabi::Virq::TIMER);
                let _ = m.sched.wake_all(wake);
            }
            Ok(TimerAction::EndPoll(v)) => {
                if let Some(ev) = m.events().events(v.domain) {
                    ev.channels.end_poll(v.vcpu);
                }
                let _ = m.sched.wake(v);
            }
            Ok(TimerAction::None) | Err(_) => {}
        }
    }
}

/// Runs timers and the scheduler until some vCPU may run, switching to it, and idling
/// (interrupts on, CPU halted) while nothing is runnable.
fn schedule() {
    loop {
        let mut guard = MACHINE.lock();
        let Some(m) = guard.as_mut() else { return };
        let now = m.clock.now(cpu::rdtsc());
        resched::clear();
        run_timers(m, now);
        let d = m.sched.schedule(CpuId(0), now, m.timers.next_deadline());
        if let Some(until) = d.until {
            resched::arm_timer(until, now);
        }
        let current = vcpu_ref(eabi::DomId(m.current), eabi::VcpuId(m.current_vcpu));
        match d.next {
            Some(v) if v == current => return,
            Some(v) => {
                switch_to(m, current, v, now);
                return;
            }
            None => {
                drop(guard);
                x86_64::instructions::interrupts::enable_and_hlt();
                x86_64::instructions::interrupts::disable();
                // Time spent idle is not the exit's work: its clock restarts at the wake-up.
                exit_clock::begin_exit();
            }
        }
    }
}

/// Saves the running vCPU's state (registers from the guest frame, FPU) and loads `next`'s
/// into the frame and the CPU, so that the return path resumes `next`.
fn switch_to(m: &mut Machine, prev: VcpuRef, next: VcpuRef, now: u64) {
    crate::arch::x86_64::guest_entry::with_guest_frame(|frame| {
        switch_frame(m, prev, next, now, frame)
    });
}

/// [`switch_to`] on the guest frame, which holds the running vCPU's registers.
fn switch_frame(m: &mut Machine, prev: VcpuRef, next: VcpuRef, now: u64, frame: &mut Regs) {
    crate::arch::x86_64::guest::set_fpu_trap(false);
    let prev_state = runstate_of(m.sched.run_state(prev));
    // The guest GDT entries in the CPU's GDT are prev's (all of them if prev is gone).
    let mut loaded_gdt_ents = crate::pv::vcpu::GDT_GUEST_FRAMES as u32 * 512;
    if let Some(d) = m.domain_mut(prev.domain.0) {
        let flag = runstate_update_flag(&d.info);
        if let Some(v) = d.vcpus.get_mut(prev.vcpu.0 as usize) {
            v.regs = *frame;
            fpu::save(&mut v.fpu);
            // Its page tables are still the live ones.
            v.pv.runstate.change(prev_state, now);
            loaded_gdt_ents = v.pv.gdt_ents;
            update_runstate_area(&mut v.pv, flag);
        }
    }
    timer::on_switch_out(&mut m.timers, prev);
    m.current = next.domain.0;
    m.current_vcpu = next.vcpu.0;
    let Some(index) = m.current_index() else {
        error!("scheduler picked {next:?}, which does not exist");
        power::crash();
    };
    let Some((v, flag)) = m.domains.get_mut(index).and_then(|d| {
        let flag = runstate_update_flag(&d.info);
        d.vcpus.get_mut(next.vcpu.0 as usize).map(|v| (v, flag))
    }) else {
        error!("scheduler picked {next:?}, which does not exist");
        power::crash();
    };
    *frame = v.regs;
    fpu::restore(&v.fpu);
    super::mmu::load_guest_gdt(&v.pv, loaded_gdt_ents);
    super::mmu::load_guest_ldt(&v.pv);
    crate::arch::x86_64::guest::load_mode(&v.pv);
    crate::arch::x86_64::guest::set_fs_base(v.pv.fs_base);
    // Guest user mappings are global: another domain's must not survive the switch.
    super::mmu::flush_tlb_all();
    v.pv.runstate.change(Runstate::Running, now);
    update_runstate_area(&mut v.pv, flag);
    crate::arch::x86_64::guest::set_fpu_trap(v.pv.fpu_ts);
    if let Ok(TimerAction::RaiseTimerVirq(t)) =
        timer::on_switch_in(&mut m.timers, &mut v.pv.timers, next, now)
    {
        let wake = evops::raise_virq(&mut m.events(), t.domain, t.vcpu, eabi::Virq::TIMER);
        let _ = m.sched.wake_all(wake);
    }
}

/// The guest-visible runstate for a scheduler state.
fn runstate_of(state: Option<crate::sched::scheduler::RunState>) -> Runstate {
    use crate::sched::scheduler::RunState;
    match state {
        Some(RunState::Running | RunState::Runnable) => Runstate::Runnable,
        Some(RunState::Blocked) => Runstate::Blocked,
        Some(RunState::Offline) | None => Runstate::Offline,
    }
}

/// Whether the domain enabled `VMASST_TYPE_runstate_update_flag`.
fn runstate_update_flag(d: &DomainInfo) -> bool {
    d.has_vm_assist(guest_abi::xen::VmAssistType::RunstateUpdateFlag)
}

/// Mirrors the running vCPU's runstate into its registered area, through the live page
/// tables. In guest user mode the kernel's area need not be mapped: the write waits for the
/// next hypercall (Xen defers it to the next switch to kernel mode). A write that faults is
/// dropped, as in Xen.
fn update_runstate_area(vcpu: &mut PvVcpu, update_flag: bool) {
    let area = &mut vcpu.runstate_area;
    if area.va == 0 {
        return;
    }
    area.stale = !vcpu.kernel_mode;
    if vcpu.kernel_mode {
        let _ = crate::pv::runstate::write_area(
            &mut CurrentGuest,
            area.va,
            &vcpu.runstate.record(),
            update_flag,
        );
    }
}

/// Carries out what the exit left to do; returns only when a guest is to resume.
fn finish(regs: &mut Regs, handled: Handled) {
    if handled.events_checked {
        if let Action::Crash(why) = handled.action {
            shutdown_current(ShutdownReason::Crash, Some((regs, why)));
        }
        return;
    }
    match handled.action {
        Action::Shutdown(reason) => shutdown_current(reason, None),
        Action::Crash(why) => shutdown_current(ShutdownReason::Crash, Some((regs, why))),
        Action::Block | Action::Yield => schedule(),
        // Carried out before `finish` by the exit path that left it.
        Action::Machine { .. } => {}
        Action::Resume if resched::needed() => schedule(),
        Action::Resume => {}
    }
    if let Action::Crash(why) = check_events(regs) {
        shutdown_current(ShutdownReason::Crash, Some((regs, why)));
    }
}

/// The running domain shut down (or crashed, with the registers and reason): dom0 takes the
/// machine with it; a domU stops, dom0 is told with `VIRQ_DOM_EXC`, and another vCPU runs.
fn shutdown_current(reason: ShutdownReason, crash: Option<(&Regs, &str)>) {
    let mut guard = MACHINE.lock();
    let Some(m) = guard.as_mut() else { return };
    let (id, vcpu) = (m.current, m.current_vcpu);
    if let Some((regs, why)) = crash {
        error!("d{id}v{vcpu} crashed: {why}");
        trap::print_guest_registers(regs);
    }
    if id == 0 {
        drop(guard);
        dom0_shutdown(reason);
    }
    info!("Domain {id} shut down: {}", reason.c_name());
    if let Some(d) = m.domain_mut(id) {
        d.shutdown = Some(reason);
    }
    let _ = m.sched.pause_domain(eabi::DomId(id));
    let wake = evops::raise_virq(
        &mut m.events(),
        eabi::DomId(0),
        eabi::VcpuId(0),
        eabi::Virq::DOM_EXC,
    );
    let _ = m.sched.wake_all(wake);
    drop(guard);
    schedule();
}

fn dom0_shutdown(reason: ShutdownReason) -> ! {
    info!("Hardware domain 0 shut down: {}", reason.c_name());
    if exit_clock::PRINT_EXIT_TIMES.load(Ordering::Relaxed) {
        exit_clock::print_exit_times();
    }
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
    // The frame still holds the guest's registers (the return path only popped copies).
    let regs = crate::arch::x86_64::guest_entry::with_guest_frame(|r| *r);
    crash_domain(&regs, "the CPU refused its return frame")
}

/// A guest did something it cannot survive: log it with its registers and stop its domain.
fn crash_domain(regs: &Regs, why: &str) -> ! {
    shutdown_current(ShutdownReason::Crash, Some((regs, why)));
    // A domU's crash switched to another vCPU, whose frame is now in place.
    crate::arch::x86_64::guest_entry::resume_guest_frame()
}
