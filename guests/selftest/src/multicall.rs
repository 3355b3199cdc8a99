//! `multicall.*`: a batch with per-entry results, and what Xen does with a nested
//! multicall and with an `iret` inside a multicall.

use guest_abi::arch::{FLAT_KERNEL_CS, FLAT_KERNEL_SS};
use guest_abi::hypercall::Hypercall;
use guest_abi::runtime::hypercall;
use guest_abi::sched::SchedOp;
use guest_abi::version::XenVersionOp;
use guest_abi::xen::{MulticallEntry, VmAssistCmd};
use guest_abi::{XenError, println};

use crate::check::{Report, Why, eq, refused};
use crate::exceptions::UNMAPPED;
use crate::traps::{R11_MAGIC, RCX_MAGIC};

/// What an entry's result holds before the hypervisor runs it.
const SENTINEL: u64 = 0x5e5e_5e5e_5e5e_5e5e;
/// `xen_version(XENVER_version)` on Xen 4.17.
const VERSION: u64 = (4 << 16) | 17;
/// The `rax` the `iret` context inside the multicall carries.
const IRET_RAX: u64 = 0x1234;

fn entry(op: u64, args: [u64; 6]) -> MulticallEntry {
    MulticallEntry {
        op,
        result: SENTINEL,
        args,
    }
}

fn version_entry() -> MulticallEntry {
    entry(
        Hypercall::XenVersion as u64,
        [XenVersionOp::Version as u64, 0, 0, 0, 0, 0],
    )
}

/// `-errno` as an entry's result.
const fn errno(e: XenError) -> u64 {
    e.to_ret() as u64
}

pub fn run(r: &mut Report) {
    let mut calls = [
        version_entry(),
        entry(
            Hypercall::VmAssist as u64,
            [VmAssistCmd::Enable as u64, 6, 0, 0, 0, 0],
        ),
        entry(Hypercall::Arch7 as u64, [0; 6]),
        entry(
            Hypercall::SchedOp as u64,
            [SchedOp::Yield as u64, 0, 0, 0, 0, 0],
        ),
        entry(
            Hypercall::XenVersion as u64,
            [XenVersionOp::Pagesize as u64, 0, 0, 0, 0, 0],
        ),
    ];
    // SAFETY: every entry takes no pointer (or is refused).
    let ret = unsafe { hypercall::multicall(&mut calls) };
    r.check_eq(
        "multicall.per-entry results",
        (ret, calls.map(|c| c.result)),
        (
            Ok(0),
            [
                VERSION,
                errno(XenError::Inval),
                errno(XenError::NoSys),
                0,
                4096,
            ],
        ),
    );

    let mut inner = [version_entry()];
    let mut calls = [
        version_entry(),
        entry(
            Hypercall::Multicall as u64,
            [inner.as_mut_ptr() as u64, 1, 0, 0, 0, 0],
        ),
        version_entry(),
    ];
    // SAFETY: as above; the nested list is valid for the call.
    let ret = unsafe { hypercall::multicall(&mut calls) };
    r.check_eq(
        "multicall.nested multicall is refused",
        (ret, calls.map(|c| c.result), inner[0].result),
        (Ok(0), [VERSION, errno(XenError::Inval), VERSION], SENTINEL),
    );

    // SAFETY: an empty batch.
    r.check_eq(
        "multicall.empty batch",
        unsafe { hypercall::multicall(&mut []) },
        Ok(0),
    );
    // SAFETY: the hypervisor must refuse the list; it is no memory of ours.
    unsafe {
        refused(
            r,
            "multicall.unmapped list",
            Hypercall::Multicall,
            [UNMAPPED, 1, 0, 0, 0],
            XenError::Fault,
        )
    };

    r.check("multicall.iret inside a multicall", iret_inside());
}

/// A multicall of `[xen_version, iret, xen_version]` made with our own `syscall` while
/// `rsp` points at an `iret_context` that resumes at 7: with `rax` = [`IRET_RAX`].
fn iret_inside() -> Result<(), Why> {
    let mut calls = [
        version_entry(),
        entry(Hypercall::Iret as u64, [0; 6]),
        version_entry(),
    ];
    let list = calls.as_mut_ptr() as u64;
    let path: u64;
    let rax: u64;
    let rcx: u64;
    let r11: u64;
    // SAFETY: the iret_context built on the stack resumes at 7: on this same stack (its
    // rsp is the one saved before the pushes), in kernel mode (CS RPL 0), with events
    // still masked (IF clear); if the hypervisor returns from the multicall instead, the
    // stack is restored just the same. Registers other than rax, rcx and r11 are kept by
    // the hypervisor; the hypercall argument registers are declared clobbered anyway.
    unsafe {
        core::arch::asm!(
            "mov {saved}, rsp",
            "lea {t}, [rip + 7f]",
            "push {ss}",
            "push {saved}",
            "push 2",
            "push {cs}",
            "push {t}",
            "push 0",
            "mov {t}, {rcx_magic}",
            "push {t}",
            "mov {t}, {r11_magic}",
            "push {t}",
            "push {iret_rax}",
            "mov rdi, {list}",
            "mov esi, 3",
            "mov eax, {multicall}",
            "syscall",
            "mov rsp, {saved}",
            "mov {path}, 1",
            "jmp 8f",
            "7:",
            "mov {path}, 2",
            "8:",
            saved = out(reg) _,
            t = out(reg) _,
            path = out(reg) path,
            list = in(reg) list,
            ss = const FLAT_KERNEL_SS,
            cs = const FLAT_KERNEL_CS & !3,
            rcx_magic = const RCX_MAGIC,
            r11_magic = const R11_MAGIC,
            iret_rax = const IRET_RAX,
            multicall = const Hypercall::Multicall as u32,
            out("rax") rax,
            out("rcx") rcx,
            out("r11") r11,
            out("rdi") _,
            out("rsi") _,
            out("rdx") _,
            out("r10") _,
            out("r8") _,
        );
    }
    let results = calls.map(|c| c.result);
    println!(
        "selftest: iret in multicall: path {path} rax {rax:#x} rcx {rcx:#x} r11 {r11:#x} results {results:#x?}"
    );
    eq(
        "resumed at the iret context's rip (2) or returned (1)",
        path,
        2,
    )?;
    eq("rax", rax, IRET_RAX)?;
    eq("rcx", rcx, RCX_MAGIC)?;
    eq("r11", r11, R11_MAGIC)?;
    eq("result 0", results[0], VERSION)?;
    eq("result 1 (iret)", results[1], IRET_RAX)?;
    eq("result 2 (after the iret: not run)", results[2], SENTINEL)
}
