//! `user.*`: a user page table (`MMUEXT_NEW_USER_BASEPTR`, the kernel's own L4), user
//! mode entered through the `iret` hypercall with CS RPL 3, a `syscall` from user mode to
//! the syscall callback, an `iret` back to user mode, a trap from user mode onto the
//! kernel stack, and the way back to the kernel.

use guest_abi::arch::{
    FLAT_KERNEL_SS, FLAT_USER_CS, FLAT_USER_SS, SEGBASE_GS_KERNEL, SEGBASE_GS_USER,
};
use guest_abi::callback::{CALLBACKF_MASK_EVENTS, CallbackRegister, CallbackType};
use guest_abi::runtime::user::USER_RFLAGS;
use guest_abi::runtime::{AsmCell, hypercall};
use guest_abi::xen::{MmuextCmd, MmuextOp, StartInfo};
use guest_abi::{DomId, XenError, println};

use crate::check::{Report, Why, eq};
use crate::domain;
use crate::exceptions::IF;
use crate::hypercalls::{GS_KERNEL_DATA, GS_USER_DATA, kernel_stack_top, read_gs, set_base};
use crate::traps::{Bounce, Entry, SYSCALLS, SyscallFrame, TRAP, TRAP_RESUME, USER_GS_SEEN};

/// The user-mode stack.
#[repr(C, align(16))]
struct UserStack([u8; 8192]);

static USER_STACK: AsmCell<UserStack> = AsmCell::new(UserStack([0; 8192]));

fn user_stack_top() -> u64 {
    USER_STACK.addr() + size_of::<UserStack>() as u64
}

/// The checks that need user mode, for when it cannot be entered.
const USER_CHECKS: [&str; 7] = [
    "user.iret to user mode (CS RPL 3) and the user GS base",
    "user.syscall from user mode: callback frame",
    "user.syscall callback runs with the kernel GS base",
    "user.iret (VGCF_in_syscall) back to user mode, #BP from user mode",
    "user.iret (VGCF_in_syscall) returns like sysret: rcx = rip, r11 = rflags",
    "user.second syscall, back in the kernel",
    "user.NEW_USER_BASEPTR 0",
];

fn new_user_baseptr(mfn: u64) -> Result<u64, XenError> {
    let op = MmuextOp {
        cmd: MmuextCmd::NewUserBaseptr as u32,
        _hole: 0,
        arg1: mfn,
        arg2: 0,
    };
    let mut done = 0;
    // SAFETY: the user page table is the kernel's own L4 (or none); the kernel's mappings
    // do not change.
    unsafe { hypercall::mmuext_op(&[op], &mut done, DomId::SELF) }
}

/// The frame of a bounce from user mode onto the kernel stack: CS and SS are the user's
/// (RPL 3), `rsp` is the user stack, and the frame sits below the 16-byte aligned
/// `kernel_sp`.
fn user_frame(f: &Bounce) -> Result<(), Why> {
    eq("cs", f.cs & 0xffff, u64::from(FLAT_USER_CS))?;
    eq("saved upcall mask (cs bits 32-39)", (f.cs >> 32) & 0xff, 1)?;
    eq("rflags.IF", f.rflags & IF, 0)?;
    eq("rsp", f.rsp, user_stack_top())?;
    eq("ss", f.ss, u64::from(FLAT_USER_SS))?;
    eq(
        "handler rsp (on kernel_sp)",
        f.handler_rsp,
        (kernel_stack_top() & !15) - 7 * 8,
    )
}

fn syscall_frame(s: &SyscallFrame, rax: u64, rip: u64) -> Result<(), Why> {
    eq("callbacks", s.count, 1)?;
    eq("rax", s.rax, rax)?;
    eq("rip", s.frame.rip, rip)?;
    eq("rcx (return rip)", s.frame.rcx, rip)?;
    // What `syscall` put in r11: the user rflags, with the IF the hypervisor forces on.
    eq("r11 (user rflags)", s.frame.r11, USER_RFLAGS | IF)?;
    user_frame(&s.frame)
}

pub fn run(r: &mut Report, si: &StartInfo) {
    let res = new_user_baseptr(domain::l4_mfn(si));
    r.check_eq(
        "user.mmuext_op NEW_USER_BASEPTR (the kernel's L4)",
        res,
        Ok(0),
    );
    // The kernel stack and the syscall callback again (hypercall.* set them already), and
    // distinct GS bases for kernel and user.
    let cb = CallbackRegister {
        type_: CallbackType::Syscall as u16,
        flags: CALLBACKF_MASK_EVENTS,
        _hole: 0,
        address: Entry::Syscall.addr(),
    };
    let setup = res
        // SAFETY: the stack is ours and otherwise unused.
        .and_then(|_| unsafe { hypercall::stack_switch(FLAT_KERNEL_SS, kernel_stack_top()) })
        // SAFETY: the address is the syscall callback `traps` defines.
        .and_then(|_| unsafe { hypercall::callback_register(&cb) })
        .and_then(|_| set_base(SEGBASE_GS_KERNEL, GS_KERNEL_DATA.addr()))
        .and_then(|_| set_base(SEGBASE_GS_USER, GS_USER_DATA.addr()));
    if let Err(err) = setup {
        for name in USER_CHECKS {
            r.fail(
                name,
                format_args!("not run: user-mode setup failed with {err}"),
            );
        }
        return;
    }

    let traps_before = TRAP.get().count;
    TRAP_RESUME.set(Entry::UserAfterInt3.addr());
    // SAFETY: user page table, kernel stack and syscall callback are in place; the user
    // code ends with syscall 2, which brings us back here.
    unsafe { crate::traps::enter_user(Entry::UserCode.addr(), user_stack_top()) };
    TRAP_RESUME.set(0);
    let gs_back = read_gs();
    let sys = SYSCALLS.get();
    let trap = TRAP.get();
    println!("selftest: user syscall 1 {:#x?}", sys[0]);
    println!("selftest: user #BP {trap:#x?}");
    println!("selftest: user syscall 2 {:#x?}", sys[1]);

    r.check(
        USER_CHECKS[0],
        eq("syscalls reached", sys[0].count, 1).and_then(|_| {
            eq(
                "gs:[0] in user mode",
                USER_GS_SEEN.get(),
                GS_USER_DATA.get(),
            )
        }),
    );
    r.check(
        USER_CHECKS[1],
        syscall_frame(&sys[0], 1, Entry::UserAfterSyscall1.addr()),
    );
    r.check(
        USER_CHECKS[2],
        eq(
            "gs:[0] in the callback",
            sys[0].kernel_gs,
            GS_KERNEL_DATA.get(),
        ),
    );
    r.check(
        USER_CHECKS[3],
        eq("traps taken", trap.count - traps_before, 1)
            .and_then(|_| eq("vector", trap.vector, 3))
            .and_then(|_| eq("error code present", trap.has_err, 0))
            .and_then(|_| eq("rip", trap.frame.rip, Entry::UserAfterInt3.addr()))
            .and_then(|_| user_frame(&trap.frame)),
    );
    // The #BP frame holds the user's rcx and r11 as the return from syscall 1 left them.
    r.check(
        USER_CHECKS[4],
        eq("rcx", trap.frame.rcx, Entry::UserAfterSyscall1.addr())
            .and_then(|_| eq("r11", trap.frame.r11, USER_RFLAGS | IF)),
    );
    r.check(
        USER_CHECKS[5],
        syscall_frame(&sys[1], 2, Entry::UserAfterSyscall2.addr())
            .and_then(|_| eq("kernel gs:[0] afterwards", gs_back, GS_KERNEL_DATA.get())),
    );
    r.check_eq(USER_CHECKS[6], new_user_baseptr(0), Ok(0));
}
