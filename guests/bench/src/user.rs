//! The user↔kernel round trip: a `syscall` in guest user mode reaches the guest kernel's
//! syscall callback, which returns to user mode with the `iret` hypercall
//! (`VGCF_in_syscall`, so it returns like `sysret`). The user page table is the kernel's own
//! L4 (`MMUEXT_NEW_USER_BASEPTR`), as a kernel without separate user address spaces would
//! use it.
//!
//! A repetition enters user mode once (through `iret`), makes `n` round trips there, and
//! comes back with one more `syscall`: the cost per round trip includes 1/`n` of that entry
//! and exit.

use core::cell::UnsafeCell;

use guest_abi::DomId;
use guest_abi::arch::FLAT_KERNEL_SS;
use guest_abi::callback::{CALLBACKF_MASK_EVENTS, CallbackRegister, CallbackType};
use guest_abi::runtime::hypercall;
use guest_abi::xen::{MmuextCmd, MmuextOp};

use crate::error::Error;
use crate::pt;
use crate::run::{Spec, bench, failed};
use crate::traps::{self, Entry};

const STACK: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; STACK]>);

// SAFETY: only the hypervisor (bounce frames) and the user code's stack pointer use the
// stacks; Rust never reads or writes them.
unsafe impl Sync for Stack {}

impl Stack {
    fn top(&self) -> u64 {
        self.0.get() as u64 + STACK as u64
    }
}

/// The stack `stack_switch` names: the syscall callback runs on it.
static KERNEL_STACK: Stack = Stack(UnsafeCell::new([0; STACK]));
/// The user-mode stack.
static USER_STACK: Stack = Stack(UnsafeCell::new([0; STACK]));

const NAME: &str = "user_syscall_roundtrip";

pub fn run() {
    if let Err(e) = setup() {
        failed(NAME, e);
        return;
    }
    bench(Spec::new(NAME, 200), |n| {
        // SAFETY: `setup` installed the user page table, the kernel stack and the syscall
        // callback; the user stack is ours.
        unsafe { traps::run_user(USER_STACK.top(), u64::from(n)) };
        Ok(())
    });
}

fn setup() -> Result<(), Error> {
    let op = MmuextOp {
        cmd: MmuextCmd::NewUserBaseptr as u32,
        _hole: 0,
        arg1: pt::l4_mfn(),
        arg2: 0,
    };
    let mut done = 0;
    // SAFETY: the user page table is the kernel's own L4; no mapping changes.
    unsafe { hypercall::mmuext_op(&[op], &mut done, DomId::SELF) }
        .map_err(|e| Error::xen("mmuext_op(NEW_USER_BASEPTR)", e))?;
    // SAFETY: the stack is ours and used for nothing else.
    unsafe { hypercall::stack_switch(FLAT_KERNEL_SS, KERNEL_STACK.top()) }
        .map_err(|e| Error::xen("stack_switch", e))?;
    let cb = CallbackRegister {
        type_: CallbackType::Syscall as u16,
        flags: CALLBACKF_MASK_EVENTS,
        _hole: 0,
        address: Entry::Syscall.addr(),
    };
    // SAFETY: the address is the syscall callback of `traps`.
    unsafe { hypercall::callback_register(&cb) }
        .map_err(|e| Error::xen("callback_op(syscall)", e))?;
    Ok(())
}
