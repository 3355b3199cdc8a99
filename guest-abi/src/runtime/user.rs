//! Ring 3 for the runtime's guests: [`enter_user`] goes to user mode through the `iret`
//! hypercall and returns once the guest's syscall callback jumps to [`leave_user`];
//! [`bounce_return`] returns from a bounce to the guest kernel.
//!
//! The frame a 64-bit PV kernel receives (Xen's `create_bounce_frame`), from the handler's
//! `rsp` upwards: `rcx, r11, [error code], rip, cs, rflags, rsp, ss`. The `iret` stub of the
//! hypercall page wants `flags, rip, cs, rflags, rsp, ss` on the stack (it pushes `rcx, r11,
//! rax` itself to complete the `iret_context`).
//!
//! The user code's page table, the kernel stack (`stack_switch`) and the syscall callback
//! are the guest's to set up; user mode runs with events masked (IF clear in
//! [`USER_RFLAGS`]), so only the code it runs brings it back to the kernel.

use super::{AsmCell, hypercall_page};
use crate::arch::{FLAT_USER_CS, FLAT_USER_SS};
use crate::hypercall::Hypercall;

/// `rflags` for entering user mode: bit 1 only, IF clear so events stay masked.
pub const USER_RFLAGS: u64 = 0x2;

/// The `iret` stub's offset in the hypercall page.
pub const IRET_STUB: usize = Hypercall::Iret.stub_offset();

/// The kernel `rsp` [`enter_user`] saved, which [`leave_user`] goes back to.
static SAVED_RSP: AsmCell<u64> = AsmCell::new(0);

/// Enters user mode at `rip` with stack `rsp` (flat user selectors, [`USER_RFLAGS`]); the
/// user code starts with `rdx` as given, `rdi = rip`, `rsi = rsp` and the caller's
/// callee-saved registers. Returns when the guest's syscall callback (or a trap handler) jumps
/// to [`leave_user`].
///
/// # Safety
/// A user page table, the kernel stack (`stack_switch`) and a syscall callback that ends in
/// [`leave_user`] must be in place, and no other `enter_user` may be pending (the saved
/// kernel stack is one).
#[unsafe(naked)]
pub unsafe extern "C" fn enter_user(rip: u64, rsp: u64, rdx: u64) {
    core::arch::naked_asm!(
        "push rbx",
        "push rbp",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov qword ptr [rip + {saved_rsp}], rsp",
        "push {user_ss}",
        "push rsi",
        "push {user_rflags}",
        "push {user_cs}",
        "push rdi",
        "push 0",
        "jmp {hypercall_page} + {iret_stub}",
        saved_rsp = sym SAVED_RSP,
        user_ss = const FLAT_USER_SS,
        user_cs = const FLAT_USER_CS,
        user_rflags = const USER_RFLAGS,
        hypercall_page = sym hypercall_page,
        iret_stub = const IRET_STUB,
    )
}

/// Back to the kernel code that called [`enter_user`]: restores its stack and callee-saved
/// registers and returns from `enter_user`. Jumped to from the syscall callback (or is the
/// callback), never called.
///
/// # Safety
/// Only while an [`enter_user`] is pending.
#[unsafe(naked)]
pub unsafe extern "C" fn leave_user() -> ! {
    core::arch::naked_asm!(
        "mov rsp, qword ptr [rip + {saved_rsp}]",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "ret",
        saved_rsp = sym SAVED_RSP,
    )
}

/// Returns from a bounce to the interrupted code, whose frame is on the stack with no error
/// code (`rsp -> rcx, r11, rip, cs, rflags, rsp, ss`): `rcx` and `r11` from the frame, every
/// other register as it is. Jumped to, never called.
///
/// # Safety
/// Only with that frame at `rsp`.
#[unsafe(naked)]
pub unsafe extern "C" fn bounce_return() -> ! {
    core::arch::naked_asm!(
        "pop rcx",
        "pop r11",
        "push 0",
        "jmp {hypercall_page} + {iret_stub}",
        hypercall_page = sym hypercall_page,
        iret_stub = const IRET_STUB,
    )
}
