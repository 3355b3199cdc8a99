//! `privop.*` and `fpu.*`: privileged instructions the hypervisor emulates for a PV
//! kernel (forced-emulation CPUID, segment-base and PAT MSRs, control-register reads, port
//! I/O and `cli`/`sti` under the virtual IOPL), and the lazy FPU switch (`#NM`).

use guest_abi::arch::{SEGBASE_FS, SEGBASE_GS_KERNEL};
use guest_abi::runtime::hypercall;
use guest_abi::xen::StartInfo;

use crate::check::{Report, Why, ensure, eq, ok};
use crate::domain;
use crate::exceptions::kernel_frame;
use crate::hypercalls::{FS_DATA, GS_KERNEL_DATA, GS_USER_DATA, read_gs, set_base};
use crate::traps::{Outcome, TRAP, TRAP_RESUME, emulate, provoke};

const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_SHADOW_GS_BASE: u32 = 0xc000_0102;
const MSR_PAT: u32 = 0x277;
/// An MSR no CPU has.
const MSR_UNKNOWN: u32 = 0x1234;
/// The PAT layout Xen gives PV guests (and runs the host with).
const XEN_PAT: u64 = 0x0000_0501_0007_0406;

const CR0_PE: u64 = 1 << 0;
const CR0_TS: u64 = 1 << 3;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
/// CPUID.1:ECX.VMX.
const CPUID1_ECX_VMX: u32 = 1 << 5;
/// CPUID.1:ECX.HYPERVISOR.
const CPUID1_ECX_HYPERVISOR: u32 = 1 << 31;

/// No trap was taken.
fn emulated(o: &Outcome) -> Result<(), Why> {
    if o.traps == 0 {
        Ok(())
    } else {
        Err(Why::Diff {
            what: "not emulated: trapped with vector",
            got: o.frame.vector,
            want: 0,
        })
    }
}

/// `rdmsr`, and whether it was emulated.
fn rdmsr(msr: u32) -> (Outcome, u64) {
    let lo: u64;
    let hi: u64;
    let o = emulate!("rdmsr"; in("ecx") msr, out("eax") lo, out("edx") hi);
    (o, (hi << 32) | (lo & 0xffff_ffff))
}

/// `wrmsr`.
fn wrmsr(msr: u32, value: u64) -> Outcome {
    emulate!("wrmsr"; in("ecx") msr, in("eax") value & 0xffff_ffff, in("edx") value >> 32)
}

/// Forced-emulation CPUID (`ud2; .ascii "xen"; cpuid`): `[eax, ebx, ecx, edx]`, or the
/// vector of the trap it raised instead.
fn forced_cpuid(leaf: u32) -> Result<[u32; 4], Why> {
    let before = TRAP.get().count;
    let (a, c, d): (u32, u32, u32);
    let b: u64;
    // SAFETY: rbx (reserved by LLVM) is saved and restored around the instruction; if the
    // hypervisor does not emulate it, the #UD resumes at 8:, where rbx is restored too.
    unsafe {
        core::arch::asm!(
            "lea {t}, [rip + 8f]",
            "mov qword ptr [rip + {resume}], {t}",
            "mov {save}, rbx",
            "ud2",
            ".ascii \"xen\"",
            "cpuid",
            "mov {t:e}, ebx",
            "8:",
            "mov rbx, {save}",
            "mov qword ptr [rip + {resume}], 0",
            t = out(reg) b,
            save = out(reg) _,
            resume = sym TRAP_RESUME,
            inout("eax") leaf => a,
            inout("ecx") 0u32 => c,
            out("edx") d,
        );
    }
    let frame = TRAP.get();
    if frame.count != before {
        return Err(Why::Diff {
            what: "not emulated: trapped with vector",
            got: frame.vector,
            want: 0,
        });
    }
    Ok([a, b as u32, c, d])
}

fn read_cr(n: u8) -> (Outcome, u64) {
    let v: u64;
    let o = match n {
        0 => emulate!("mov {v}, cr0"; v = out(reg) v),
        2 => emulate!("mov {v}, cr2"; v = out(reg) v),
        3 => emulate!("mov {v}, cr3"; v = out(reg) v),
        _ => emulate!("mov {v}, cr4"; v = out(reg) v),
    };
    (o, v)
}

fn cpuid_checks(r: &mut Report) {
    r.check(
        "privop.cpuid forced emulation: leaf 0x40000000 signature",
        forced_cpuid(0x4000_0000).and_then(|[max, b, c, d]| {
            let mut sig = [0u8; 12];
            sig[..4].copy_from_slice(&b.to_le_bytes());
            sig[4..8].copy_from_slice(&c.to_le_bytes());
            sig[8..].copy_from_slice(&d.to_le_bytes());
            ensure(&sig == b"XenVMMXenVMM", "signature is not XenVMMXenVMM")?;
            ensure(max >= 0x4000_0002, "max leaf below 0x40000002")
        }),
    );
    r.check(
        "privop.cpuid forced emulation: leaf 1 hides VMX, shows hypervisor",
        forced_cpuid(1).and_then(|[_, _, c, _]| {
            eq("ecx.VMX", u64::from(c & CPUID1_ECX_VMX), 0)?;
            eq(
                "ecx.HYPERVISOR",
                u64::from(c & CPUID1_ECX_HYPERVISOR),
                u64::from(CPUID1_ECX_HYPERVISOR),
            )
        }),
    );
}

fn msr_checks(r: &mut Report) {
    let base = FS_DATA.addr() + 8;
    let w = wrmsr(MSR_FS_BASE, base);
    let (o, v) = rdmsr(MSR_FS_BASE);
    let mut fs0 = 0u64;
    if w.traps == 0 {
        // SAFETY: a load through FS, whose base now points at FS_DATA[1].
        unsafe {
            core::arch::asm!("mov {v}, qword ptr fs:[0]", v = out(reg) fs0,
                options(nostack, readonly, preserves_flags));
        }
    }
    r.check(
        "privop.wrmsr/rdmsr FS_BASE",
        emulated(&w)
            .and_then(|_| emulated(&o))
            .and_then(|_| eq("rdmsr", v, base))
            .and_then(|_| eq("fs:[0]", fs0, FS_DATA.get()[1])),
    );
    let _ = set_base(SEGBASE_FS, 0);

    // Point the kernel GS base elsewhere with the hypercall, back with wrmsr.
    let _ = set_base(SEGBASE_GS_KERNEL, FS_DATA.addr());
    let w = wrmsr(MSR_GS_BASE, GS_KERNEL_DATA.addr());
    let (o, v) = rdmsr(MSR_GS_BASE);
    let gs0 = if w.traps == 0 { read_gs() } else { 0 };
    r.check(
        "privop.wrmsr/rdmsr GS_BASE",
        emulated(&w)
            .and_then(|_| emulated(&o))
            .and_then(|_| eq("rdmsr", v, GS_KERNEL_DATA.addr()))
            .and_then(|_| eq("gs:[0]", gs0, GS_KERNEL_DATA.get())),
    );
    let _ = set_base(SEGBASE_GS_KERNEL, GS_KERNEL_DATA.addr());

    let (o, v) = rdmsr(MSR_SHADOW_GS_BASE);
    r.check(
        "privop.rdmsr SHADOW_GS_BASE is the user GS base",
        emulated(&o).and_then(|_| eq("rdmsr", v, GS_USER_DATA.addr())),
    );
    let (o, v) = rdmsr(MSR_PAT);
    r.check(
        "privop.rdmsr PAT",
        emulated(&o).and_then(|_| eq("PAT", v, XEN_PAT)),
    );
    let (o, _) = rdmsr(MSR_UNKNOWN);
    r.check(
        "privop.rdmsr unknown MSR raises #GP(0)",
        eq("traps taken", o.traps, 1)
            .and_then(|_| eq("vector", o.frame.vector, 13))
            .and_then(|_| eq("error code", o.frame.err, 0))
            .and_then(|_| eq("rip", o.frame.frame.rip, o.fault)),
    );
}

fn cr_checks(r: &mut Report, si: &StartInfo) {
    let set = hypercall::fpu_taskswitch(true);
    let (o1, with_ts) = read_cr(0);
    let clear = hypercall::fpu_taskswitch(false);
    let (o2, without_ts) = read_cr(0);
    r.check(
        "privop.mov from CR0 (TS follows fpu_taskswitch)",
        ok("fpu_taskswitch", set.and(clear))
            .and_then(|_| emulated(&o1))
            .and_then(|_| emulated(&o2))
            .and_then(|_| eq("PE|PG", with_ts & (CR0_PE | CR0_PG), CR0_PE | CR0_PG))
            .and_then(|_| eq("TS after fpu_taskswitch(1)", with_ts & CR0_TS, CR0_TS))
            .and_then(|_| eq("TS after fpu_taskswitch(0)", without_ts & CR0_TS, 0)),
    );
    let (o, cr2) = read_cr(2);
    r.check(
        "privop.mov from CR2 (last #PF address)",
        emulated(&o).and_then(|_| eq("cr2", cr2, si.pt_base + 300 * 8)),
    );
    let (o, cr3) = read_cr(3);
    r.check(
        "privop.mov from CR3 (L4 machine address)",
        emulated(&o).and_then(|_| eq("cr3", cr3, domain::l4_mfn(si) << 12)),
    );
    let (o, cr4) = read_cr(4);
    r.check(
        "privop.mov from CR4",
        emulated(&o).and_then(|_| eq("PAE", cr4 & CR4_PAE, CR4_PAE)),
    );
}

fn io_checks(r: &mut Report) {
    // Without I/O privilege, port I/O and cli raise #GP(0).
    let iopl0 = hypercall::set_iopl(0);
    let o = provoke!(next; "in al, 0x21"; out("al") _);
    r.check(
        "privop.in without IOPL raises #GP(0)",
        ok("set_iopl(0)", iopl0).and_then(|_| kernel_frame(&o, 13, Some(0), o.fault)),
    );
    let o = provoke!(next; "cli");
    r.check(
        "privop.cli without IOPL raises #GP(0)",
        kernel_frame(&o, 13, Some(0), o.fault),
    );

    // With IOPL 1, dom0's denied ports (the PICs) read as all ones and writes vanish.
    let iopl1 = hypercall::set_iopl(1);
    let byte: u8;
    let o = emulate!("in al, 0x21"; out("al") byte);
    r.check(
        "privop.in byte from denied port (all ones)",
        ok("set_iopl(1)", iopl1)
            .and_then(|_| emulated(&o))
            .and_then(|_| eq("in al, 0x21", byte.into(), 0xff)),
    );
    let word: u16;
    let o = emulate!("in ax, dx"; in("dx") 0xa0u16, out("ax") word);
    r.check(
        "privop.in word from denied port (all ones)",
        emulated(&o).and_then(|_| eq("in ax, 0xa0", word.into(), 0xffff)),
    );
    let o = emulate!("out 0x21, al"; in("al") 0xffu8);
    r.check("privop.out to denied port (dropped)", emulated(&o));
    let o = emulate!("cli", "sti");
    r.check("privop.cli/sti with IOPL 1", emulated(&o));
}

/// `fpu_taskswitch(1)`, then an SSE instruction: `#NM` reaches the guest at that
/// instruction, which runs again after the handler, with `xmm0` intact.
fn fpu_checks(r: &mut Report) {
    const PATTERN: u64 = 0x0123_4567_89ab_cdef;
    let before = TRAP.get().count;
    let fault: u64;
    let seen: u64;
    // SAFETY: this target is soft-float, so no Rust code uses xmm0 (the test owns it);
    // the hypercall stub follows the syscall convention (clobbers declared); the #NM
    // handler resumes at 7:, which then runs without a trap.
    unsafe {
        core::arch::asm!(
            "movq xmm0, {pattern}",
            "mov edi, 1",
            "call {stub}",
            "lea {fault}, [rip + 7f]",
            "mov qword ptr [rip + {resume}], {fault}",
            "7:",
            "movq {seen}, xmm0",
            "mov qword ptr [rip + {resume}], 0",
            pattern = in(reg) PATTERN,
            stub = in(reg) guest_abi::runtime::hypercall_page as *const () as u64
                + guest_abi::Hypercall::FpuTaskswitch.stub_offset() as u64,
            fault = out(reg) fault,
            seen = out(reg) seen,
            resume = sym TRAP_RESUME,
            out("rax") _, out("rdi") _, out("rsi") _, out("rdx") _, out("r10") _,
            out("r8") _, out("rcx") _, out("r11") _,
        );
    }
    let frame = TRAP.get();
    let (o, cr0) = read_cr(0);
    r.check(
        "fpu.#NM after fpu_taskswitch(1)",
        eq("traps taken", frame.count - before, 1)
            .and_then(|_| eq("vector", frame.vector, 7))
            .and_then(|_| eq("error code present", frame.has_err, 0))
            .and_then(|_| eq("rip", frame.frame.rip, fault)),
    );
    r.check("fpu.xmm0 survives the #NM", eq("xmm0", seen, PATTERN));
    r.check(
        "fpu.#NM clears the virtual CR0.TS",
        emulated(&o).and_then(|_| eq("CR0.TS", cr0 & CR0_TS, 0)),
    );
}

pub fn run(r: &mut Report, si: &StartInfo) {
    cpuid_checks(r);
    msr_checks(r);
    cr_checks(r, si);
    io_checks(r);
    fpu_checks(r);
}
