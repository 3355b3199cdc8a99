//! Hypercalls through the hypercall page, and typed wrappers returning
//! `Result<_, XenError>`.
//!
//! [`raw`] is the only place that executes a hypercall. It calls the stub at
//! `hypercall_page + 32 * nr` with the arguments in `rdi, rsi, rdx, r10, r8` (Xen's
//! x86-64 convention, [`ARG_REGISTERS`](crate::hypercall::ARG_REGISTERS)); the result
//! comes back in `rax`. `syscall` destroys `rcx` and `r11`, and Xen may change the
//! argument registers, so all of them are declared clobbered.

use zerocopy::{FromBytes, IntoBytes};

use super::hypercall_page;
use crate::arch::TrapInfo;
use crate::callback::{
    CallbackOp, CallbackRegister, CallbackType, CallbackUnregister, PhysdevOp, PhysdevSetIopl,
};
use crate::event_channel::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu, EvtchnBindVirq,
    EvtchnOp, EvtchnPortArg, EvtchnStatus,
};
use crate::grant_table::GnttabOp;
use crate::hypercall::{HYPERCALL_STUB_SIZE, Hypercall};
use crate::memory::{E820Entry, MemoryOp, XenMemoryExchange, XenMemoryMap, XenMemoryReservation};
use crate::sched::{SchedOp, SchedPoll, SchedShutdown, ShutdownReason};
use crate::vcpu::VcpuOp;
use crate::version::{XenFeatureInfo, XenVersionOp};
use crate::xen::ConsoleIoCmd;
use crate::xen::{MmuUpdate, MmuextOp, MulticallEntry, VmAssistCmd, VmAssistType};
use crate::{DomId, EvtchnPort, VcpuId, VirtAddr, XenError};

/// Executes hypercall `op` with five arguments; returns `rax` as a signed value.
///
/// # Safety
/// The arguments must be valid for `op`: pointers must point to memory of the right type
/// and size that Xen may read or write for the whole call, and the operation must not
/// break what the caller's Rust code relies on (its page tables, its stack, ...).
pub unsafe fn raw(op: Hypercall, args: [u64; 5]) -> i64 {
    // SAFETY: forwarded to the caller.
    unsafe { raw_nr(op.raw(), args) }
}

/// Stubs the hypercall page holds (one per 32 bytes of its 4 KiB).
pub const STUBS: u32 = (crate::PAGE_SIZE as usize / HYPERCALL_STUB_SIZE) as u32;

/// Executes hypercall number `nr` through its stub, whether or not guest-abi knows the
/// number (for testing what the hypervisor answers to unknown numbers); returns `rax`.
///
/// # Safety
/// As for [`raw`]. Panics if `nr` is not below [`STUBS`].
pub unsafe fn raw_nr(nr: u32, args: [u64; 5]) -> i64 {
    assert!(nr < STUBS, "no hypercall page stub for hypercall {nr}");
    let stub = hypercall_page as *const () as usize + nr as usize * HYPERCALL_STUB_SIZE;
    let ret: i64;
    // SAFETY: `stub` is the hypercall page entry for `nr`, which the hypervisor filled
    // (module assumptions); the stub follows the C calling convention apart from the
    // registers declared here. The caller vouches for the arguments.
    unsafe {
        core::arch::asm!(
            "call {stub}",
            stub = in(reg) stub,
            inlateout("rdi") args[0] => _,
            inlateout("rsi") args[1] => _,
            inlateout("rdx") args[2] => _,
            inlateout("r10") args[3] => _,
            inlateout("r8") args[4] => _,
            lateout("rax") ret,
            out("rcx") _,
            out("r11") _,
        );
    }
    ret
}

/// [`raw`], with the result decoded.
///
/// # Safety
/// As for [`raw`].
pub unsafe fn call(op: Hypercall, args: [u64; 5]) -> Result<u64, XenError> {
    // SAFETY: forwarded to the caller.
    XenError::from_ret(unsafe { raw(op, args) })
}

/// A call whose only pointer argument is `arg`, a plain struct Xen reads and writes.
fn with_arg<T: IntoBytes + FromBytes>(
    op: Hypercall,
    cmd: u64,
    arg: &mut T,
) -> Result<u64, XenError> {
    // SAFETY: `arg` is a valid, exclusively borrowed `T` for the whole call; every caller
    // pairs `cmd` with the struct type Xen expects for it, and those structs hold no
    // pointers, so Xen touches nothing else.
    unsafe { call(op, [cmd, arg as *mut T as u64, 0, 0, 0]) }
}

/// `console_io(CONSOLEIO_write)`: writes `bytes` to the hypervisor console (dom0, or any
/// domain when the hypervisor allows guest console output).
pub fn console_write(bytes: &[u8]) -> Result<u64, XenError> {
    // SAFETY: Xen reads `bytes.len()` bytes from `bytes`, which are valid for the call.
    unsafe { console_io(ConsoleIoCmd::Write, bytes.len(), bytes.as_ptr() as u64) }
}

/// `console_io(cmd, count, buffer)`.
///
/// # Safety
/// `buffer` must be valid for `count` bytes of what `cmd` does with it (read or write).
unsafe fn console_io(cmd: ConsoleIoCmd, count: usize, buffer: u64) -> Result<u64, XenError> {
    // SAFETY: forwarded to the caller.
    unsafe {
        call(
            Hypercall::ConsoleIo,
            [cmd as u64, count as u64, buffer, 0, 0],
        )
    }
}

/// `sched_op(SCHEDOP_shutdown)`: asks the hypervisor to shut the domain down. Returns
/// only if the hypervisor refuses.
pub fn sched_shutdown(reason: ShutdownReason) -> Result<u64, XenError> {
    let mut arg = SchedShutdown {
        reason: reason as u32,
    };
    with_arg(Hypercall::SchedOp, SchedOp::Shutdown as u64, &mut arg)
}

/// Shuts the domain down; never returns (spins on `SCHEDOP_yield` if refused).
pub fn shutdown(reason: ShutdownReason) -> ! {
    loop {
        let _ = sched_shutdown(reason);
        let _ = sched_yield();
    }
}

/// `sched_op(SCHEDOP_yield)`.
pub fn sched_yield() -> Result<u64, XenError> {
    // SAFETY: no pointer argument.
    unsafe { call(Hypercall::SchedOp, [SchedOp::Yield as u64, 0, 0, 0, 0]) }
}

/// `sched_op(SCHEDOP_block)`: waits for an event (and unmasks event delivery).
pub fn sched_block() -> Result<u64, XenError> {
    // SAFETY: no pointer argument.
    unsafe { call(Hypercall::SchedOp, [SchedOp::Block as u64, 0, 0, 0, 0]) }
}

/// `sched_op(SCHEDOP_poll)`: blocks until one of `ports` is pending or system time
/// reaches `deadline_ns` (0: no timeout). Works with event delivery masked.
pub fn sched_poll(ports: &[EvtchnPort], deadline_ns: u64) -> Result<u64, XenError> {
    let mut arg = SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: ports.len() as u32,
        _hole: 0,
        timeout: deadline_ns,
    };
    // `arg` holds a pointer, so it cannot go through `with_arg`.
    let args = [SchedOp::Poll as u64, &raw mut arg as u64, 0, 0, 0];
    // SAFETY: `arg` and the port array it points to (EvtchnPort is a transparent u32, as
    // evtchn_port_t) are valid for the call; Xen only reads them.
    unsafe { call(Hypercall::SchedOp, args) }
}

/// An `event_channel_op` argument struct, with the sub-op it goes with.
pub trait EvtchnArg: IntoBytes + FromBytes {
    /// The sub-op.
    const OP: EvtchnOp;
}

macro_rules! evtchn_args {
    ($($ty:ty => $op:ident),* $(,)?) => {
        $(impl EvtchnArg for $ty { const OP: EvtchnOp = EvtchnOp::$op; })*
    };
}

evtchn_args! {
    EvtchnAllocUnbound => AllocUnbound,
    EvtchnBindInterdomain => BindInterdomain,
    EvtchnBindVirq => BindVirq,
    EvtchnBindIpi => BindIpi,
    EvtchnStatus => Status,
    EvtchnBindVcpu => BindVcpu,
}

/// `event_channel_op(T::OP, arg)`.
pub fn event_channel_op<T: EvtchnArg>(arg: &mut T) -> Result<u64, XenError> {
    with_arg(Hypercall::EventChannelOp, T::OP as u64, arg)
}

/// `event_channel_op` on one port: `Close`, `Send` or `Unmask`.
pub fn evtchn_port_op(op: EvtchnOp, port: u32) -> Result<u64, XenError> {
    match op {
        EvtchnOp::Close | EvtchnOp::Send | EvtchnOp::Unmask => with_arg(
            Hypercall::EventChannelOp,
            op as u64,
            &mut EvtchnPortArg { port },
        ),
        _ => Err(XenError::Inval),
    }
}

/// `EVTCHNOP_send`: notifies the other end of `port`.
pub fn evtchn_send(port: u32) -> Result<u64, XenError> {
    evtchn_port_op(EvtchnOp::Send, port)
}

/// `xen_version(XENVER_version)`: `(major, minor)`.
pub fn xen_version() -> Result<(u16, u16), XenError> {
    // SAFETY: XENVER_version takes no buffer.
    let v = unsafe {
        call(
            Hypercall::XenVersion,
            [XenVersionOp::Version as u64, 0, 0, 0, 0],
        )
    }?;
    Ok(((v >> 16) as u16, v as u16))
}

/// `xen_version(XENVER_get_features)`: feature submap `index`.
pub fn xen_features(index: u32) -> Result<u32, XenError> {
    let mut info = XenFeatureInfo {
        submap_idx: index,
        submap: 0,
    };
    with_arg(
        Hypercall::XenVersion,
        XenVersionOp::GetFeatures as u64,
        &mut info,
    )?;
    Ok(info.submap)
}

/// `xen_version` with a fixed-size byte buffer result (`XENVER_extraversion`,
/// `XENVER_capabilities`, `XENVER_changeset`, `XENVER_commandline`, ...). Fails with
/// `EINVAL` unless `N` is the size Xen writes for `op`.
pub fn xen_version_string<const N: usize>(
    op: XenVersionOp,
    buf: &mut [u8; N],
) -> Result<u64, XenError> {
    let size_ok = match op {
        XenVersionOp::Extraversion => N == 16,
        XenVersionOp::Capabilities | XenVersionOp::Commandline => N == 1024,
        XenVersionOp::Changeset => N == 64,
        XenVersionOp::GuestHandle => N == 16,
        _ => false,
    };
    if !size_ok {
        return Err(XenError::Inval);
    }
    with_arg(Hypercall::XenVersion, op as u64, buf)
}

/// `set_timer_op`: fires `VIRQ_TIMER` at system time `deadline_ns` (0 cancels).
pub fn set_timer_op(deadline_ns: u64) -> Result<u64, XenError> {
    // SAFETY: no pointer argument.
    unsafe { call(Hypercall::SetTimerOp, [deadline_ns, 0, 0, 0, 0]) }
}

/// `callback_op(CALLBACKOP_register)`.
///
/// # Safety
/// `cb.address` must be code that can take the callback (the hypervisor jumps there).
pub unsafe fn callback_register(cb: &CallbackRegister) -> Result<u64, XenError> {
    let mut arg = *cb;
    with_arg(Hypercall::CallbackOp, CallbackOp::Register as u64, &mut arg)
}

/// `mmu_update(reqs, count, &done, domid)`: returns how many requests Xen completed
/// (also on failure, through `done`).
///
/// # Safety
/// The updates change page tables under the running code: the caller must keep every
/// mapping Rust relies on intact.
pub unsafe fn mmu_update(
    reqs: &[MmuUpdate],
    done: &mut u32,
    domid: DomId,
) -> Result<u64, XenError> {
    let args = [
        reqs.as_ptr() as u64,
        reqs.len() as u64,
        done as *mut u32 as u64,
        u64::from(domid.0),
        0,
    ];
    // SAFETY: the pointers are valid for the call; the caller vouches for the updates.
    unsafe { call(Hypercall::MmuUpdate, args) }
}

/// `mmuext_op(ops, count, &done, domid)`.
///
/// # Safety
/// As for [`mmu_update`]; `vcpumask` arguments must point to valid masks.
pub unsafe fn mmuext_op(ops: &[MmuextOp], done: &mut u32, domid: DomId) -> Result<u64, XenError> {
    let args = [
        ops.as_ptr() as u64,
        ops.len() as u64,
        done as *mut u32 as u64,
        u64::from(domid.0),
        0,
    ];
    // SAFETY: the pointers are valid for the call; the caller vouches for the operations.
    unsafe { call(Hypercall::MmuextOp, args) }
}

/// `update_va_mapping(va, pte, flags)` (`UVMF_*` flags).
///
/// # Safety
/// As for [`mmu_update`].
pub unsafe fn update_va_mapping(va: VirtAddr, pte: u64, flags: u64) -> Result<u64, XenError> {
    // SAFETY: no pointer argument Xen dereferences (UVMF_MULTI masks aside, which the
    // caller vouches for); the caller vouches for the mapping.
    unsafe { call(Hypercall::UpdateVaMapping, [va.0, pte, flags, 0, 0]) }
}

/// `multicall(calls, count)`: each entry's `result` receives its call's return value.
///
/// # Safety
/// Every entry must be a call that is safe to make with its arguments (see [`raw`]).
pub unsafe fn multicall(calls: &mut [MulticallEntry]) -> Result<u64, XenError> {
    // SAFETY: `calls` is valid and exclusively borrowed for the call; the caller vouches
    // for the entries.
    unsafe {
        call(
            Hypercall::Multicall,
            [calls.as_mut_ptr() as u64, calls.len() as u64, 0, 0, 0],
        )
    }
}

/// `set_trap_table(traps)`: `traps` ends with an entry whose `address` is 0.
///
/// # Safety
/// Every handler address must be code that can take that exception.
pub unsafe fn set_trap_table(traps: &[TrapInfo]) -> Result<u64, XenError> {
    if traps.last().is_none_or(|t| t.address != 0) {
        return Err(XenError::Inval);
    }
    // SAFETY: the table is valid and terminated; the caller vouches for the handlers.
    unsafe { call(Hypercall::SetTrapTable, [traps.as_ptr() as u64, 0, 0, 0, 0]) }
}

/// `XENMEM_exchange`: trades the machine frames listed in `input` (extents of
/// `1 << in_order` frames, first frames given) for `output.len()` new extents of
/// `1 << out_order` machine-contiguous frames below `address_bits` (0: anywhere), recorded in
/// the M2P at the guest frame numbers `output` holds on entry; on return `output` holds the new
/// extents' first machine frames. Returns the input extents exchanged (all of them on success;
/// on an error, how many were before it). A long exchange is continued by the hypervisor
/// transparently.
///
/// # Safety
/// Every input frame must be this domain's and unmapped (no page-table entry, pin or other
/// reference may hold it: the hypervisor refuses the exchange otherwise), and nothing may use
/// the input frames afterwards; the caller updates its own P2M and mappings for the new frames.
pub unsafe fn memory_exchange(
    input: &[u64],
    in_order: u32,
    output: &mut [u64],
    out_order: u32,
    address_bits: u32,
) -> (u64, Result<(), XenError>) {
    let reservation = |list: u64, n: usize, order, flags| XenMemoryReservation {
        extent_start: list,
        nr_extents: n as u64,
        extent_order: order,
        mem_flags: flags,
        domid: DomId::SELF.0,
        _hole: [0; 3],
    };
    let mut exchange = XenMemoryExchange {
        in_: reservation(input.as_ptr() as u64, input.len(), in_order, 0),
        out: reservation(
            output.as_mut_ptr() as u64,
            output.len(),
            out_order,
            address_bits & 0xff,
        ),
        nr_exchanged: 0,
    };
    // SAFETY: the two lists are live slices of the lengths given; the caller vouches for the
    // frames.
    let result = unsafe { memory_op(MemoryOp::Exchange, &mut exchange) };
    (exchange.nr_exchanged, result.map(drop))
}

/// `XENMEM_machine_memory_map` (dom0 only): the machine's E820 map into `buf`, with the
/// ranges dom0 may not use added as reserved entries. Returns the number of entries written.
/// `buf` needs room for the map's entries plus one (`-EINVAL` otherwise).
pub fn machine_memory_map(buf: &mut [E820Entry]) -> Result<usize, XenError> {
    let mut map = XenMemoryMap {
        nr_entries: u32::try_from(buf.len()).unwrap_or(u32::MAX),
        _hole: 0,
        buffer: buf.as_mut_ptr() as u64,
    };
    // SAFETY: the buffer is a live slice of `nr_entries` entries the hypervisor may write.
    unsafe { memory_op(MemoryOp::MachineMemoryMap, &mut map) }?;
    Ok(map.nr_entries as usize)
}

/// `memory_op(cmd, arg)`.
///
/// # Safety
/// `arg` must be the struct `cmd` takes, and any guest handles in it must point to buffers
/// of the right size that Xen may write.
pub unsafe fn memory_op<T: IntoBytes + FromBytes>(
    cmd: MemoryOp,
    arg: &mut T,
) -> Result<u64, XenError> {
    // SAFETY: `arg` is valid for the call; the caller vouches for its type and handles.
    unsafe {
        call(
            Hypercall::MemoryOp,
            [cmd as u64, arg as *mut T as u64, 0, 0, 0],
        )
    }
}

/// `vcpu_op(cmd, vcpu, arg)`.
///
/// # Safety
/// `arg` must be the struct `cmd` takes (or any value for commands that take none), and
/// what it describes (a context, a registered area) must stay valid as Xen requires.
pub unsafe fn vcpu_op<T: IntoBytes + FromBytes>(
    cmd: VcpuOp,
    vcpu: VcpuId,
    arg: &mut T,
) -> Result<u64, XenError> {
    // SAFETY: `arg` is valid for the call; the caller vouches for the rest.
    unsafe {
        call(
            Hypercall::VcpuOp,
            [cmd as u64, u64::from(vcpu.0), arg as *mut T as u64, 0, 0],
        )
    }
}

/// `grant_table_op(cmd, args, count)`.
///
/// # Safety
/// `args` must be of the struct `cmd` takes; mappings it creates or removes must not break
/// what Rust relies on; guest handles in it must be valid.
pub unsafe fn grant_table_op<T: IntoBytes + FromBytes>(
    cmd: GnttabOp,
    args: &mut [T],
) -> Result<u64, XenError> {
    let a = [
        cmd as u64,
        args.as_mut_ptr() as u64,
        args.len() as u64,
        0,
        0,
    ];
    // SAFETY: `args` is valid for the call; the caller vouches for the rest.
    unsafe { call(Hypercall::GrantTableOp, a) }
}

/// `physdev_op(cmd, arg)`.
///
/// # Safety
/// `arg` must be the struct `cmd` takes.
pub unsafe fn physdev_op<T: IntoBytes + FromBytes>(
    cmd: PhysdevOp,
    arg: &mut T,
) -> Result<u64, XenError> {
    // SAFETY: `arg` is valid for the call; the caller vouches for its type.
    unsafe {
        call(
            Hypercall::PhysdevOp,
            [cmd as u64, arg as *mut T as u64, 0, 0, 0],
        )
    }
}

/// `vm_assist(cmd, type)`.
pub fn vm_assist(cmd: VmAssistCmd, ty: VmAssistType) -> Result<u64, XenError> {
    // SAFETY: no pointer argument.
    unsafe { call(Hypercall::VmAssist, [cmd as u64, ty as u64, 0, 0, 0]) }
}

/// `set_segment_base(which, base)` (`SEGBASE_*`).
///
/// # Safety
/// Changing FS or GS bases must not break thread-local or per-CPU data Rust relies on.
pub unsafe fn set_segment_base(which: u32, base: u64) -> Result<u64, XenError> {
    // SAFETY: no pointer argument; the caller vouches for the new base.
    unsafe { call(Hypercall::SetSegmentBase, [u64::from(which), base, 0, 0, 0]) }
}

/// `stack_switch(ss, sp)`: the kernel stack for ring transitions.
///
/// # Safety
/// `sp` must be the top of a stack that can take exception frames.
pub unsafe fn stack_switch(ss: u16, sp: u64) -> Result<u64, XenError> {
    // SAFETY: no pointer Xen dereferences now; the caller vouches for the stack.
    unsafe { call(Hypercall::StackSwitch, [u64::from(ss), sp, 0, 0, 0]) }
}

/// `fpu_taskswitch(set)`: sets (`true`) or clears CR0.TS.
pub fn fpu_taskswitch(set: bool) -> Result<u64, XenError> {
    // SAFETY: no pointer argument.
    unsafe { call(Hypercall::FpuTaskswitch, [u64::from(set), 0, 0, 0, 0]) }
}

/// `console_io(CONSOLEIO_read)`: reads up to `buf.len()` bytes of console input (dom0
/// only); returns how many Xen wrote.
pub fn console_read(buf: &mut [u8]) -> Result<u64, XenError> {
    // SAFETY: Xen writes at most `buf.len()` bytes to `buf`, which is valid and exclusively
    // borrowed for the call.
    unsafe { console_io(ConsoleIoCmd::Read, buf.len(), buf.as_mut_ptr() as u64) }
}

/// `callback_op(CALLBACKOP_unregister)`.
pub fn callback_unregister(ty: CallbackType) -> Result<u64, XenError> {
    let mut arg = CallbackUnregister {
        type_: ty as u16,
        _unused: 0,
    };
    with_arg(
        Hypercall::CallbackOp,
        CallbackOp::Unregister as u64,
        &mut arg,
    )
}

/// `set_callbacks(event, failsafe, syscall)`: the older way to register the three main
/// callbacks (x86-64 takes the syscall address as a third argument).
///
/// # Safety
/// Each address must be code that can take its callback.
pub unsafe fn set_callbacks(event: u64, failsafe: u64, syscall: u64) -> Result<u64, XenError> {
    // SAFETY: no pointer Xen dereferences now; the caller vouches for the handlers.
    unsafe { call(Hypercall::SetCallbacks, [event, failsafe, syscall, 0, 0]) }
}

/// `set_debugreg(reg, value)`.
///
/// # Safety
/// Enabling a breakpoint (DR7) makes the hypervisor deliver `#DB` to the guest, which must
/// be ready for it.
pub unsafe fn set_debugreg(reg: u32, value: u64) -> Result<u64, XenError> {
    // SAFETY: no pointer argument; the caller vouches for the breakpoints.
    unsafe { call(Hypercall::SetDebugreg, [u64::from(reg), value, 0, 0, 0]) }
}

/// `get_debugreg(reg)`: the raw result, the register's value or `-errno` (Xen's ABI cannot
/// tell a value at or above 2^63 from an error).
pub fn get_debugreg(reg: u32) -> i64 {
    // SAFETY: no pointer argument.
    unsafe { raw(Hypercall::GetDebugreg, [u64::from(reg), 0, 0, 0, 0]) }
}

/// `physdev_op(PHYSDEVOP_set_iopl)`: the virtual I/O privilege level.
pub fn set_iopl(iopl: u32) -> Result<u64, XenError> {
    with_arg(
        Hypercall::PhysdevOp,
        PhysdevOp::SetIopl as u64,
        &mut PhysdevSetIopl { iopl },
    )
}
