//! Guest entry and exit.
//!
//! Every guest exit lands its registers in one [`Regs`] frame at the top of this CPU's ring-0
//! stack: exceptions and interrupts from ring 3 because the CPU switches to `TSS.rsp0` and the
//! stubs push the rest, and `syscall` because [`syscall_entry`] switches to the same stack and
//! pushes the same layout by hand. The frame is therefore both the saved state and the guest's
//! live registers, and every return to a guest goes through `return_to_guest`, which pops it.
//!
//! GS discipline: in the hypervisor `GS_BASE` points at this CPU's [`PerCpu`]; while a guest
//! runs, `GS_BASE` holds the guest's value and `KERNEL_GS_BASE` ours. Each entry from ring 3
//! and each return to it does one `swapgs`.

use super::cpu::{rdmsr, wrmsr};
use super::percpu::CpuLocal;
use crate::x86::descriptors;
use crate::x86::regs::Regs;

/// Per-CPU data reached through GS by the entry paths. Field offsets are used from assembly.
#[repr(C)]
pub struct PerCpu {
    /// Top of the ring-0 stack (equal to `TSS.rsp0`); the guest frame sits just below it.
    pub stack_top: u64,
    /// Scratch slot for the guest's RSP during `syscall` entry.
    pub guest_rsp: u64,
}

static PERCPU: CpuLocal<PerCpu> = CpuLocal::new(PerCpu {
    stack_top: 0,
    guest_rsp: 0,
});

const MSR_EFER: u32 = 0xc000_0080;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_FMASK: u32 = 0xc000_0084;
const MSR_GS_BASE: u32 = 0xc000_0101;
/// The inactive GS base, swapped in by `swapgs`.
pub const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
const EFER_SCE: u64 = 1 << 0;

/// RFLAGS bits cleared on `syscall`: IF (stay uninterrupted until on our stack), TF, DF, NT, AC.
const SYSCALL_FLAGS_MASK: u64 = (1 << 9) | (1 << 8) | (1 << 10) | (1 << 14) | (1 << 18);

/// Pseudo-vector of a `syscall` from 32-bit compatibility mode.
pub const SYSCALL32_VECTOR: u64 = 0x101;

core::arch::global_asm!(
    r#"
.section .text.guest_entry, "ax"
/* Switch to this CPU's ring-0 stack and build the frame a ring-3 interrupt would have. */
.macro SYSCALL_FRAME cs, vector
    swapgs
    mov %rsp, %gs:8
    mov %gs:0, %rsp
    push ${ss}
    push %gs:8
    push %r11
    push $\cs
    push %rcx
    push $0
    push $\vector
.endm

.global syscall_entry
syscall_entry:
    SYSCALL_FRAME {cs64}, {syscall_vector}
    jmp 1f

.global syscall32_entry
syscall32_entry:
    SYSCALL_FRAME {cs32}, {syscall32_vector}
1:
"#,
    crate::push_regs_asm!(),
    r#"
    mov %rsp, %rdi
    cld
    call {guest_syscall}
    jmp return_to_guest

/* Pops the guest frame at %rsp and resumes the guest. */
.global return_to_guest
return_to_guest:
"#,
    crate::pop_regs_asm!(),
    r#"
    add $16, %rsp
    swapgs
.global return_to_guest_iretq
return_to_guest_iretq:
    iretq

/* enter_guest_frame(frame): make `frame` (at the top of the ring-0 stack) the stack and leave. */
.global enter_guest_frame
enter_guest_frame:
    mov %rdi, %rsp
    jmp return_to_guest
"#,
    ss = const descriptors::FLAT_RING3_DS as u64,
    cs64 = const descriptors::FLAT_RING3_CS64 as u64,
    cs32 = const descriptors::FLAT_RING3_CS32 as u64,
    syscall_vector = const crate::x86::regs::SYSCALL_VECTOR,
    syscall32_vector = const SYSCALL32_VECTOR,
    guest_syscall = sym super::handlers::guest_syscall,
    options(att_syntax)
);

unsafe extern "C" {
    /// The `iretq` that resumes a guest; a fault there means the guest's frame was bad.
    pub fn return_to_guest_iretq();
    fn syscall_entry();
    fn syscall32_entry();
    fn enter_guest_frame(frame: *mut Regs) -> !;
}

/// Sets up `syscall` and the per-CPU area. `stack_top` is the top of the ring-0 stack that
/// `TSS.rsp0` also names.
pub fn init(stack_top: u64) {
    // SAFETY: bring-up of this CPU; nothing reads PERCPU concurrently.
    unsafe { (*PERCPU.get()).stack_top = stack_top };
    // SAFETY: these MSRs exist on every x86-64 CPU; the values point at our entry code and
    // at selectors of the loaded GDT (see `descriptors::star`).
    unsafe {
        wrmsr(MSR_GS_BASE, PERCPU.get() as u64);
        wrmsr(MSR_KERNEL_GS_BASE, 0);
        wrmsr(MSR_STAR, descriptors::star());
        wrmsr(MSR_LSTAR, syscall_entry as *const () as u64);
        wrmsr(MSR_CSTAR, syscall32_entry as *const () as u64);
        wrmsr(MSR_FMASK, SYSCALL_FLAGS_MASK);
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE);
    }
}

/// The guest frame of this CPU: where a guest exit saved the guest's registers.
fn guest_frame() -> *mut Regs {
    // SAFETY: `stack_top` is written once in `init`, before any guest runs.
    let top = unsafe { (*PERCPU.get()).stack_top };
    (top - size_of::<Regs>() as u64) as *mut Regs
}

/// Runs `f` on the guest frame of this CPU (the registers a guest exit saved, which the return
/// path resumes): the exit path's way to switch to another vCPU by replacing them.
pub fn with_guest_frame<R>(f: impl FnOnce(&mut Regs) -> R) -> R {
    // SAFETY: the frame lies at the top of this CPU's ring-0 stack, above every call frame of
    // the exit path, and is only ever reached as the `&mut Regs` an exit handler was entered
    // with or through this function; exit handlers do not hold that reference across the
    // scheduler (which is where this is called), so no other live reference aliases it.
    f(unsafe { &mut *guest_frame() })
}

/// Whether `regs` returns to ring 3 (CS and SS with RPL 3): the only contexts the entry
/// paths may resume, whatever else is wrong with them (the CPU refuses a bad selector or
/// address with a fault that crashes the domain, the registered `bad_return_frame`).
fn returns_to_ring3(regs: &Regs) -> bool {
    regs.cs & 3 == 3 && regs.ss & 3 == 3
}

/// Loads `regs` into the guest frame and resumes the guest, abandoning the current stack.
/// The guest's page tables and GS base must be loaded (`guest::load_mode`); a context that
/// would not return to ring 3 is a hypervisor bug and stops the machine.
pub fn enter_guest(regs: &Regs) -> ! {
    if !returns_to_ring3(regs) {
        panic!(
            "refusing to enter a guest context outside ring 3 (cs {:#x})",
            regs.cs
        );
    }
    let frame = guest_frame();
    // SAFETY: the frame lies inside this CPU's ring-0 stack, above anything the current call
    // chain uses; we copy before switching stacks and never return. The context returns to
    // ring 3 (checked), so the CPU either resumes the guest or faults into the hypervisor.
    unsafe {
        frame.write(*regs);
        enter_guest_frame(frame)
    }
}

/// Resumes whatever vCPU's registers are in the guest frame, abandoning the current stack.
pub fn resume_guest_frame() -> ! {
    with_guest_frame(|regs| {
        if !returns_to_ring3(regs) {
            panic!(
                "refusing to resume a guest frame outside ring 3 (cs {:#x})",
                regs.cs
            );
        }
    });
    // SAFETY: the frame holds a ring-3 context (checked); as for `enter_guest`.
    unsafe { enter_guest_frame(guest_frame()) }
}
