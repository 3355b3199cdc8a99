//! Delivering exceptions, events and user `syscall`s to a 64-bit PV guest kernel ("bounce"),
//! and the `iret` hypercall that returns from them. Both follow Xen's x86-64 entry code:
//!
//! Bounce: if the guest was in user mode, switch to kernel mode and use the stack from
//! `stack_switch`; otherwise keep the current stack and show the interrupted CS with RPL 0
//! (that is how the guest kernel tells kernel from user frames). Align the stack down to 16
//! and push, from high to low address: SS, RSP, RFLAGS (IF = !saved upcall mask, IOPL clear),
//! CS (bits 32–39: the saved upcall mask), RIP, [error code], R11, RCX. Enter the handler at
//! the flat ring-3 kernel selectors with TF/NT/RF/AC/VM cleared; mask events if asked.
//!
//! `iret`: pop `struct iret_context` (rax, r11, rcx, flags, rip, cs, rflags, rsp, ss) from the
//! guest stack; switch to user mode if the target CS has RPL 3; force RPL 3 on CS and SS;
//! restore the upcall mask from RFLAGS.IF; keep RCX/R11 unless `VGCF_in_syscall`.

use super::guest_mem::{GuestFault, GuestMemory, check_guest_range, is_canonical};
use super::vcpu::PvVcpu;
use crate::x86::descriptors::{FLAT_RING3_CS64, FLAT_RING3_DS};
use crate::x86::regs::Regs;
use guest_abi::arch::{IretContext, VgcfFlags};

const RFLAGS_TF: u64 = 1 << 8;
const RFLAGS_IF: u64 = 1 << 9;
const RFLAGS_IOPL: u64 = 3 << 12;
const RFLAGS_NT: u64 = 1 << 14;
const RFLAGS_RF: u64 = 1 << 16;
const RFLAGS_VM: u64 = 1 << 17;
const RFLAGS_AC: u64 = 1 << 18;

/// What to deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounce {
    /// Guest handler address.
    pub target: u64,
    /// Set the upcall mask on entry.
    pub mask_events: bool,
    /// The error code to push, for exceptions that have one.
    pub error_code: Option<u64>,
}

/// Why a bounce or `iret` could not be done; the domain is then crashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BounceError {
    /// The handler address is zero or non-canonical.
    BadHandler(u64),
    /// The stack to push on lies in the hypervisor range or is not canonical.
    BadStack(u64),
    /// Writing or reading the guest stack faulted.
    StackFault(GuestFault),
    /// `iret` to user mode without user page tables.
    NoUserTable,
    /// `iret` to a non-canonical RIP or RSP.
    BadReturnAddress(u64),
    /// `iret` to a code or stack selector the guest has no valid descriptor for.
    BadSelector(u64),
}

impl From<GuestFault> for BounceError {
    fn from(f: GuestFault) -> Self {
        Self::StackFault(f)
    }
}

/// Pushes a bounce frame for `bounce` and points `regs` at the handler.
///
/// `upcall_mask` is the vCPU's `evtchn_upcall_mask`. When the guest was in user mode, the vCPU
/// is switched to kernel mode and `sync` is called so the caller can load the kernel page
/// tables before the frame is written through `mem`.
pub fn deliver(
    regs: &mut Regs,
    vcpu: &mut PvVcpu,
    upcall_mask: &mut u8,
    bounce: &Bounce,
    mem: &mut impl GuestMemory,
    sync: impl FnOnce(&PvVcpu),
) -> Result<(), BounceError> {
    if bounce.target == 0 || !is_canonical(bounce.target) {
        return Err(BounceError::BadHandler(bounce.target));
    }
    let mut interrupted_cs = regs.cs;
    let stack = if vcpu.kernel_mode {
        interrupted_cs &= !3;
        regs.rsp
    } else {
        vcpu.kernel_sp
    };
    let top = stack & !0xf;
    let words = if bounce.error_code.is_some() { 8 } else { 7 };
    let frame_rsp = top.wrapping_sub(words * 8);
    if check_guest_range(frame_rsp, (words * 8) as usize).is_err() {
        return Err(BounceError::BadStack(stack));
    }

    let saved_mask = *upcall_mask;
    let mut rflags = regs.rflags & !(RFLAGS_IF | RFLAGS_IOPL);
    if saved_mask == 0 {
        rflags |= RFLAGS_IF;
    }
    let mut frame = [0u64; 8];
    let mut i = 0;
    let mut push_low = |v: u64| {
        frame[i] = v;
        i += 1;
    };
    push_low(regs.rcx);
    push_low(regs.r11);
    if let Some(code) = bounce.error_code {
        push_low(code);
    }
    push_low(regs.rip);
    push_low((interrupted_cs & 0xffff) | (u64::from(saved_mask) << 32));
    push_low(rflags);
    push_low(regs.rsp);
    push_low(regs.ss);
    let bytes: &[u64] = &frame[..words as usize];

    if !vcpu.kernel_mode {
        vcpu.toggle_mode();
        sync(vcpu);
    }
    mem.write(frame_rsp, zerocopy::IntoBytes::as_bytes(bytes))?;

    if bounce.mask_events {
        *upcall_mask = 1;
    }
    regs.rflags &= !(RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | RFLAGS_AC | RFLAGS_VM);
    regs.cs = u64::from(FLAT_RING3_CS64);
    regs.ss = u64::from(FLAT_RING3_DS);
    regs.rsp = frame_rsp;
    regs.rip = bounce.target;
    Ok(())
}

/// The `iret` hypercall: returns the guest's `rax` from the frame. `sync` is called after a
/// switch to user mode so the caller can load the user page tables.
pub fn iret(
    regs: &mut Regs,
    vcpu: &mut PvVcpu,
    upcall_mask: &mut u8,
    mem: &mut impl GuestMemory,
    sync: impl FnOnce(&PvVcpu),
) -> Result<u64, BounceError> {
    let ctx: IretContext = mem.read_obj(regs.rsp)?;
    if !is_canonical(ctx.rip) {
        return Err(BounceError::BadReturnAddress(ctx.rip));
    }
    if !is_canonical(ctx.rsp) {
        return Err(BounceError::BadReturnAddress(ctx.rsp));
    }
    if !valid_code_selector(ctx.cs) && !guest_gdt_selector(ctx.cs, vcpu) {
        return Err(BounceError::BadSelector(ctx.cs));
    }
    if !valid_stack_selector(ctx.ss) && !guest_gdt_selector(ctx.ss, vcpu) {
        return Err(BounceError::BadSelector(ctx.ss));
    }
    if ctx.cs & 3 == 3 && vcpu.kernel_mode {
        if vcpu.user_table.is_none() {
            return Err(BounceError::NoUserTable);
        }
        vcpu.toggle_mode();
        sync(vcpu);
    }
    regs.rip = ctx.rip;
    regs.cs = (ctx.cs & 0xffff) | 3;
    regs.rflags = (ctx.rflags & !(RFLAGS_IOPL | RFLAGS_VM | RFLAGS_NT)) | RFLAGS_IF;
    regs.rsp = ctx.rsp;
    regs.ss = (ctx.ss & 0xffff) | 3;
    if ctx.flags & VgcfFlags::IN_SYSCALL.bits() == 0 {
        regs.r11 = ctx.r11;
        regs.rcx = ctx.rcx;
    } else {
        // A return from a system call resumes as `sysret` would leave it.
        regs.rcx = regs.rip;
        regs.r11 = regs.rflags;
    }
    *upcall_mask = u8::from(ctx.rflags & RFLAGS_IF == 0);
    Ok(ctx.rax)
}

/// Code selectors a guest may return to: the flat 64- and 32-bit ring-3 segments. (Guest GDT
/// and LDT selectors join them once the guest can install descriptors.)
fn valid_code_selector(cs: u64) -> bool {
    let sel = (cs & 0xffff) | 3;
    sel == u64::from(FLAT_RING3_CS64) || sel == u64::from(crate::x86::descriptors::FLAT_RING3_CS32)
}

/// A selector of the guest's own GDT (`set_gdt`), whose descriptors were validated when
/// installed (no system descriptors, DPL 3). If such a descriptor does not suit the return
/// (not present, data as code), the CPU refuses the `iretq` and the guest's domain crashes.
fn guest_gdt_selector(sel: u64, vcpu: &PvVcpu) -> bool {
    let sel = sel & 0xffff;
    let index = sel >> 3;
    sel & 4 == 0 && index != 0 && index < u64::from(vcpu.gdt_ents)
}

/// Stack selectors a guest may return to: the flat ring-3 data segment.
fn valid_stack_selector(ss: u64) -> bool {
    (ss & 0xffff) | 3 == u64::from(FLAT_RING3_DS)
}

#[cfg(test)]
mod tests {
    use super::super::guest_mem::fake::FakeGuest;
    use super::*;
    use crate::mm::Mfn;
    use std::vec::Vec;

    const KSTACK: u64 = 0xffff_ffff_8010_0000;
    const USTACK: u64 = 0x7fff_0000;

    fn read_words(mem: &mut FakeGuest, at: u64, n: usize) -> Vec<u64> {
        (0..n)
            .map(|i| mem.read_obj::<u64>(at + 8 * i as u64).unwrap())
            .collect()
    }

    fn guest() -> (FakeGuest, PvVcpu) {
        let mut mem = FakeGuest::default();
        mem.map(KSTACK - 0x1000, 0x1000);
        mem.map(USTACK - 0x1000, 0x1000);
        let vcpu = PvVcpu {
            kernel_sp: KSTACK,
            kernel_table: Some(Mfn(10)),
            user_table: Some(Mfn(20)),
            ..PvVcpu::default()
        };
        (mem, vcpu)
    }

    fn kernel_regs() -> Regs {
        Regs {
            rip: 0xffff_ffff_8000_1234,
            cs: u64::from(FLAT_RING3_CS64),
            rflags: 0x246 | RFLAGS_TF,
            rsp: KSTACK - 0x108,
            ss: u64::from(FLAT_RING3_DS),
            rcx: 0xc1,
            r11: 0x11,
            ..Regs::default()
        }
    }

    #[test]
    fn bounce_from_kernel_mode_pushes_xen_frame_on_current_stack() {
        let (mut mem, mut vcpu) = guest();
        let mut regs = kernel_regs();
        let mut mask = 0u8;
        let b = Bounce {
            target: 0xffff_ffff_8000_9000,
            mask_events: true,
            error_code: Some(6),
        };
        deliver(&mut regs, &mut vcpu, &mut mask, &b, &mut mem, |_| {
            panic!("no mode switch")
        })
        .unwrap();
        let top = (KSTACK - 0x108) & !0xf;
        assert_eq!(regs.rsp, top - 64);
        let w = read_words(&mut mem, regs.rsp, 8);
        assert_eq!(w[0], 0xc1, "rcx");
        assert_eq!(w[1], 0x11, "r11");
        assert_eq!(w[2], 6, "error code");
        assert_eq!(w[3], 0xffff_ffff_8000_1234, "rip");
        assert_eq!(
            w[4],
            u64::from(FLAT_RING3_CS64) & !3,
            "kernel CS shown with RPL 0, mask 0"
        );
        assert_eq!(w[5] & RFLAGS_IF, RFLAGS_IF, "IF = !saved mask");
        assert_eq!(w[6], KSTACK - 0x108, "interrupted rsp");
        assert_eq!(w[7], u64::from(FLAT_RING3_DS));
        assert_eq!(mask, 1, "handler asked for events masked");
        assert_eq!(regs.rip, b.target);
        assert_eq!(regs.rflags & RFLAGS_TF, 0);
        assert!(vcpu.kernel_mode);
    }

    #[test]
    fn bounce_from_user_mode_switches_to_kernel_stack() {
        let (mut mem, mut vcpu) = guest();
        vcpu.kernel_mode = false;
        let mut regs = Regs {
            rip: 0x40_1000,
            cs: 0x33,
            rflags: 0x202,
            rsp: USTACK - 8,
            ss: 0x2b,
            ..Regs::default()
        };
        let mut mask = 1u8;
        let mut synced = None;
        let b = Bounce {
            target: 0xffff_ffff_8000_a000,
            mask_events: false,
            error_code: None,
        };
        deliver(&mut regs, &mut vcpu, &mut mask, &b, &mut mem, |v| {
            synced = v.active_table()
        })
        .unwrap();
        assert_eq!(
            synced,
            Some(Mfn(10)),
            "kernel tables loaded before the frame is written"
        );
        assert!(vcpu.kernel_mode);
        assert_eq!(regs.rsp, KSTACK - 56);
        let w = read_words(&mut mem, regs.rsp, 7);
        assert_eq!(w[2], 0x40_1000);
        assert_eq!(
            w[3],
            0x33 | (1 << 32),
            "user CS keeps RPL 3; saved mask in bits 32-39"
        );
        assert_eq!(w[4] & RFLAGS_IF, 0, "mask was set");
        assert_eq!(w[5], USTACK - 8);
        assert_eq!(w[6], 0x2b);
        assert_eq!(mask, 1);
    }

    #[test]
    fn bounce_refuses_bad_handlers_and_stacks() {
        let (mut mem, mut vcpu) = guest();
        let mut mask = 0;
        let b = Bounce {
            target: 0,
            mask_events: false,
            error_code: None,
        };
        let mut regs = kernel_regs();
        assert_eq!(
            deliver(&mut regs, &mut vcpu, &mut mask, &b, &mut mem, |_| {}),
            Err(BounceError::BadHandler(0))
        );
        let b = Bounce {
            target: 0xffff_ffff_8000_0000,
            mask_events: false,
            error_code: None,
        };
        regs.rsp = crate::mm::layout::HYPERVISOR_VIRT_START + 0x100;
        assert!(matches!(
            deliver(&mut regs, &mut vcpu, &mut mask, &b, &mut mem, |_| {}),
            Err(BounceError::BadStack(_))
        ));
        regs.rsp = 0x1000; // unmapped
        assert!(matches!(
            deliver(&mut regs, &mut vcpu, &mut mask, &b, &mut mem, |_| {}),
            Err(BounceError::StackFault(_))
        ));
    }

    #[test]
    fn iret_round_trips_a_bounce() {
        let (mut mem, mut vcpu) = guest();
        vcpu.kernel_mode = false;
        let user = Regs {
            rip: 0x40_2000,
            cs: 0xe033,
            rflags: 0x202,
            rsp: USTACK - 16,
            ss: 0xe02b,
            rcx: 5,
            r11: 7,
            rax: 99,
            ..Regs::default()
        };
        let mut regs = user;
        let mut mask = 0u8;
        let b = Bounce {
            target: 0xffff_ffff_8000_a000,
            mask_events: true,
            error_code: None,
        };
        deliver(&mut regs, &mut vcpu, &mut mask, &b, &mut mem, |_| {}).unwrap();
        // The guest kernel's handler pushes rax, r11, rcx, flags below its frame and irets.
        let frame_rsp = regs.rsp;
        let w = read_words(&mut mem, frame_rsp, 7);
        let ctx = IretContext {
            rax: 42,
            r11: w[1],
            rcx: w[0],
            flags: 0,
            rip: w[2],
            cs: w[3] & 0xffff,
            rflags: w[4],
            rsp: w[5],
            ss: w[6],
        };
        let ctx_rsp = frame_rsp - 32 + 16; // anywhere mapped works
        mem.write_obj(ctx_rsp, &ctx).unwrap();
        regs.rsp = ctx_rsp;
        let mut synced = None;
        let rax = iret(&mut regs, &mut vcpu, &mut mask, &mut mem, |v| {
            synced = v.active_table()
        })
        .unwrap();
        assert_eq!(rax, 42);
        assert_eq!(synced, Some(Mfn(20)), "back in user mode with user tables");
        assert!(!vcpu.kernel_mode);
        assert_eq!(
            (regs.rip, regs.cs, regs.rsp, regs.ss, regs.rcx, regs.r11),
            (user.rip, user.cs, user.rsp, user.ss, 5, 7)
        );
        assert_eq!(mask, 0, "IF was set in the frame");
    }

    #[test]
    fn iret_forces_ring3_and_refuses_bad_frames() {
        let (mut mem, mut vcpu) = guest();
        let mut regs = kernel_regs();
        let mut mask = 0u8;
        let ctx = IretContext {
            rax: 1,
            r11: 2,
            rcx: 3,
            flags: VgcfFlags::IN_SYSCALL.bits(),
            rip: 0xffff_ffff_8000_0010,
            cs: 0xe030,
            rflags: 0x3000,
            rsp: KSTACK - 8,
            ss: 0xe028,
        };
        mem.write_obj(regs.rsp, &ctx).unwrap();
        iret(&mut regs, &mut vcpu, &mut mask, &mut mem, |_| {}).unwrap();
        assert_eq!(regs.cs, 0xe033);
        assert_eq!(regs.ss, 0xe02b);
        assert_eq!(
            regs.rflags & RFLAGS_IOPL,
            0,
            "IOPL never reaches the hardware"
        );
        assert_ne!(
            regs.rflags & RFLAGS_IF,
            0,
            "guest always runs with interrupts on"
        );
        assert_eq!(mask, 1, "IF clear in frame: events masked");
        assert_eq!(regs.rcx, regs.rip, "in_syscall: rcx as sysret leaves it");
        assert_eq!(regs.r11, regs.rflags, "in_syscall: r11 as sysret leaves it");
        assert!(vcpu.kernel_mode);

        let bad = IretContext {
            rip: 0x8000_0000_0000_0000,
            ..ctx
        };
        let mut regs = kernel_regs();
        mem.write_obj(regs.rsp, &bad).unwrap();
        assert!(matches!(
            iret(&mut regs, &mut vcpu, &mut mask, &mut mem, |_| {}),
            Err(BounceError::BadReturnAddress(_))
        ));

        for (cs, ss) in [
            (0x3, 0xe02b),
            (0xe008, 0xe02b),
            (0xe033, 0x3),
            (0xe033, 0xe010),
        ] {
            let bad = IretContext { cs, ss, ..ctx };
            let mut regs = kernel_regs();
            mem.write_obj(regs.rsp, &bad).unwrap();
            assert!(
                matches!(
                    iret(&mut regs, &mut vcpu, &mut mask, &mut mem, |_| {}),
                    Err(BounceError::BadSelector(_))
                ),
                "cs {cs:#x} ss {ss:#x}"
            );
        }

        let to_user = IretContext { cs: 0xe033, ..ctx };
        vcpu.user_table = None;
        let mut regs = kernel_regs();
        mem.write_obj(regs.rsp, &to_user).unwrap();
        assert_eq!(
            iret(&mut regs, &mut vcpu, &mut mask, &mut mem, |_| {}),
            Err(BounceError::NoUserTable)
        );
        let mut regs = Regs {
            rsp: 0x10,
            ..kernel_regs()
        };
        assert!(matches!(
            iret(&mut regs, &mut vcpu, &mut mask, &mut mem, |_| {}),
            Err(BounceError::StackFault(_))
        ));
    }
}
