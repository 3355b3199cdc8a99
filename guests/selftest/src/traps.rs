//! The assembly side of the test kernel: the trap table over guest-abi's trap recorder
//! (`runtime::traps`: exception entry points that record the bounce frame the hypervisor
//! pushed and return through the `iret` hypercall), the syscall callback, the user-mode code
//! (entered with the runtime's `enter_user`), plus the [`provoke!`] and [`emulate!`] macros
//! that run an instruction with a resume address armed.
//!
//! The frame a 64-bit PV kernel receives (Xen's `create_bounce_frame`), from the handler's
//! `rsp` upwards: `rcx, r11, [error code], rip, cs, rflags, rsp, ss`. The `cs` slot holds
//! the saved event mask in bits 32-39 and has RPL 0 when the interrupted context was the
//! guest kernel. A handler returns by jumping to the hypercall page's `iret` stub with
//! `flags, rip, cs, rflags, rsp, ss` on the stack; the stub pushes `rcx, r11, rax` to
//! complete the `iret_context`.
//!
//! Every trap handler writes [`TRAP`] and resumes at [`TRAP_RESUME`], which the test that
//! provokes the trap arms (and the handler disarms). A trap with nothing armed is a bug of
//! the test or of the hypervisor: the handler calls `trap_fatal`, which prints what it saw
//! and crashes the domain.

use core::mem::offset_of;

use guest_abi::arch::{FLAT_KERNEL_CS, TrapInfo, VgcfFlags};
use guest_abi::hypercall::Hypercall;
use guest_abi::println;
use guest_abi::runtime::AsmCell;
use guest_abi::runtime::hypercall::{self, shutdown};
use guest_abi::runtime::traps;
pub use guest_abi::runtime::traps::{Bounce, RESUME as TRAP_RESUME, TRAP, TrapFrame};
use guest_abi::runtime::user;
use guest_abi::sched::ShutdownReason;

/// What a `syscall` from user mode delivered to the syscall callback.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallFrame {
    /// Callbacks recorded here.
    pub count: u64,
    /// `rax` at the `syscall` (1 or 2: which record).
    pub rax: u64,
    /// The frame.
    pub frame: Bounce,
    /// `gs:[0]` read in the callback (the kernel GS base must be back).
    pub kernel_gs: u64,
}

/// The two user-mode `syscall`s: `rax` = 1, then `rax` = 2.
pub static SYSCALLS: AsmCell<[SyscallFrame; 2]> = AsmCell::new(
    [SyscallFrame {
        count: 0,
        rax: 0,
        frame: Bounce::ZERO,
        kernel_gs: 0,
    }; 2],
);
/// What the user-mode code read at `gs:[0]`.
pub static USER_GS_SEEN: AsmCell<u64> = AsmCell::new(0);

/// Magic values a test puts in `rcx` and `r11` before a trap; the frame must carry them
/// and the `iret` must restore them.
pub const RCX_MAGIC: u64 = 0x5c5c_0000_0000_1c1c;
/// See [`RCX_MAGIC`].
pub const R11_MAGIC: u64 = 0x5b5b_0000_0000_1b1b;

/// The `iret` stub's offset in the hypercall page.
const IRET_STUB: usize = Hypercall::Iret.stub_offset();
/// Marker vectors for a callback that must never run.
const EVENT_MARKER: u64 = 0x1000;
/// See [`EVENT_MARKER`].
const FAILSAFE_MARKER: u64 = 0x1001;

core::arch::global_asm!(
    ".pushsection .text.selftest_traps, \"ax\", @progbits",
    // Callbacks that must never run: events stay masked, segments stay valid.
    ".balign 16",
    ".globl selftest_event_entry",
    "selftest_event_entry:",
    "mov qword ptr [rip + {rec} + {o_vector}], {event_marker}",
    "and rsp, -16",
    "call {fatal}",
    "ud2",
    ".balign 16",
    ".globl selftest_failsafe_entry",
    "selftest_failsafe_entry:",
    "mov qword ptr [rip + {rec} + {o_vector}], {failsafe_marker}",
    "and rsp, -16",
    "call {fatal}",
    "ud2",
    "",
    // The syscall callback: rsp -> rcx, r11, rip, cs, rflags, rsp, ss (on kernel_sp).
    // rax = 1: record in SYSCALLS[0], return to user mode; rax = 2: record in SYSCALLS[1]
    // and go back to the kernel code that called enter_user (the runtime's leave_user).
    ".balign 16",
    ".globl selftest_syscall_entry",
    "selftest_syscall_entry:",
    "lea rdx, [rip + {sys}]",
    "cmp rax, 1",
    "je 2f",
    "add rdx, {s_size}",
    "2:",
    "mov qword ptr [rdx + {s_rax}], rax",
    "mov qword ptr [rdx + {s_frame} + {b_handler_rsp}], rsp",
    "mov rax, qword ptr [rsp]",
    "mov qword ptr [rdx + {s_frame} + {b_rcx}], rax",
    "mov rax, qword ptr [rsp + 8]",
    "mov qword ptr [rdx + {s_frame} + {b_r11}], rax",
    "mov rax, qword ptr [rsp + 16]",
    "mov qword ptr [rdx + {s_frame} + {b_rip}], rax",
    "mov rax, qword ptr [rsp + 24]",
    "mov qword ptr [rdx + {s_frame} + {b_cs}], rax",
    "mov rax, qword ptr [rsp + 32]",
    "mov qword ptr [rdx + {s_frame} + {b_rflags}], rax",
    "mov rax, qword ptr [rsp + 40]",
    "mov qword ptr [rdx + {s_frame} + {b_rsp}], rax",
    "mov rax, qword ptr [rsp + 48]",
    "mov qword ptr [rdx + {s_frame} + {b_ss}], rax",
    "mov rax, qword ptr gs:[0]",
    "mov qword ptr [rdx + {s_kernel_gs}], rax",
    "inc qword ptr [rdx + {s_count}]",
    "mov rax, qword ptr [rdx + {s_rax}]",
    "cmp rax, 1",
    "jne 3f",
    "pop rcx",
    "pop r11",
    "push {in_syscall}",
    "jmp {hypercall_page} + {iret_stub}",
    "3:",
    "jmp {leave_user}",
    "",
    // The user-mode code: reads gs:[0], syscall 1 (returns here), int3 (the trap handler
    // resumes after it), syscall 2 (goes back to the kernel).
    ".balign 16",
    ".globl selftest_user_code",
    "selftest_user_code:",
    "mov rax, qword ptr gs:[0]",
    "mov qword ptr [rip + {user_gs_seen}], rax",
    "mov eax, 1",
    "syscall",
    ".globl selftest_user_after_syscall1",
    "selftest_user_after_syscall1:",
    "int3",
    ".globl selftest_user_after_int3",
    "selftest_user_after_int3:",
    "mov eax, 2",
    "syscall",
    ".globl selftest_user_after_syscall2",
    "selftest_user_after_syscall2:",
    "ud2",
    ".popsection",
    rec = sym TRAP,
    sys = sym SYSCALLS,
    user_gs_seen = sym USER_GS_SEEN,
    fatal = sym trap_fatal,
    hypercall_page = sym guest_abi::runtime::hypercall_page,
    iret_stub = const IRET_STUB,
    event_marker = const EVENT_MARKER,
    failsafe_marker = const FAILSAFE_MARKER,
    in_syscall = const VgcfFlags::IN_SYSCALL.bits(),
    leave_user = sym user::leave_user,
    o_vector = const offset_of!(TrapFrame, vector),
    s_size = const size_of::<SyscallFrame>(),
    s_count = const offset_of!(SyscallFrame, count),
    s_frame = const offset_of!(SyscallFrame, frame),
    s_rax = const offset_of!(SyscallFrame, rax),
    s_kernel_gs = const offset_of!(SyscallFrame, kernel_gs),
    b_rcx = const offset_of!(Bounce, rcx),
    b_r11 = const offset_of!(Bounce, r11),
    b_rip = const offset_of!(Bounce, rip),
    b_cs = const offset_of!(Bounce, cs),
    b_rflags = const offset_of!(Bounce, rflags),
    b_rsp = const offset_of!(Bounce, rsp),
    b_ss = const offset_of!(Bounce, ss),
    b_handler_rsp = const offset_of!(Bounce, handler_rsp),
);

// Labels of the assembly above, declared as functions only to take their addresses; none
// of them may be called from Rust.
unsafe extern "C" {
    fn selftest_event_entry();
    fn selftest_failsafe_entry();
    fn selftest_syscall_entry();
    fn selftest_user_code();
    fn selftest_user_after_syscall1();
    fn selftest_user_after_int3();
    fn selftest_user_after_syscall2();
}

/// A code address the tests need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The event callback (fatal if it runs).
    Event,
    /// The failsafe callback (fatal if it runs).
    Failsafe,
    /// The syscall callback.
    Syscall,
    /// The start of the user-mode code.
    UserCode,
    /// After the user code's first `syscall`.
    UserAfterSyscall1,
    /// After the user code's `int3`.
    UserAfterInt3,
    /// After the user code's second `syscall`.
    UserAfterSyscall2,
}

impl Entry {
    /// Its address.
    pub fn addr(self) -> u64 {
        let f: unsafe extern "C" fn() = match self {
            Entry::Event => selftest_event_entry,
            Entry::Failsafe => selftest_failsafe_entry,
            Entry::Syscall => selftest_syscall_entry,
            Entry::UserCode => selftest_user_code,
            Entry::UserAfterSyscall1 => selftest_user_after_syscall1,
            Entry::UserAfterInt3 => selftest_user_after_int3,
            Entry::UserAfterSyscall2 => selftest_user_after_syscall2,
        };
        f as *const () as u64
    }
}

/// Vectors the virtual IDT handles, with the privilege level `int n` needs (bits 0-1 of
/// `trap_info.flags`). 0x41 is deliberately left out (a test raises it).
const VECTORS: [(u8, u8); 18] = [
    (0, 0),
    (1, 0),
    (3, 3),
    (4, 3),
    (5, 0),
    (6, 0),
    (7, 0),
    (8, 0),
    (10, 0),
    (11, 0),
    (12, 0),
    (13, 0),
    (14, 0),
    (16, 0),
    (17, 0),
    (18, 0),
    (19, 0),
    (0x80, 3),
];

/// The trap table [`install`] hands to `set_trap_table`, ending in a zero entry.
pub fn trap_table() -> [TrapInfo; VECTORS.len() + 1] {
    let mut table = [TrapInfo::default(); VECTORS.len() + 1];
    for (entry, &(vector, dpl)) in table.iter_mut().zip(VECTORS.iter()) {
        *entry = TrapInfo {
            vector,
            flags: dpl,
            cs: FLAT_KERNEL_CS,
            _hole: 0,
            address: traps::stub(vector),
        };
    }
    table
}

/// Installs the virtual IDT.
pub fn install() -> Result<u64, guest_abi::XenError> {
    let table = trap_table();
    traps::set_unarmed(trap_fatal);
    // SAFETY: every address is one of the runtime's stubs, which handle any trap: they
    // record it and resume where the test armed, or call `trap_fatal`.
    unsafe { hypercall::set_trap_table(&table) }
}

/// Enters user mode at `rip` with stack `rsp` (through the `iret` hypercall, CS RPL 3);
/// returns when the user code's second `syscall` reaches the syscall callback.
///
/// # Safety
/// A user page table, the kernel stack (`stack_switch`) and the syscall callback must be
/// in place; the code at `rip` must end with `syscall` with `rax` = 2.
pub unsafe fn enter_user(rip: u64, rsp: u64) {
    // SAFETY: the caller vouches for the user-mode setup; the callback goes back through
    // the runtime's `leave_user` on the second syscall.
    unsafe { user::enter_user(rip, rsp, 0) }
}

/// A trap nobody armed: prints it and crashes the domain (there is no safe place to go
/// back to).
extern "C" fn trap_fatal() -> ! {
    let t = TRAP.get();
    let what = match t.vector {
        EVENT_MARKER => "event callback",
        FAILSAFE_MARKER => "failsafe callback",
        _ => "trap",
    };
    println!(
        "FAIL trap.unexpected: {what} vector {:#x} err {:#x} rip {:#x} cs {:#x} rflags {:#x} rsp {:#x} ss {:#x}",
        t.vector, t.err, t.frame.rip, t.frame.cs, t.frame.rflags, t.frame.rsp, t.frame.ss
    );
    println!("selftest: aborted");
    shutdown(ShutdownReason::Crash)
}

/// What happened when a test ran an instruction with the resume address armed.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// Traps taken meanwhile.
    pub traps: u64,
    /// The trap handler's last record.
    pub frame: TrapFrame,
    /// The instruction's address.
    pub fault: u64,
    /// The address after it.
    pub next: u64,
    /// `rsp` at the instruction.
    pub rsp: u64,
    /// `rcx` after the block ([`RCX_MAGIC`] if kept), for [`provoke!`].
    pub rcx: u64,
    /// `r11` after the block ([`R11_MAGIC`] if kept), for [`provoke!`].
    pub r11: u64,
}

/// The common part of [`provoke!`] and [`emulate!`]: arms the trap to resume at `next`
/// (after the instructions) or `fault` (to run them again), runs the setup lines and the
/// instructions, disarms, and evaluates to an [`Outcome`] whose `rcx`/`r11` are the two
/// expressions given.
macro_rules! armed {
    ($resume:ident, [$($setup:literal),*], ($rcx:expr, $r11:expr);
     $($insn:literal),+ ; $($ops:tt)*) => {{
        let before = $crate::traps::TRAP.get().count;
        let fault: u64;
        let next: u64;
        let rsp: u64;
        // SAFETY: the instructions are the test's; any trap they raise resumes at the
        // armed address with every register restored (the handler only uses the stack
        // below rsp, and this target has no red zone), and the armed address is cleared
        // again whether or not a trap happened.
        unsafe {
            core::arch::asm!(
                "lea {next}, [rip + 8f]",
                "lea {fault}, [rip + 7f]",
                concat!("mov qword ptr [rip + {resume}], {", stringify!($resume), "}"),
                "mov {rsp}, rsp",
                $($setup,)*
                "7:",
                $($insn,)+
                "8:",
                "mov qword ptr [rip + {resume}], 0",
                next = out(reg) next,
                fault = out(reg) fault,
                rsp = out(reg) rsp,
                resume = sym $crate::traps::TRAP_RESUME,
                $($ops)*
            );
        }
        let frame = $crate::traps::TRAP.get();
        $crate::traps::Outcome {
            traps: frame.count - before,
            frame,
            fault,
            next,
            rsp,
            rcx: $rcx,
            r11: $r11,
        }
    }};
}
pub(crate) use armed;

/// Runs the instructions (string literals, then `;` and extra `asm!` operands) with
/// `rcx`/`r11` set to the magic values and a trap armed to resume at `next` (after the
/// instructions) or `fault` (to run them again); evaluates to an [`Outcome`].
macro_rules! provoke {
    ($resume:ident; $($insn:literal),+ $(; $($ops:tt)*)?) => {{
        let rcx: u64;
        let r11: u64;
        $crate::traps::armed!(
            $resume, ["mov rcx, {rcx_magic}", "mov r11, {r11_magic}"], (rcx, r11);
            $($insn),+ ;
            rcx_magic = const $crate::traps::RCX_MAGIC,
            r11_magic = const $crate::traps::R11_MAGIC,
            out("rcx") rcx,
            out("r11") r11,
            $($($ops)*)?
        )
    }};
}
pub(crate) use provoke;

/// Like [`provoke!`] for instructions the hypervisor should emulate (no trap expected):
/// `rcx` and `r11` are left to the instructions, and a trap resumes after them.
macro_rules! emulate {
    ($($insn:literal),+ $(; $($ops:tt)*)?) => {
        $crate::traps::armed!(next, [], (0, 0); $($insn),+ ; $($($ops)*)?)
    };
}
pub(crate) use emulate;
