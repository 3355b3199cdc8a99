//! The calls that set up how a PV guest takes traps and events: its virtual IDT, callbacks,
//! kernel stack, segment bases, debug registers, I/O privilege, VM assists, and the `iret`
//! hypercall that returns from a bounce.

use super::{Action, Ctx, HcResult, Host};
use crate::pv::bounce;
use crate::pv::guest_mem::{GuestMemory, check_guest_range, is_canonical};
use crate::pv::vcpu::{Callback, PvVcpu};
use guest_abi::XenError;
use guest_abi::arch::{
    SEGBASE_FS, SEGBASE_GS_KERNEL, SEGBASE_GS_USER, SEGBASE_GS_USER_SEL, TrapInfo,
};
use guest_abi::callback::{
    CALLBACKF_MASK_EVENTS, CallbackOp, CallbackRegister, CallbackType, PhysdevOp, PhysdevSetIopl,
};
use guest_abi::xen::{VmAssistCmd, VmAssistType};

/// Whether a guest may name `address` as code to run: canonical and outside the hypervisor.
fn guest_code_address(address: u64) -> bool {
    is_canonical(address) && check_guest_range(address, 1).is_ok()
}

/// Installs entries until one with address 0; a null list clears the table (Xen's rules).
pub fn set_trap_table<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, list: u64) -> HcResult {
    if list == 0 {
        ctx.vcpu.traps = [TrapInfo::default(); 256];
        return Ok(0);
    }
    for i in 0..256u64 {
        let entry: TrapInfo = ctx.mem.read_obj(list.wrapping_add(i * 16))?;
        if entry.address == 0 {
            return Ok(0);
        }
        if !guest_code_address(entry.address) {
            return Err(XenError::Inval);
        }
        ctx.vcpu.traps[usize::from(entry.vector)] = entry;
    }
    Ok(0)
}

fn register(vcpu: &mut PvVcpu, reg: &CallbackRegister) -> HcResult {
    if !guest_code_address(reg.address) && reg.address != 0 {
        return Err(XenError::Inval);
    }
    let cb = Callback {
        address: reg.address,
        mask_events: reg.flags & CALLBACKF_MASK_EVENTS != 0,
    };
    let slot = match CallbackType::from_raw(reg.type_).ok_or(XenError::NoSys)? {
        CallbackType::Event => &mut vcpu.event_callback,
        CallbackType::Failsafe => &mut vcpu.failsafe_callback,
        CallbackType::Syscall => &mut vcpu.syscall_callback,
        CallbackType::Syscall32 => &mut vcpu.syscall32_callback,
        CallbackType::Sysenter => &mut vcpu.sysenter_callback,
        CallbackType::Nmi => &mut vcpu.nmi_callback,
        CallbackType::SysenterDeprecated => return Err(XenError::Inval),
    };
    *slot = cb;
    Ok(0)
}

/// The legacy three-address form of `callback_op(register)`.
pub fn set_callbacks<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    event: u64,
    failsafe: u64,
    syscall: u64,
) -> HcResult {
    for (t, address) in [
        (CallbackType::Event, event),
        (CallbackType::Failsafe, failsafe),
        (CallbackType::Syscall, syscall),
    ] {
        let reg = CallbackRegister {
            type_: t.raw(),
            flags: 0,
            _hole: 0,
            address,
        };
        register(ctx.vcpu, &reg)?;
    }
    Ok(0)
}

pub fn callback_op<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    cmd: u64,
    arg: u64,
) -> HcResult {
    let cmd = u32::try_from(cmd).map_err(|_| XenError::NoSys)?;
    match CallbackOp::try_from(cmd)? {
        CallbackOp::Register => {
            let reg: CallbackRegister = ctx.mem.read_obj(arg)?;
            register(ctx.vcpu, &reg)
        }
        CallbackOp::Unregister => {
            let t: u16 = ctx.mem.read_obj(arg)?;
            // Xen refuses to unregister the callbacks a PV guest cannot live without.
            match CallbackType::from_raw(t).ok_or(XenError::Inval)? {
                CallbackType::Event | CallbackType::Failsafe => Err(XenError::Inval),
                other => {
                    let reg = CallbackRegister {
                        type_: other.raw(),
                        flags: 0,
                        _hole: 0,
                        address: 0,
                    };
                    register(ctx.vcpu, &reg)
                }
            }
        }
    }
}

pub fn stack_switch<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    ss: u64,
    sp: u64,
) -> HcResult {
    // Xen forces the selector's RPL to the guest kernel's ring.
    ctx.vcpu.kernel_ss = (ss & 0xffff) | 3;
    ctx.vcpu.kernel_sp = sp;
    Ok(0)
}

pub fn fpu_taskswitch<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, set: u64) -> HcResult {
    ctx.vcpu.fpu_ts = set != 0;
    ctx.host.set_fpu_trap(ctx.vcpu.fpu_ts);
    Ok(0)
}

pub fn set_segment_base<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    which: u64,
    base: u64,
) -> HcResult {
    let which = u32::try_from(which).map_err(|_| XenError::Inval)?;
    if which != SEGBASE_GS_USER_SEL && !is_canonical(base) {
        return Err(XenError::Inval);
    }
    match which {
        SEGBASE_FS => {
            ctx.vcpu.fs_base = base;
            ctx.host.set_fs_base(base);
        }
        SEGBASE_GS_USER => ctx.vcpu.gs_base_user = base,
        SEGBASE_GS_KERNEL => ctx.vcpu.gs_base_kernel = base,
        SEGBASE_GS_USER_SEL => {
            // Xen loads the selector into the user's GS and keeps the base it yields: the
            // descriptor's base, or 0 for a null selector or one that cannot be loaded (Xen
            // loads the null selector instead), and the call succeeds either way.
            let sel = base as u16;
            ctx.vcpu.gs_base_user = if sel & !3 == 0 {
                0
            } else {
                ctx.host
                    .read_descriptor(ctx.vcpu, sel | 3)
                    .and_then(crate::x86::descriptors::loadable_data_base)
                    .unwrap_or(0)
            };
        }
        _ => return Err(XenError::Inval),
    }
    // The live GS base may have changed.
    ctx.host.sync_mode(ctx.vcpu);
    Ok(0)
}

const DR7_RESERVED_ONE: u64 = 1 << 10;
const DR7_GD: u64 = 1 << 13;

pub fn set_debugreg<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    reg: u64,
    value: u64,
) -> HcResult {
    match reg {
        0..=3 => {
            // A breakpoint address must be one the guest could touch itself.
            if check_guest_range(value, 8).is_err() {
                return Err(XenError::Perm);
            }
        }
        6 => {}
        7 => {
            // Reserved bits of the upper half, general detect, and I/O breakpoints (R/W = 10b)
            // are refused.
            if value >> 32 != 0 {
                return Err(XenError::Inval);
            }
            if value & DR7_GD != 0 {
                return Err(XenError::Perm);
            }
            for i in 0..4 {
                if (value >> (16 + 4 * i)) & 3 == 2 {
                    return Err(XenError::Perm);
                }
            }
        }
        _ => return Err(XenError::NoDev),
    }
    let value = if reg == 7 {
        value | DR7_RESERVED_ONE
    } else {
        value
    };
    ctx.vcpu.debugreg[reg as usize] = value;
    Ok(0)
}

pub fn get_debugreg<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, reg: u64) -> HcResult {
    match reg {
        0..=3 | 6 | 7 => Ok(ctx.vcpu.debugreg[reg as usize]),
        _ => Err(XenError::NoDev),
    }
}

pub fn physdev_op<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    cmd: u64,
    arg: u64,
) -> HcResult {
    let cmd = u32::try_from(cmd).map_err(|_| XenError::NoSys)?;
    match PhysdevOp::try_from(cmd)? {
        PhysdevOp::SetIopl => {
            let req: PhysdevSetIopl = ctx.mem.read_obj(arg)?;
            if req.iopl > 3 {
                return Err(XenError::Inval);
            }
            ctx.vcpu.iopl = req.iopl as u8;
            Ok(0)
        }
        _ => Err(XenError::NoSys),
    }
}

/// The assists a 64-bit PV guest may enable (Xen's `VM_ASSIST_VALID` for PV).
pub fn valid_vm_assists() -> u64 {
    [
        VmAssistType::FourGbSegments,
        VmAssistType::FourGbSegmentsNotify,
        VmAssistType::WritablePagetables,
        VmAssistType::PaeExtendedCr3,
        VmAssistType::ArchitecturalIopl,
        VmAssistType::RunstateUpdateFlag,
        VmAssistType::M2pStrict,
    ]
    .iter()
    .fold(0, |m, t| m | (1u64 << t.raw()))
}

pub fn vm_assist<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    cmd: u64,
    kind: u64,
) -> HcResult {
    // Xen checks the type first (-EINVAL), then the command (-ENOSYS).
    if kind >= 64 || valid_vm_assists() & (1 << kind) == 0 {
        return Err(XenError::Inval);
    }
    let cmd = u32::try_from(cmd).map_err(|_| XenError::NoSys)?;
    let cmd = VmAssistCmd::try_from(cmd)?;
    match cmd {
        VmAssistCmd::Enable => ctx.domain.vm_assist |= 1 << kind,
        VmAssistCmd::Disable => ctx.domain.vm_assist &= !(1 << kind),
    }
    Ok(0)
}

/// The `iret` hypercall. A frame the guest cannot return through crashes the domain.
pub fn iret<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>) -> HcResult {
    use core::sync::atomic::Ordering;
    let info = ctx.vcpu_info();
    let mut mask = info.evtchn_upcall_mask.load(Ordering::SeqCst);
    let host = &mut *ctx.host;
    match bounce::iret(ctx.regs, ctx.vcpu, &mut mask, ctx.mem, |v| {
        host.sync_mode(v)
    }) {
        Ok(rax) => {
            info.evtchn_upcall_mask.store(mask, Ordering::SeqCst);
            ctx.regs.rax = rax;
            ctx.regs_loaded = true;
            Ok(rax)
        }
        Err(_) => {
            ctx.action = Action::Crash("bad iret frame");
            Err(XenError::Fault)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fixture, call};
    use super::*;
    use guest_abi::Hypercall;
    use zerocopy::IntoBytes;

    fn trap(vector: u8, flags: u8, address: u64) -> TrapInfo {
        TrapInfo {
            vector,
            flags,
            cs: 0xe033,
            _hole: 0,
            address,
        }
    }

    #[test]
    fn trap_table_installs_until_zero_address() {
        let mut f = Fixture::new();
        let table = [
            trap(3, 3, 0xffff_ffff_8000_0300),
            trap(14, 4, 0xffff_ffff_8000_1400),
            trap(6, 0, 0),
        ];
        f.mem.write_bytes(0x1000, table.as_bytes());
        assert_eq!(
            call(&mut f, Hypercall::SetTrapTable, [0x1000, 0, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(
            f.vcpu.trap_handler(3).map(|t| t.address),
            Some(0xffff_ffff_8000_0300)
        );
        assert_eq!(f.vcpu.trap_handler(14).map(|t| t.flags), Some(4));
        assert!(f.vcpu.trap_handler(6).is_none());
        assert_eq!(
            call(&mut f, Hypercall::SetTrapTable, [0, 0, 0, 0, 0]),
            Ok(0)
        );
        assert!(
            f.vcpu.trap_handler(3).is_none(),
            "a null list clears the table"
        );
    }

    #[test]
    fn trap_table_refuses_hypervisor_handlers_and_bad_pointers() {
        let mut f = Fixture::new();
        let hv = crate::mm::layout::HYPERVISOR_VIRT_START + 0x1000;
        f.mem
            .write_bytes(0x1000, [trap(13, 0, hv), trap(0, 0, 0)].as_bytes());
        assert_eq!(
            call(&mut f, Hypercall::SetTrapTable, [0x1000, 0, 0, 0, 0]),
            Err(XenError::Inval)
        );
        assert_eq!(
            call(&mut f, Hypercall::SetTrapTable, [hv, 0, 0, 0, 0]),
            Err(XenError::Fault)
        );
    }

    #[test]
    fn callbacks_register_and_unregister() {
        let mut f = Fixture::new();
        let reg = CallbackRegister {
            type_: 0,
            flags: CALLBACKF_MASK_EVENTS,
            _hole: 0,
            address: 0xffff_ffff_8000_2000,
        };
        f.mem.write_bytes(0x1000, reg.as_bytes());
        assert_eq!(
            call(&mut f, Hypercall::CallbackOp, [0, 0x1000, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(
            f.vcpu.event_callback,
            Callback {
                address: 0xffff_ffff_8000_2000,
                mask_events: true
            }
        );
        let bad = CallbackRegister { type_: 6, ..reg };
        f.mem.write_bytes(0x1000, bad.as_bytes());
        assert_eq!(
            call(&mut f, Hypercall::CallbackOp, [0, 0x1000, 0, 0, 0]),
            Err(XenError::NoSys),
            "Xen: unknown callback type"
        );
        f.mem.write_bytes(0x1000, &0u16.to_le_bytes());
        assert_eq!(
            call(&mut f, Hypercall::CallbackOp, [1, 0x1000, 0, 0, 0]),
            Err(XenError::Inval)
        );
        f.mem.write_bytes(0x1000, &2u16.to_le_bytes());
        assert_eq!(
            call(&mut f, Hypercall::CallbackOp, [1, 0x1000, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(
            call(&mut f, Hypercall::SetCallbacks, [0x10, 0x20, 0x30, 0, 0]),
            Ok(0)
        );
        assert_eq!(f.vcpu.syscall_callback.address, 0x30);
        assert!(!f.vcpu.event_callback.mask_events);
    }

    #[test]
    fn segment_bases_debugregs_iopl_assists() {
        let mut f = Fixture::new();
        assert_eq!(
            call(&mut f, Hypercall::SetSegmentBase, [0, 0x7000_0000, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!((f.vcpu.fs_base, f.host.fs_base), (0x7000_0000, 0x7000_0000));
        assert_eq!(
            call(
                &mut f,
                Hypercall::SetSegmentBase,
                [2, 0xffff_8880_0000_0000, 0, 0, 0]
            ),
            Ok(0)
        );
        assert_eq!(f.vcpu.gs_base_kernel, 0xffff_8880_0000_0000);
        assert_eq!(
            call(
                &mut f,
                Hypercall::SetSegmentBase,
                [1, 0x8000_0000_0000_0000, 0, 0, 0]
            ),
            Err(XenError::Inval)
        );
        assert_eq!(
            call(&mut f, Hypercall::SetSegmentBase, [9, 0, 0, 0, 0]),
            Err(XenError::Inval)
        );
        // SEGBASE_GS_USER_SEL: the base of the selector's descriptor; 0 for the null selector
        // or one that does not load, and the call succeeds either way (Xen loads null then).
        let user_sel = |f: &mut Fixture, sel: u64| {
            f.vcpu.gs_base_user = 0xdead;
            let r = call(f, Hypercall::SetSegmentBase, [3, sel, 0, 0, 0]);
            (r, f.vcpu.gs_base_user)
        };
        assert_eq!(user_sel(&mut f, 0x2b), (Ok(0), 0x1234_5000));
        assert_eq!(
            user_sel(&mut f, 0x28),
            (Ok(0), 0x1234_5000),
            "RPL raised to 3"
        );
        assert_eq!(user_sel(&mut f, 0), (Ok(0), 0));
        assert_eq!(user_sel(&mut f, 0x33), (Ok(0), 0), "no such descriptor");

        assert_eq!(
            call(&mut f, Hypercall::SetDebugreg, [0, 0x40_0000, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(
            call(&mut f, Hypercall::GetDebugreg, [0, 0, 0, 0, 0]),
            Ok(0x40_0000)
        );
        let hv = crate::mm::layout::HYPERVISOR_VIRT_START;
        assert_eq!(
            call(&mut f, Hypercall::SetDebugreg, [1, hv, 0, 0, 0]),
            Err(XenError::Perm)
        );
        assert_eq!(
            call(&mut f, Hypercall::SetDebugreg, [7, 2 << 16, 0, 0, 0]),
            Err(XenError::Perm)
        );
        assert_eq!(
            call(&mut f, Hypercall::SetDebugreg, [8, 0, 0, 0, 0]),
            Err(XenError::NoDev)
        );
        assert_eq!(
            call(&mut f, Hypercall::GetDebugreg, [5, 0, 0, 0, 0]),
            Err(XenError::NoDev)
        );

        f.mem.write_bytes(0x1000, &1u32.to_le_bytes());
        assert_eq!(
            call(&mut f, Hypercall::PhysdevOp, [6, 0x1000, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(f.vcpu.iopl, 1);
        f.mem.write_bytes(0x1000, &4u32.to_le_bytes());
        assert_eq!(
            call(&mut f, Hypercall::PhysdevOp, [6, 0x1000, 0, 0, 0]),
            Err(XenError::Inval)
        );

        assert_eq!(call(&mut f, Hypercall::VmAssist, [0, 2, 0, 0, 0]), Ok(0));
        assert_eq!(f.domain.vm_assist, 1 << 2);
        assert_eq!(
            call(&mut f, Hypercall::VmAssist, [0, 9, 0, 0, 0]),
            Err(XenError::Inval)
        );
        assert_eq!(
            call(&mut f, Hypercall::VmAssist, [5, 2, 0, 0, 0]),
            Err(XenError::NoSys)
        );
        assert_eq!(
            call(&mut f, Hypercall::StackSwitch, [0xe02b, 0x5000, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!((f.vcpu.kernel_ss, f.vcpu.kernel_sp), (0xe02b, 0x5000));
        assert_eq!(
            call(&mut f, Hypercall::FpuTaskswitch, [1, 0, 0, 0, 0]),
            Ok(0)
        );
        assert!(f.vcpu.fpu_ts && f.host.fpu_trap);
    }

    #[test]
    fn bad_iret_crashes_the_domain() {
        let mut f = Fixture::new();
        f.regs.rsp = 0xdead_0000;
        let _ = call(&mut f, Hypercall::Iret, [0; 5]);
        assert_eq!(f.action, Action::Crash("bad iret frame"));
    }
}
