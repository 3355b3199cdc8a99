//! A trap recorder for test guests: exception entry points (vectors 0 to 31 and 0x80, 32
//! bytes apart, [`stub`]) that record the bounce frame in [`TRAP`] and resume at the address
//! armed in [`RESUME`] through the `iret` hypercall, with every register the interrupted code
//! had (`rcx` and `r11` from the frame). With nothing armed, the trap has nowhere to go back
//! to: the stub calls the function set with [`set_unarmed`] (by default one that prints the
//! record and crashes the domain).
//!
//! The frame a 64-bit PV kernel receives, from the handler's `rsp` upwards: `rcx, r11, [error
//! code], rip, cs, rflags, rsp, ss` (the `cs` slot holds the saved event mask in bits 32-39).
//! The stubs use only the stack below the interrupted `rsp` (this target has no red zone), so
//! code that arms [`RESUME`] around an `asm!` block may provoke traps from it; the guest
//! builds its trap table from [`stub`] and installs it with `set_trap_table`.

use core::mem::offset_of;

use super::user::IRET_STUB;
use super::{AsmCell, hypercall, hypercall_page};
use crate::sched::ShutdownReason;

/// The bounce frame the hypervisor pushed (without the error code).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bounce {
    /// The frame's `rcx`.
    pub rcx: u64,
    /// The frame's `r11`.
    pub r11: u64,
    /// The frame's `rip`.
    pub rip: u64,
    /// The frame's `cs` slot (saved event mask in bits 32-39).
    pub cs: u64,
    /// The frame's `rflags`.
    pub rflags: u64,
    /// The frame's `rsp`.
    pub rsp: u64,
    /// The frame's `ss`.
    pub ss: u64,
    /// `rsp` when the handler was entered (the address of the frame's `rcx`).
    pub handler_rsp: u64,
}

impl Bounce {
    /// All zero.
    pub const ZERO: Self = Self {
        rcx: 0,
        r11: 0,
        rip: 0,
        cs: 0,
        rflags: 0,
        rsp: 0,
        ss: 0,
        handler_rsp: 0,
    };
}

/// What the trap handler saw, in the order the assembly stores it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapFrame {
    /// Handler invocations so far.
    pub count: u64,
    /// The vector of the last one.
    pub vector: u64,
    /// 1 if the frame had an error code.
    pub has_err: u64,
    /// The error code (0 if none).
    pub err: u64,
    /// The rest of the frame.
    pub frame: Bounce,
    /// Scratch: the interrupted `rax`.
    pub saved_rax: u64,
    /// Scratch: the interrupted `rdx`.
    pub saved_rdx: u64,
}

/// The last trap the handler took.
pub static TRAP: AsmCell<TrapFrame> = AsmCell::new(TrapFrame {
    count: 0,
    vector: 0,
    has_err: 0,
    err: 0,
    frame: Bounce::ZERO,
    saved_rax: 0,
    saved_rdx: 0,
});
/// Where the next trap resumes (0: nothing armed). One-shot: the handler disarms it.
pub static RESUME: AsmCell<u64> = AsmCell::new(0);
/// What a trap with nothing armed calls (on a 16-byte aligned stack).
static UNARMED: AsmCell<extern "C" fn() -> !> = AsmCell::new(unarmed);

/// Vectors whose frames carry an error code: #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC,
/// #SX.
const ERR_CODE_VECTORS: u32 = (1 << 8) | (0x1f << 10) | (1 << 17) | (1 << 21) | (3 << 29);

core::arch::global_asm!(
    ".pushsection .text.xen_runtime_traps, \"ax\", @progbits",
    // The exception entry points: 32 bytes each, vectors 0 to 31 then 0x80.
    ".balign 32",
    ".globl xen_runtime_trap_stubs",
    "xen_runtime_trap_stubs:",
    ".irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,128",
    ".balign 32",
    "mov qword ptr [rip + {rec} + {o_saved_rax}], rax",
    "mov eax, \\vec",
    "jmp xen_runtime_trap_common",
    ".endr",
    "",
    // rax = vector; rsp -> rcx, r11, [err], rip, cs, rflags, rsp, ss.
    "xen_runtime_trap_common:",
    "mov qword ptr [rip + {rec} + {o_vector}], rax",
    "mov qword ptr [rip + {rec} + {o_saved_rdx}], rdx",
    "mov qword ptr [rip + {rec} + {o_frame} + {b_handler_rsp}], rsp",
    "mov rdx, qword ptr [rsp]",
    "mov qword ptr [rip + {rec} + {o_frame} + {b_rcx}], rdx",
    "mov rdx, qword ptr [rsp + 8]",
    "mov qword ptr [rip + {rec} + {o_frame} + {b_r11}], rdx",
    "add rsp, 16",
    "xor edx, edx",
    "cmp eax, 32",
    "jae 2f",
    "mov edx, {err_vectors}",
    "bt edx, eax",
    "setc dl",
    "movzx edx, dl",
    "2:",
    "mov qword ptr [rip + {rec} + {o_has_err}], rdx",
    "test edx, edx",
    "jz 3f",
    "pop rdx",
    "mov qword ptr [rip + {rec} + {o_err}], rdx",
    "jmp 4f",
    "3:",
    "mov qword ptr [rip + {rec} + {o_err}], 0",
    "4:",
    // rsp -> rip, cs, rflags, rsp, ss.
    "mov rdx, qword ptr [rsp]",
    "mov qword ptr [rip + {rec} + {o_frame} + {b_rip}], rdx",
    "mov rdx, qword ptr [rsp + 8]",
    "mov qword ptr [rip + {rec} + {o_frame} + {b_cs}], rdx",
    "mov rdx, qword ptr [rsp + 16]",
    "mov qword ptr [rip + {rec} + {o_frame} + {b_rflags}], rdx",
    "mov rdx, qword ptr [rsp + 24]",
    "mov qword ptr [rip + {rec} + {o_frame} + {b_rsp}], rdx",
    "mov rdx, qword ptr [rsp + 32]",
    "mov qword ptr [rip + {rec} + {o_frame} + {b_ss}], rdx",
    "inc qword ptr [rip + {rec} + {o_count}]",
    "mov rdx, qword ptr [rip + {resume}]",
    "test rdx, rdx",
    "jz 5f",
    "mov qword ptr [rip + {resume}], 0",
    "mov qword ptr [rsp], rdx",
    "push 0",
    "mov rax, qword ptr [rip + {rec} + {o_saved_rax}]",
    "mov rdx, qword ptr [rip + {rec} + {o_saved_rdx}]",
    "mov rcx, qword ptr [rip + {rec} + {o_frame} + {b_rcx}]",
    "mov r11, qword ptr [rip + {rec} + {o_frame} + {b_r11}]",
    "jmp {hypercall_page} + {iret_stub}",
    "5:",
    "and rsp, -16",
    "call qword ptr [rip + {unarmed}]",
    "ud2",
    ".popsection",
    rec = sym TRAP,
    resume = sym RESUME,
    unarmed = sym UNARMED,
    hypercall_page = sym hypercall_page,
    iret_stub = const IRET_STUB,
    err_vectors = const ERR_CODE_VECTORS,
    o_count = const offset_of!(TrapFrame, count),
    o_frame = const offset_of!(TrapFrame, frame),
    o_vector = const offset_of!(TrapFrame, vector),
    o_has_err = const offset_of!(TrapFrame, has_err),
    o_err = const offset_of!(TrapFrame, err),
    o_saved_rax = const offset_of!(TrapFrame, saved_rax),
    o_saved_rdx = const offset_of!(TrapFrame, saved_rdx),
    b_rcx = const offset_of!(Bounce, rcx),
    b_r11 = const offset_of!(Bounce, r11),
    b_rip = const offset_of!(Bounce, rip),
    b_cs = const offset_of!(Bounce, cs),
    b_rflags = const offset_of!(Bounce, rflags),
    b_rsp = const offset_of!(Bounce, rsp),
    b_ss = const offset_of!(Bounce, ss),
    b_handler_rsp = const offset_of!(Bounce, handler_rsp),
);

// The label of the stubs above, declared as a function only to take its address.
unsafe extern "C" {
    fn xen_runtime_trap_stubs();
}

/// The entry point of exception `vector` (0 to 31, or 0x80), for the guest's trap table.
pub fn stub(vector: u8) -> u64 {
    let index = if vector == 0x80 {
        32
    } else {
        u64::from(vector)
    };
    assert!(index <= 32, "no stub for vector {vector}");
    xen_runtime_trap_stubs as *const () as u64 + 32 * index
}

/// Makes a trap with nothing armed call `f` (which reads [`TRAP`], reports and ends the
/// domain) instead of the default, which prints the record and crashes the domain.
pub fn set_unarmed(f: extern "C" fn() -> !) {
    UNARMED.set(f);
}

/// The default for a trap with nothing armed.
extern "C" fn unarmed() -> ! {
    let t = TRAP.get();
    crate::println!(
        "unexpected trap: vector {:#x} err {:#x} rip {:#x}",
        t.vector,
        t.err,
        t.frame.rip
    );
    hypercall::shutdown(ShutdownReason::Crash)
}
