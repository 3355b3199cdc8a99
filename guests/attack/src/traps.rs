//! Traps: the guest's exception handlers (guest-abi's trap recorder, `runtime::traps`, which
//! records the trap and resumes where the case armed), user mode (entered through the `iret` hypercall, left with `syscall`), the
//! `trap.*` cases (handlers, callbacks and kernel stacks that name the hypervisor), and the
//! fatal cases that end the domain.
//!
//! The frame a 64-bit PV kernel receives, from the handler's `rsp` upwards: `rcx, r11, [error
//! code], rip, cs, rflags, rsp, ss`. A handler returns through the hypercall page's `iret` stub
//! with `flags, rip, cs, rflags, rsp, ss` on the stack. Every exception handler here records
//! the vector in [`TRAP`] and resumes at [`RESUME`], which the case that provokes the trap arms
//! (and the handler disarms); with nothing armed `trap_fatal` prints what it saw and crashes the
//! domain.

use guest_abi::arch::{FLAT_KERNEL_CS, FLAT_KERNEL_SS, FLAT_USER_SS, TrapInfo};
use guest_abi::callback::{CallbackRegister, CallbackType};
use guest_abi::hypercall::Hypercall;
use guest_abi::runtime::AsmCell;
use guest_abi::runtime::hypercall::{self, shutdown};
use guest_abi::runtime::traps;
pub use guest_abi::runtime::traps::{RESUME, TRAP};
use guest_abi::runtime::user;
use guest_abi::sched::ShutdownReason;
use guest_abi::xen::MmuextCmd;
use guest_abi::{XenError, println};

use crate::mem;
use crate::report::{Expect, Got, OK, Report, Want, err};

#[repr(C, align(16))]
struct Stack([u8; 16384]);

/// The kernel stack for traps and syscalls from user mode (`stack_switch`).
static KERNEL_STACK: AsmCell<Stack> = AsmCell::new(Stack([0; 16384]));
/// The user-mode stack.
static USER_STACK: AsmCell<Stack> = AsmCell::new(Stack([0; 16384]));

const IRET_STUB: usize = Hypercall::Iret.stub_offset();

core::arch::global_asm!(
    ".pushsection .text.attack_traps, \"ax\", @progbits",
    // User code (entered with the runtime's enter_user; the syscall callback is its
    // leave_user): one instruction, then back to the kernel. The trap handler resumes at the
    // syscall when the instruction traps (the case arms it).
    ".balign 16",
    ".globl attack_user_in",
    "attack_user_in:",
    "in al, dx",
    ".globl attack_user_in_done",
    "attack_user_in_done:",
    "syscall",
    ".globl attack_user_cli",
    "attack_user_cli:",
    "cli",
    ".globl attack_user_cli_done",
    "attack_user_cli_done:",
    "syscall",
    ".globl attack_user_rdmsr",
    "attack_user_rdmsr:",
    "mov ecx, 0xc0000100",
    "rdmsr",
    ".globl attack_user_rdmsr_done",
    "attack_user_rdmsr_done:",
    "syscall",
    ".globl attack_user_int3",
    "attack_user_int3:",
    "int3",
    "syscall",
    ".popsection",
);

// Labels of the assembly above, declared as functions only to take their addresses.
unsafe extern "C" {
    fn attack_user_in();
    fn attack_user_in_done();
    fn attack_user_cli();
    fn attack_user_cli_done();
    fn attack_user_rdmsr();
    fn attack_user_rdmsr_done();
    fn attack_user_int3();
}

fn addr(f: unsafe extern "C" fn()) -> u64 {
    f as *const () as u64
}

/// A trap nobody armed: prints it and crashes the domain.
extern "C" fn trap_fatal() -> ! {
    let t = TRAP.get();
    println!(
        "FAIL attack.unexpected_trap: vector {} err {:#x} rip {:#x}",
        t.vector, t.err, t.frame.rip
    );
    println!("attack: aborted");
    shutdown(ShutdownReason::Crash)
}

/// Runs the instructions with a trap armed to resume after them; evaluates to the vector of
/// the trap taken, if any.
macro_rules! trapped {
    ($($insn:literal),+ $(; $($ops:tt)*)?) => {{
        let before = $crate::traps::TRAP.get().count;
        // SAFETY: the instructions are the case's; a trap they raise resumes after them with
        // every register restored (the handler only uses the stack below rsp, and this target
        // has no red zone); the armed address is cleared whether or not a trap happened.
        unsafe {
            core::arch::asm!(
                "lea {armed}, [rip + 8f]",
                "mov qword ptr [rip + {resume}], {armed}",
                $($insn,)+
                "8:",
                "mov qword ptr [rip + {resume}], 0",
                armed = out(reg) _,
                resume = sym $crate::traps::RESUME,
                $($($ops)*)?
            );
        }
        let rec = $crate::traps::TRAP.get();
        (rec.count != before).then_some(rec.vector)
    }};
}
pub(crate) use trapped;

/// A trap's vector, or the value the instruction left.
pub fn got(trap: Option<u64>, value: u64) -> Got {
    match trap {
        Some(v) => Got::Trap(v),
        None => Got::Value(value),
    }
}

/// The virtual IDT: every vector 0–31 to its stub, `int n` allowed from the kernel only (DPL
/// 1 in `flags`), #BP (3) from user mode too.
fn trap_table() -> [TrapInfo; 33] {
    let mut table = [TrapInfo::default(); 33];
    for (v, entry) in table.iter_mut().take(32).enumerate() {
        *entry = TrapInfo {
            vector: v as u8,
            flags: if v == 3 { 3 } else { 1 },
            cs: FLAT_KERNEL_CS,
            _hole: 0,
            address: traps::stub(v as u8),
        };
    }
    table
}

/// Installs the virtual IDT.
pub fn install() -> Result<u64, XenError> {
    traps::set_unarmed(trap_fatal);
    // SAFETY: every address is one of the runtime's stubs, which record any trap and resume
    // where the case armed, or call `trap_fatal`.
    unsafe { hypercall::set_trap_table(&trap_table()) }
}

fn stack_top(s: &AsmCell<Stack>) -> u64 {
    s.addr() + size_of::<Stack>() as u64
}

/// Sets up user mode: the kernel's L4 as the user table, the kernel stack, the syscall
/// callback.
fn user_setup() -> Result<(), i64> {
    let r = mem::mmuext(MmuextCmd::NewUserBaseptr, mem::l4(), 0);
    if r < 0 {
        return Err(r);
    }
    // SAFETY: the stack is ours and otherwise unused.
    unsafe { hypercall::stack_switch(FLAT_KERNEL_SS, stack_top(&KERNEL_STACK)) }
        .map_err(XenError::to_ret)?;
    let cb = CallbackRegister {
        type_: CallbackType::Syscall as u16,
        flags: 0,
        _hole: 0,
        address: user::leave_user as *const () as u64,
    };
    // SAFETY: the callback brings the user code's syscall back to `in_user`.
    unsafe { hypercall::callback_register(&cb) }.map_err(XenError::to_ret)?;
    Ok(())
}

/// Runs the user code at `code` (one instruction, then `syscall`) with `rdx`, resuming at
/// `done` if the instruction traps; returns the trap's vector.
fn in_user(code: u64, done: u64, rdx: u64) -> Option<u64> {
    let before = TRAP.get().count;
    RESUME.set(done);
    // SAFETY: user_setup put the user page table, kernel stack and syscall callback in
    // place; the user code ends with a syscall, which brings us back here.
    unsafe { user::enter_user(code, stack_top(&USER_STACK), rdx) };
    RESUME.set(0);
    let rec = TRAP.get();
    (rec.count != before).then_some(rec.vector)
}

/// `trap.*`: trap handlers, callbacks and stacks in the hypervisor's range, and privileged
/// instructions from guest kernel and user mode.
pub fn run(r: &mut Report) {
    const HV: u64 = 0xffff_8000_0010_0000;
    const NON_CANONICAL: u64 = 0x0000_8000_0000_1000;
    for (name, address, expect) in [
        (
            "trap.set_trap_table handler in the hypervisor range",
            HV,
            err(XenError::Inval).xen(Want::Ok),
        ),
        (
            "trap.set_trap_table handler at a non-canonical address",
            NON_CANONICAL,
            err(XenError::Inval),
        ),
    ] {
        let table = [
            TrapInfo {
                vector: 14,
                flags: 0,
                cs: FLAT_KERNEL_CS,
                _hole: 0,
                address,
            },
            TrapInfo::default(),
        ];
        // SAFETY: the handler is refused, or (on Xen) replaced by the real table right after,
        // before any page fault can happen.
        let ret =
            unsafe { hypercall::raw(Hypercall::SetTrapTable, [table.as_ptr() as u64, 0, 0, 0, 0]) };
        let _ = install();
        r.ret(name, ret, expect);
    }
    for (name, address, expect) in [
        (
            "trap.callback_op event callback in the hypervisor range",
            HV,
            err(XenError::Inval).xen(Want::Ok),
        ),
        (
            "trap.callback_op event callback at a non-canonical address",
            NON_CANONICAL,
            err(XenError::Inval),
        ),
    ] {
        let cb = CallbackRegister {
            type_: CallbackType::Event as u16,
            flags: 0,
            _hole: 0,
            address,
        };
        // SAFETY: events stay masked for the whole run, so the event callback never runs.
        let ret = unsafe { hypercall::callback_register(&cb) }
            .map_or_else(XenError::to_ret, |v| v as i64);
        r.ret(name, ret, expect);
    }
    // SAFETY: as above; the syscall address is refused or never used before user_setup
    // registers the real one.
    let ret = unsafe { hypercall::raw(Hypercall::SetCallbacks, [HV, HV, HV, 0, 0]) };
    r.ret(
        "trap.set_callbacks in the hypervisor range",
        ret,
        err(XenError::Inval).xen(Want::Ok),
    );
    // SAFETY: events stay masked and no syscall comes before user_setup registers the real
    // callback, so none of these addresses is ever jumped to.
    let ret = unsafe { hypercall::raw(Hypercall::SetCallbacks, [0, 0, NON_CANONICAL, 0, 0]) };
    r.ret(
        "trap.set_callbacks syscall at a non-canonical address",
        ret,
        err(XenError::Inval).xen(Want::Ok),
    );
    let cb = [CallbackType::Event as u64 | (1 << 16), 0];
    // SAFETY: unregistering the event callback is refused by both hypervisors.
    let ret = unsafe { hypercall::raw(Hypercall::CallbackOp, [1, cb.as_ptr() as u64, 0, 0, 0]) };
    r.ret(
        "trap.callback_op unregister the event callback",
        ret,
        err(XenError::Inval),
    );
    // SAFETY: no pointer; the debug registers are refused.
    let ret = unsafe { hypercall::raw(Hypercall::SetDebugreg, [0, HV, 0, 0, 0]) };
    r.ret(
        "trap.set_debugreg DR0 in the hypervisor range",
        ret,
        err(XenError::Perm),
    );
    // SAFETY: as above.
    let ret = unsafe { hypercall::raw(Hypercall::SetDebugreg, [7, 1 << 13, 0, 0, 0]) };
    r.ret(
        "trap.set_debugreg DR7 general detect",
        ret,
        err(XenError::Perm),
    );
    // SAFETY: a non-canonical base is refused.
    let ret = unsafe { hypercall::raw(Hypercall::SetSegmentBase, [0, NON_CANONICAL, 0, 0, 0]) };
    r.ret(
        "trap.set_segment_base FS non-canonical",
        ret,
        err(XenError::Inval),
    );
    // SAFETY: as above.
    let ret = unsafe { hypercall::raw(Hypercall::SetSegmentBase, [2, NON_CANONICAL, 0, 0, 0]) };
    r.ret(
        "trap.set_segment_base kernel GS non-canonical",
        ret,
        err(XenError::Inval),
    );

    privileged_instructions(r);
    user_mode(r);
}

/// `priv.*` (kernel mode): port I/O without and with a virtual IOPL, MSRs outside the allowed
/// set, control registers.
fn privileged_instructions(r: &mut Report) {
    let set_iopl = |iopl: u64| {
        let arg = [iopl as u32];
        // SAFETY: physdev_op(set_iopl) reads one u32.
        unsafe { hypercall::raw(Hypercall::PhysdevOp, [6, arg.as_ptr() as u64, 0, 0, 0]) }
    };
    r.ret("priv.set_iopl 4", set_iopl(4), err(XenError::Inval));
    r.ret("priv.set_iopl 0", set_iopl(0), OK);
    let value: u64;
    let trap = trapped!("in al, dx"; inout("rax") 0u64 => value, in("rdx") 0x3fdu64);
    r.case(
        "priv.in 0x3fd (serial LSR) at IOPL 0",
        got(trap, value & 0xff),
        Expect::trap(13),
    );
    let trap = trapped!("out dx, al"; in("rax") 0x41u64, in("rdx") 0x3f8u64);
    r.case(
        "priv.out 0x3f8 (serial) at IOPL 0",
        got(trap, 0),
        Expect::trap(13),
    );
    let trap = trapped!("cli");
    r.case("priv.cli at IOPL 0", got(trap, 0), Expect::trap(13));
    r.ret("priv.set_iopl 1", set_iopl(1), OK);
    let value: u64;
    let trap = trapped!("in al, dx"; inout("rax") 0u64 => value, in("rdx") 0x3fdu64);
    r.case(
        "priv.in 0x3fd (serial, the hypervisor's) at IOPL 1 reads all-ones",
        got(trap, value & 0xff),
        crate::report::same(Want::Value(0xff)),
    );
    let value: u64;
    let trap = trapped!("in eax, dx"; inout("rax") 0u64 => value, in("rdx") 0xcfcu64);
    let _ = (trap, value);
    for (name, msr) in [
        ("priv.wrmsr LSTAR (syscall entry)", 0xc000_0082u64),
        ("priv.wrmsr SYSENTER_EIP", 0x176),
        ("priv.wrmsr EFER", 0xc000_0080),
        ("priv.wrmsr APIC_BASE", 0x1b),
        ("priv.wrmsr TSC", 0x10),
    ] {
        let trap = trapped!("wrmsr"; in("rcx") msr, in("rax") 0u64, in("rdx") 0u64);
        r.case(name, got(trap, 0), Expect::trap(13));
    }
    let trap = trapped!("wrmsr"; in("rcx") 0xc000_0100u64, in("rax") 0u64, in("rdx") 0x8000u64);
    r.case(
        "priv.wrmsr FS_BASE non-canonical",
        got(trap, 0),
        Expect::trap(13),
    );
    let trap = trapped!("mov cr3, rax"; in("rax") 0x1000u64);
    r.case(
        "priv.mov to CR3 of a frame not a table",
        got(trap, 0),
        Expect::trap(13),
    );
    let trap = trapped!("lidt [rax]"; in("rax") mem::scratch(0));
    r.case("priv.lidt", got(trap, 0), Expect::trap(13));
    let trap = trapped!("ltr ax"; in("rax") 0x28u64);
    r.case("priv.ltr", got(trap, 0), Expect::trap(13));
}

/// `user.*`: what guest user mode may not do even when the kernel may.
fn user_mode(r: &mut Report) {
    if let Err(e) = user_setup() {
        r.ret(
            "user.setup (NEW_USER_BASEPTR, stack_switch, syscall callback)",
            e,
            OK,
        );
        return;
    }
    let trap = in_user(addr(attack_user_in), addr(attack_user_in_done), 0x80);
    r.case(
        "user.in 0x80 from user mode at IOPL 1",
        got(trap, 0),
        Expect::trap(13),
    );
    let trap = in_user(addr(attack_user_cli), addr(attack_user_cli_done), 0);
    r.case(
        "user.cli from user mode at IOPL 1",
        got(trap, 0),
        Expect::trap(13),
    );
    let trap = in_user(addr(attack_user_rdmsr), addr(attack_user_rdmsr_done), 0);
    r.case(
        "user.rdmsr FS_BASE from user mode",
        got(trap, 0),
        Expect::trap(13),
    );
}

impl Expect {
    /// The exception `vector` everywhere.
    pub const fn trap(vector: u64) -> Self {
        crate::report::same(Want::Trap(vector))
    }
}

/// Runs the fatal case `name`: the domain must crash (and the hypervisor stay up).
pub fn fatal(name: &[u8]) {
    println!("attack: fatal case {}", name.escape_ascii());
    match name {
        b"iret-ring0-cs" => iret_to(0xffff_ffff_8020_0000, 0xe008),
        b"iret-noncanonical-rip" => iret_to(0x0000_8000_0000_0000, KERNEL_CS_RPL0),
        b"iret-hypervisor-rip" => iret_to(0xffff_8000_0010_0000, KERNEL_CS_RPL0),
        b"kernel-stack-in-hypervisor" => {
            if user_setup().is_err() {
                println!("attack: user-mode setup failed");
                return;
            }
            // SAFETY: the kernel stack is refused when the trap comes: the domain dies.
            let _ = unsafe { hypercall::stack_switch(FLAT_KERNEL_SS, 0xffff_8000_0010_0000) };
            let _ = in_user(addr(attack_user_int3), 0, 0);
        }
        _ => {
            println!("attack: no fatal case {}", name.escape_ascii());
            return;
        }
    }
    println!(
        "FAIL attack.fatal {}: the domain survived",
        name.escape_ascii()
    );
}

/// The guest kernel's code selector as a bounce frame shows it (RPL 0: return to the kernel).
const KERNEL_CS_RPL0: u64 = FLAT_KERNEL_CS as u64 & !3;

/// An `iret` hypercall to `rip` with code selector `cs`.
fn iret_to(rip: u64, cs: u64) -> ! {
    // SAFETY: the frame is refused and the domain crashed; if the hypervisor accepted it, the
    // guest would run at `rip`, which is what the case reports as a failure (it never gets
    // here then).
    unsafe {
        core::arch::asm!(
            "push {ss}",
            "push {rsp}",
            "push 2",
            "push {cs}",
            "push {rip}",
            "push 0",
            "jmp {hypercall_page} + {iret_stub}",
            ss = in(reg) u64::from(FLAT_USER_SS),
            rsp = in(reg) stack_top(&USER_STACK),
            cs = in(reg) cs,
            rip = in(reg) rip,
            hypercall_page = sym guest_abi::runtime::hypercall_page,
            iret_stub = const IRET_STUB,
            options(noreturn),
        );
    }
}
