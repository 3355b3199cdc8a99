//! Traps and user mode, the assembly side of the benchmark kernel: the exception entry
//! points (`#NM` returns at once; anything else is fatal, or ends the guarded benchmark it
//! interrupted), the failsafe and syscall callbacks, the entry into user mode and the
//! user-mode loop, and the guard that lets a benchmark be abandoned when it traps. (The event
//! upcall's entry lives with the rest of the event machinery, in `events`.)
//!
//! The frame a 64-bit PV kernel receives (Xen's `create_bounce_frame`), from the handler's
//! `rsp` upwards: `rcx, r11, [error code], rip, cs, rflags, rsp, ss`. A handler returns by
//! popping `rcx` and `r11`, pushing the `iret` flags word and jumping to the hypercall page's
//! `iret` stub, which pushes `rcx, r11, rax` to complete the `iret_context`.
//!
//! Handlers run only inside the `asm!` blocks and hypercalls of a benchmark, on the stack
//! they interrupt (the target has no red zone) or, from user mode, on the stack given to
//! `stack_switch`; they preserve every register the interrupted code may hold.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

use guest_abi::arch::{FLAT_KERNEL_CS, TrapInfo, VgcfFlags};
use guest_abi::hypercall::Hypercall;
use guest_abi::println;
use guest_abi::runtime::{hypercall, user};
use guest_abi::sched::ShutdownReason;

/// `#NM` bounces taken.
pub static NM_COUNT: AtomicU64 = AtomicU64::new(0);
/// The kernel `rsp` [`guarded`] saved (0: no benchmark is guarded).
static GUARD_RSP: AtomicU64 = AtomicU64::new(0);
/// The vector and frame words of the trap that ended a guarded benchmark.
static GUARD_TRAP: TrapRecord = TrapRecord(UnsafeCell::new([0; 4]));

/// The `rsi`-addressed record the fatal path fills: vector, then the first three frame words.
#[repr(transparent)]
struct TrapRecord(UnsafeCell<[u64; 4]>);

// SAFETY: one vCPU; the assembly writes the record only while the Rust code that reads it
// (after the guard returned) is not running.
unsafe impl Sync for TrapRecord {}

/// The `iret` stub's offset in the hypercall page.
const IRET_STUB: usize = Hypercall::Iret.stub_offset();
/// The vector the failsafe callback reports as.
pub const FAILSAFE_VECTOR: u64 = 0x100;
/// `rax` of the user loop's last `syscall`, which returns to the kernel.
const USER_EXIT: u64 = 2;

core::arch::global_asm!(
    ".pushsection .text.bench_entry, \"ax\", @progbits",
    // Vectors 0-31: 16 bytes each; #NM has its own handler in the table.
    ".balign 16",
    ".globl bench_trap_stubs",
    "bench_trap_stubs:",
    ".irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    ".balign 16",
    "mov edi, \\vec",
    "jmp bench_trap_common",
    ".endr",
    ".balign 16",
    ".globl bench_failsafe_entry",
    "bench_failsafe_entry:",
    "mov edi, {failsafe}",
    "jmp bench_trap_common",
    "",
    // edi = vector, rsp -> the frame. A guarded benchmark ends: record, unwind to the
    // guard, which returns vector + 1. Otherwise the trap is fatal.
    "bench_trap_common:",
    "lea rsi, [rip + {record}]",
    "mov qword ptr [rsi], rdi",
    "mov rax, qword ptr [rsp]",
    "mov qword ptr [rsi + 8], rax",
    "mov rax, qword ptr [rsp + 8]",
    "mov qword ptr [rsi + 16], rax",
    "mov rax, qword ptr [rsp + 16]",
    "mov qword ptr [rsi + 24], rax",
    "mov rax, qword ptr [rip + {guard_rsp}]",
    "test rax, rax",
    "jz 2f",
    "mov qword ptr [rip + {guard_rsp}], 0",
    "mov rsp, rax",
    "lea rax, [rdi + 1]",
    "jmp bench_guard_return",
    "2:",
    "and rsp, -16",
    "call {fatal}",
    "ud2",
    "",
    // #NM after fpu_taskswitch(1): the hypervisor cleared the virtual TS; re-run the
    // instruction.
    ".balign 16",
    ".globl bench_nm_entry",
    "bench_nm_entry:",
    "lock inc qword ptr [rip + {nm_count}]",
    "jmp {bounce_return}",
    "",
    // The syscall callback (on the stack_switch stack): back to user mode like sysret,
    // or, for the last syscall, back to the kernel code in run_user (the runtime's
    // enter_user returns).
    ".balign 16",
    ".globl bench_syscall_entry",
    "bench_syscall_entry:",
    "cmp rax, {user_exit}",
    "je 2f",
    "pop rcx",
    "pop r11",
    "push {in_syscall}",
    "jmp {hypercall_page} + {iret_stub}",
    "2:",
    "jmp {leave_user}",
    "",
    // User mode, entered with rdx = count: that many system calls that come straight
    // back, then the exit syscall.
    ".balign 16",
    ".globl bench_user_code",
    "bench_user_code:",
    "mov r12, rdx",
    "test r12, r12",
    "jz 2f",
    "1:",
    "mov eax, 1",
    "syscall",
    "dec r12",
    "jnz 1b",
    "2:",
    "mov eax, {user_exit}",
    "syscall",
    "ud2",
    "",
    // extern "C" fn(f = rdi, arg = rsi) -> u64: calls f(arg); returns 0, or vector + 1 if
    // a trap ended it.
    ".balign 16",
    ".globl bench_guard",
    "bench_guard:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 8",
    "mov qword ptr [rip + {guard_rsp}], rsp",
    "mov rax, rdi",
    "mov rdi, rsi",
    "call rax",
    "mov qword ptr [rip + {guard_rsp}], 0",
    "xor eax, eax",
    "bench_guard_return:",
    "add rsp, 8",
    // Pops what bench_guard pushed, and returns to its caller.
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    ".popsection",
    record = sym GUARD_TRAP,
    guard_rsp = sym GUARD_RSP,
    nm_count = sym NM_COUNT,
    fatal = sym trap_fatal,
    hypercall_page = sym guest_abi::runtime::hypercall_page,
    iret_stub = const IRET_STUB,
    failsafe = const FAILSAFE_VECTOR,
    in_syscall = const VgcfFlags::IN_SYSCALL.bits(),
    user_exit = const USER_EXIT,
    bounce_return = sym user::bounce_return,
    leave_user = sym user::leave_user,
);

// Labels of the assembly above, declared as functions to take their addresses; only
// `bench_guard` may be called from Rust.
unsafe extern "C" {
    fn bench_trap_stubs();
    fn bench_failsafe_entry();
    fn bench_nm_entry();
    fn bench_syscall_entry();
    fn bench_user_code();
    fn bench_guard(f: extern "C" fn(u64), arg: u64) -> u64;
}

/// A code address the setup hands to the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The failsafe callback (fatal).
    Failsafe,
    /// The syscall callback.
    Syscall,
    /// The user-mode loop.
    UserCode,
}

impl Entry {
    /// Its address.
    pub fn addr(self) -> u64 {
        let f: unsafe extern "C" fn() = match self {
            Entry::Failsafe => bench_failsafe_entry,
            Entry::Syscall => bench_syscall_entry,
            Entry::UserCode => bench_user_code,
        };
        f as *const () as u64
    }
}

/// The virtual IDT: `#NM` returns at once, every other exception is fatal (or ends the
/// guarded benchmark). Ends with the zero entry `set_trap_table` wants.
fn trap_table() -> [TrapInfo; 33] {
    let mut table = [TrapInfo::default(); 33];
    for (vector, entry) in table.iter_mut().take(32).enumerate() {
        let address = if vector == 7 {
            bench_nm_entry as *const () as u64
        } else {
            bench_trap_stubs as *const () as u64 + 16 * vector as u64
        };
        *entry = TrapInfo {
            vector: vector as u8,
            flags: if vector == 3 || vector == 4 { 3 } else { 0 },
            cs: FLAT_KERNEL_CS,
            _hole: 0,
            address,
        };
    }
    table
}

/// Installs the virtual IDT.
pub fn install() -> Result<u64, guest_abi::XenError> {
    let table = trap_table();
    // SAFETY: every address is one of the entry points above, which handle any exception.
    unsafe { hypercall::set_trap_table(&table) }
}

/// Enters user mode at the user loop with stack `rsp`; returns after the loop made `count`
/// system calls and the exit call.
///
/// # Safety
/// A user page table, the kernel stack (`stack_switch`) and the syscall callback
/// ([`Entry::Syscall`]) must be in place, and `rsp` must be the top of a stack the user
/// code may use.
pub unsafe fn run_user(rsp: u64, count: u64) {
    // SAFETY: the caller vouches for the user-mode setup; the syscall callback goes back
    // through `leave_user` after the exit call.
    unsafe { user::enter_user(Entry::UserCode.addr(), rsp, count) }
}

/// A trap that ended a guarded function: its vector and the first three words of the
/// frame (`rcx, r11`, then the error code or `rip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trapped {
    /// The vector ([`FAILSAFE_VECTOR`] for the failsafe callback).
    pub vector: u64,
    /// The frame's first words.
    pub frame: [u64; 3],
}

/// Runs `f`; if an exception (or the failsafe callback) interrupts it, abandons it and
/// returns what trapped. `f` must own nothing that needs dropping: an abandoned `f` is
/// unwound by resetting the stack.
pub fn guarded<F: FnMut()>(f: &mut F) -> Result<(), Trapped> {
    extern "C" fn trampoline<F: FnMut()>(arg: u64) {
        // SAFETY: `arg` is the `&mut F` `guarded` passed, live for the call.
        let f = unsafe { &mut *(arg as *mut F) };
        f();
    }
    // SAFETY: `bench_guard` calls `trampoline::<F>(f)` with the callee-saved registers and
    // stack saved; if a trap ends it, the frames between are abandoned, which is sound
    // because they hold nothing to drop (the caller's promise) and nothing else refers to
    // them.
    let r = unsafe { bench_guard(trampoline::<F>, f as *mut F as u64) };
    if r == 0 {
        return Ok(());
    }
    // SAFETY: the trap path wrote the record before unwinding; nothing writes it now.
    let record = unsafe { GUARD_TRAP.0.get().read_volatile() };
    Err(Trapped {
        vector: r - 1,
        frame: [record[1], record[2], record[3]],
    })
}

/// A trap outside any guarded benchmark: prints it and crashes the domain.
extern "C" fn trap_fatal() -> ! {
    // SAFETY: the trap path wrote the record; nothing else runs.
    let r = unsafe { GUARD_TRAP.0.get().read_volatile() };
    println!(
        "BENCH-FATAL vector={:#x} frame={:#x},{:#x},{:#x}",
        r[0], r[1], r[2], r[3]
    );
    hypercall::shutdown(ShutdownReason::Crash)
}

/// `#NM` bounces so far.
pub fn nm_count() -> u64 {
    NM_COUNT.load(Ordering::Relaxed)
}
