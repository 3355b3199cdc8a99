//! `fault.*` and `trap.*`: bad guest pointers give `-EFAULT`; exceptions and software
//! interrupts bounce to the virtual IDT with the frame Xen pushes.

use guest_abi::XenError;
use guest_abi::arch::{FLAT_KERNEL_CS, FLAT_KERNEL_SS, HYPERVISOR_VIRT_START};
use guest_abi::hypercall::Hypercall;
use guest_abi::memory::MemoryOp;
use guest_abi::version::XenVersionOp;
use guest_abi::xen::{ConsoleIoCmd, StartInfo};

use crate::check::{Report, Why, eq, refused};
use crate::domain;
use crate::traps::{Outcome, R11_MAGIC, RCX_MAGIC, provoke};

/// `rflags.IF`.
pub const IF: u64 = 1 << 9;
/// `rflags.IOPL`.
pub const IOPL: u64 = 3 << 12;

/// An unmapped address (the builder maps nothing in the low half).
pub const UNMAPPED: u64 = 0x0000_0000_5a5a_5128;
/// A non-canonical address.
const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;

pub fn bad_pointers(r: &mut Report) {
    for (name, addr) in [
        ("fault.console_io write from unmapped address", UNMAPPED),
        (
            "fault.console_io write from hypervisor range",
            HYPERVISOR_VIRT_START,
        ),
        (
            "fault.console_io write from hypervisor range (+3 TiB)",
            HYPERVISOR_VIRT_START + (3 << 40),
        ),
        (
            "fault.console_io write from non-canonical address",
            NON_CANONICAL,
        ),
    ] {
        let args = [ConsoleIoCmd::Write as u64, 16, addr, 0, 0];
        // SAFETY: the hypervisor must refuse the buffer; it is no memory of ours.
        unsafe { refused(r, name, Hypercall::ConsoleIo, args, XenError::Fault) };
    }
    // SAFETY: as above; Xen would write the feature info there.
    unsafe {
        refused(
            r,
            "fault.xen_version get_features to unmapped address",
            Hypercall::XenVersion,
            [XenVersionOp::GetFeatures as u64, UNMAPPED, 0, 0, 0],
            XenError::Fault,
        )
    };
    // SAFETY: as above; Xen would write the mapping there.
    unsafe {
        refused(
            r,
            "fault.memory_op machphys_mapping to hypervisor range",
            Hypercall::MemoryOp,
            [
                MemoryOp::MachphysMapping as u64,
                HYPERVISOR_VIRT_START,
                0,
                0,
                0,
            ],
            XenError::Fault,
        )
    };
}

/// Checks the frame of one trap taken in kernel mode from a [`provoke!`] block: the
/// vector, the error code, `rip`, CS with RPL 0 and the saved event mask (1: events stay
/// masked in this kernel) in bits 32-39, IF clear accordingly, IOPL clear, the interrupted
/// `rsp` and SS, `rcx`/`r11` in the frame and back after the `iret`, and the frame placed
/// below the 16-byte aligned stack pointer.
pub fn kernel_frame(o: &Outcome, vector: u64, err: Option<u64>, rip: u64) -> Result<(), Why> {
    let t = &o.frame;
    let f = &t.frame;
    eq("traps taken", o.traps, 1)?;
    eq("vector", t.vector, vector)?;
    match err {
        Some(err) => {
            eq("error code present", t.has_err, 1)?;
            eq("error code", t.err, err)?;
        }
        None => eq("error code present", t.has_err, 0)?,
    }
    eq("rip", f.rip, rip)?;
    eq("cs", f.cs & 0xffff, u64::from(FLAT_KERNEL_CS & !3))?;
    eq("saved upcall mask (cs bits 32-39)", (f.cs >> 32) & 0xff, 1)?;
    eq("rflags.IF", f.rflags & IF, 0)?;
    eq("rflags.IOPL", f.rflags & IOPL, 0)?;
    eq("rsp", f.rsp, o.rsp)?;
    eq("ss", f.ss, u64::from(FLAT_KERNEL_SS))?;
    eq("rcx in frame", f.rcx, RCX_MAGIC)?;
    eq("r11 in frame", f.r11, R11_MAGIC)?;
    eq("rcx after iret", o.rcx, RCX_MAGIC)?;
    eq("r11 after iret", o.r11, R11_MAGIC)?;
    eq(
        "handler rsp",
        f.handler_rsp,
        (o.rsp & !15) - 8 * (7 + t.has_err),
    )
}

/// The frame of a #PF, and the faulting address in `vcpu_info.arch.cr2`.
fn page_fault(o: &Outcome, err: u64, addr: u64) -> Result<(), Why> {
    kernel_frame(o, 14, Some(err), o.fault)?;
    match domain::vcpu0_cr2() {
        Some(cr2) => eq("vcpu_info.arch.cr2", cr2, addr),
        None => Err(Why::Text("shared_info is not mapped (see mmu.*)")),
    }
}

pub fn traps(r: &mut Report, si: &StartInfo) {
    let o = provoke!(next; "div r9"; in("r9") 0u64, inout("rax") 1u64 => _, inout("rdx") 0u64 => _);
    r.check("trap.#DE frame", kernel_frame(&o, 0, None, o.fault));

    let o = provoke!(next; "ud2");
    r.check("trap.#UD frame", kernel_frame(&o, 6, None, o.fault));

    let o = provoke!(next; "int 0x41");
    r.check(
        "trap.#GP frame (int 0x41, no handler)",
        kernel_frame(&o, 13, Some((0x41 << 3) | 2), o.fault),
    );

    let o = provoke!(next; "int3");
    r.check(
        "trap.#BP frame (rip after int3)",
        kernel_frame(&o, 3, None, o.next),
    );

    let o = provoke!(next; "int 0x80");
    r.check(
        "trap.int 0x80 through the virtual IDT (DPL 3)",
        kernel_frame(&o, 0x80, None, o.next),
    );

    let o = provoke!(next; "mov {t}, qword ptr [{a}]"; a = in(reg) UNMAPPED, t = out(reg) _);
    r.check(
        "trap.#PF read of unmapped address",
        page_fault(&o, 0, UNMAPPED),
    );

    let o = provoke!(next; "mov qword ptr [{a}], {t}"; a = in(reg) UNMAPPED + 8, t = in(reg) 0u64);
    r.check(
        "trap.#PF write to unmapped address",
        page_fault(&o, 2, UNMAPPED + 8),
    );

    // The bootstrap L4 is mapped read-only (it is a page table); write back what its
    // unused slot 300 holds.
    let slot = si.pt_base + 300 * 8;
    // SAFETY: the L4 is mapped (read-only) in the bootstrap region.
    let value = unsafe { (slot as *const u64).read_volatile() };
    let o = provoke!(next; "mov qword ptr [{a}], {t}"; a = in(reg) slot, t = in(reg) value);
    r.check(
        "trap.#PF write to read-only page table",
        page_fault(&o, 3, slot),
    );
}
