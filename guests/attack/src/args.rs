//! `args.*`: hostile hypercall arguments. Pointers into the hypervisor's range, non-canonical
//! and unmapped pointers; huge and negative counts in `multicall`, `mmu_update` and
//! `mmuext_op` (over an array that runs into an unmapped guard page); nested multicalls and a
//! multicall whose entries overwrite the next one; overlapping in and out buffers; unknown
//! sub-operations and hypercall numbers.
//!
//! Scratch page 1 is unmapped (the `mmu` cases gave it back): arrays placed at the end of page
//! 0 run into it.

use guest_abi::hypercall::Hypercall;
use guest_abi::runtime::hypercall;
use guest_abi::{DomId, XenError};

use crate::mem::{self, scratch};
use crate::mmu::{multicall, run_multicall};
use crate::report::{Got, OK, Report, Want, err, same};

const HV: u64 = 0xffff_8000_0000_1000;
const NON_CANONICAL: u64 = 0x0000_8000_0000_1000;

fn raw(op: Hypercall, args: [u64; 5]) -> i64 {
    // SAFETY: every call here is refused, or only reads and writes the cases' own buffers.
    unsafe { hypercall::raw(op, args) }
}

fn self_dom() -> u64 {
    u64::from(DomId::SELF.0)
}

/// The unmapped guard page.
fn guard() -> u64 {
    scratch(1)
}

pub fn run(r: &mut Report) {
    let mut done = 0u32;
    let pdone = &raw mut done as u64;
    for (what, ptr) in [
        ("in the hypervisor range", HV),
        ("non-canonical", NON_CANONICAL),
        ("unmapped", guard()),
    ] {
        let _ = what;
        let names = match ptr {
            HV => [
                "args.mmu_update requests in the hypervisor range",
                "args.mmuext_op requests in the hypervisor range",
                "args.multicall list in the hypervisor range",
                "args.set_trap_table list in the hypervisor range",
                "args.console_io write from the hypervisor range",
            ],
            NON_CANONICAL => [
                "args.mmu_update requests non-canonical",
                "args.mmuext_op requests non-canonical",
                "args.multicall list non-canonical",
                "args.set_trap_table list non-canonical",
                "args.console_io write from a non-canonical buffer",
            ],
            _ => [
                "args.mmu_update requests unmapped",
                "args.mmuext_op requests unmapped",
                "args.multicall list unmapped",
                "args.set_trap_table list unmapped",
                "args.console_io write from an unmapped buffer",
            ],
        };
        r.ret(
            names[0],
            raw(Hypercall::MmuUpdate, [ptr, 1, pdone, self_dom(), 0]),
            err(XenError::Fault),
        );
        r.ret(
            names[1],
            raw(Hypercall::MmuextOp, [ptr, 1, pdone, self_dom(), 0]),
            err(XenError::Fault),
        );
        r.ret(
            names[2],
            raw(Hypercall::Multicall, [ptr, 1, 0, 0, 0]),
            err(XenError::Fault),
        );
        let ret = raw(Hypercall::SetTrapTable, [ptr, 0, 0, 0, 0]);
        let _ = crate::traps::install();
        r.ret(names[3], ret, err(XenError::Fault));
        r.ret(
            names[4],
            raw(Hypercall::ConsoleIo, [0, 16, ptr, 0, 0]),
            // Only dom0 may use the hypervisor's console (a domU has its ring), as in Xen's
            // release build: a domU is refused before its buffer is looked at.
            err(XenError::Fault).domu(XenError::Perm),
        );
    }
    // Output pointers.
    let tlb_flush = [6u64, 0, 0];
    // Xen ignores a done count it cannot write back.
    r.ret(
        "args.mmuext_op done count written to the hypervisor range",
        raw(
            Hypercall::MmuextOp,
            [tlb_flush.as_ptr() as u64, 1, HV, self_dom(), 0],
        ),
        OK,
    );
    r.ret(
        "args.memory_op machphys_mapping written to the hypervisor range",
        raw(Hypercall::MemoryOp, [12, HV, 0, 0, 0]),
        err(XenError::Fault),
    );
    r.ret(
        "args.xen_version extraversion written to the hypervisor range",
        raw(Hypercall::XenVersion, [1, HV, 0, 0, 0]),
        err(XenError::Fault),
    );
    // With no console input pending, neither hypervisor writes anything.
    r.ret(
        "args.console_io read into the hypervisor range (no input pending)",
        raw(Hypercall::ConsoleIo, [1, 16, HV, 0, 0]),
        OK.domu(XenError::Perm),
    );
    let uvm_multi = 0xffff_8000_0000_1000u64 | 1;
    r.ret(
        "args.update_va_mapping flush mask in the hypervisor range",
        raw(
            Hypercall::UpdateVaMapping,
            [
                scratch(7),
                (mem::mfn_of(scratch(7)) << 12) | mem::RW,
                uvm_multi,
                0,
                0,
            ],
        ),
        err(XenError::Fault),
    );
    let flush_multi = [8u64, 0, HV];
    r.ret(
        "args.mmuext_op TLB_FLUSH_MULTI mask in the hypervisor range",
        raw(
            Hypercall::MmuextOp,
            [flush_multi.as_ptr() as u64, 1, pdone, self_dom(), 0],
        ),
        err(XenError::Inval),
    );

    counts(r);
    multicalls(r);

    // Unknown sub-operations and hypercall numbers.
    for (name, op, cmd, expect) in [
        (
            "args.memory_op sub-op 999",
            Hypercall::MemoryOp,
            999,
            err(XenError::NoSys),
        ),
        (
            "args.event_channel_op sub-op 99",
            Hypercall::EventChannelOp,
            99,
            err(XenError::NoSys),
        ),
        (
            "args.sched_op sub-op 99",
            Hypercall::SchedOp,
            99,
            err(XenError::NoSys),
        ),
        (
            "args.vcpu_op sub-op 99",
            Hypercall::VcpuOp,
            99,
            err(XenError::NoSys),
        ),
        (
            "args.physdev_op sub-op 99",
            Hypercall::PhysdevOp,
            99,
            err(XenError::NoSys),
        ),
        (
            "args.console_io sub-op 99",
            Hypercall::ConsoleIo,
            99,
            err(XenError::NoSys).domu(XenError::Perm),
        ),
        (
            "args.xen_version sub-op 99",
            Hypercall::XenVersion,
            99,
            err(XenError::NoSys),
        ),
        (
            "args.callback_op sub-op 99",
            Hypercall::CallbackOp,
            99,
            err(XenError::NoSys),
        ),
        (
            "args.vm_assist command 99",
            Hypercall::VmAssist,
            99,
            err(XenError::Inval),
        ),
        (
            "args.grant_table_op sub-op 99",
            Hypercall::GrantTableOp,
            99,
            err(XenError::NoSys),
        ),
    ] {
        let buf = [0u64; 16];
        let args = if op == Hypercall::VcpuOp {
            // vcpu_op(cmd, vcpu, arg)
            [cmd, 0, buf.as_ptr() as u64, 0, 0]
        } else {
            [cmd, buf.as_ptr() as u64, 0, 0, 0]
        };
        r.ret(name, raw(op, args), expect);
    }
    for (name, nr) in [
        ("args.hypercall 11 (unused)", 11u32),
        ("args.hypercall 45 (none)", 45),
        ("args.hypercall 63 (none)", 63),
        ("args.hypercall 127 (last stub)", 127),
    ] {
        // SAFETY: no such hypercall: refused.
        let ret = unsafe { hypercall::raw_nr(nr, [HV, HV, HV, HV, HV]) };
        r.ret(name, ret, err(XenError::NoSys));
    }
    let ret = raw(Hypercall::SetTimerOp, [u64::MAX, 0, 0, 0, 0]);
    r.ret("args.set_timer_op with a deadline of 2^64 - 1", ret, OK);
    let _ = raw(Hypercall::SetTimerOp, [0, 0, 0, 0, 0]);
}

/// Huge and negative counts over a list that runs into the guard page.
fn counts(r: &mut Report) {
    // One harmless request at the very end of page 0: the next one is in the guard page.
    let end = scratch(0) + 4096;
    let ours = mem::mfn_of(scratch(7));
    let req_at = end - 16;
    let machphys = [(ours << 12) | 1, mem::m2p(ours)];
    // SAFETY: page 0 is mapped writable and unused by Rust.
    unsafe { (req_at as *mut [u64; 2]).write_volatile(machphys) };
    let mut done = 0u32;
    let pdone = &raw mut done as u64;
    for (name, count) in [
        (
            "args.mmu_update count 2^31 - 1 into an unmapped page",
            0x7fff_ffffu64,
        ),
        ("args.mmu_update count -1", u64::MAX),
    ] {
        let ret = raw(Hypercall::MmuUpdate, [req_at, count, pdone, self_dom(), 0]);
        r.ret(name, ret, err(XenError::Fault));
    }
    let ext_at = end - 24;
    // SAFETY: as above.
    unsafe { (ext_at as *mut [u64; 3]).write_volatile([6, 0, 0]) };
    for (name, count) in [
        (
            "args.mmuext_op count 2^31 - 1 into an unmapped page",
            0x7fff_ffffu64,
        ),
        ("args.mmuext_op count -1", u64::MAX),
    ] {
        let ret = raw(Hypercall::MmuextOp, [ext_at, count, pdone, self_dom(), 0]);
        r.ret(name, ret, err(XenError::Fault));
    }
    let call_at = end - 64;
    let entry = multicall(Hypercall::XenVersion, [0, 0, 0, 0, 0, 0]);
    // SAFETY: as above.
    unsafe { (call_at as *mut [u64; 8]).write_volatile(entry) };
    for (name, count) in [
        (
            "args.multicall count 2^31 - 1 into an unmapped page",
            0x7fff_ffffu64,
        ),
        ("args.multicall count -1", u64::MAX),
    ] {
        let ret = raw(Hypercall::Multicall, [call_at, count, 0, 0, 0]);
        r.ret(name, ret, err(XenError::Fault));
    }
    // A continuation the guest fakes: MMU_UPDATE_PREEMPTED on the count and a done count near
    // 2^32. The done count only accumulates; it must never index the requests.
    let one_req = [machphys];
    let one_op = [[6u64, 0, 0]];
    for (names, op, list) in [
        (
            [
                "args.mmu_update fake continuation (MMU_UPDATE_PREEMPTED, done 2^32 - 16)",
                "args.mmu_update fake continuation done count accumulates",
            ],
            Hypercall::MmuUpdate,
            one_req.as_ptr() as u64,
        ),
        (
            [
                "args.mmuext_op fake continuation (MMU_UPDATE_PREEMPTED, done 2^32 - 16)",
                "args.mmuext_op fake continuation done count accumulates",
            ],
            Hypercall::MmuextOp,
            one_op.as_ptr() as u64,
        ),
    ] {
        let mut done = 0xffff_fff0u32;
        let pdone = &raw mut done as u64;
        let ret = raw(op, [list, (1 << 31) | 1, pdone, self_dom(), 0]);
        r.ret(names[0], ret, OK);
        r.case(
            names[1],
            Got::Value(u64::from(done)),
            same(Want::Value(0xffff_fff1)),
        );
    }
    // Long batches, which the hypervisor may preempt and continue: 3000 harmless requests in
    // scratch pages 10–21 (48 KiB).
    let area = scratch(10);
    for i in 0..3000u64 {
        // SAFETY: scratch pages 10–21 are mapped writable and used by nothing else.
        unsafe {
            (area as *mut [u64; 2])
                .add(i as usize)
                .write_volatile(machphys)
        };
    }
    let mut done = 0u32;
    let pdone = &raw mut done as u64;
    let ret = raw(Hypercall::MmuUpdate, [area, 3000, pdone, self_dom(), 0]);
    r.case(
        "args.mmu_update of 3000 requests completes (done count, result)",
        Got::Value(u64::from(done) | ((ret as u64) << 32)),
        same(Want::Value(3000)),
    );
    for i in 0..2000u64 {
        // SAFETY: as above (2000 * 24 bytes fit in the 48 KiB).
        unsafe {
            (area as *mut [u64; 3])
                .add(i as usize)
                .write_volatile([6, 0, 0])
        };
    }
    let mut done = 0u32;
    let pdone = &raw mut done as u64;
    let ret = raw(Hypercall::MmuextOp, [area, 2000, pdone, self_dom(), 0]);
    r.case(
        "args.mmuext_op of 2000 TLB flushes completes (done count, result)",
        Got::Value(u64::from(done) | ((ret as u64) << 32)),
        same(Want::Value(2000)),
    );
    // The extent list is the last word of page 0: a second extent would be written into the
    // guard page.
    let list_at = end - 8;
    let reservation: [u64; 4] = [list_at, u64::MAX, 0, self_dom()];
    let ret = raw(
        Hypercall::MemoryOp,
        [0, reservation.as_ptr() as u64, 0, 0, 0],
    );
    r.case(
        "args.increase_reservation of 2^64 - 1 extents into a one-entry list",
        Got::Ret(ret),
        same(Want::Ok),
    );
    if ret > 0 {
        // Give back what we got.
        // SAFETY: page 0 is mapped and the hypervisor wrote the frame number there.
        let _ = mem::release(unsafe { (list_at as *const u64).read_volatile() });
    }
    let reservation: [u64; 4] = [list_at, 1, 40, self_dom()];
    let ret = raw(
        Hypercall::MemoryOp,
        [0, reservation.as_ptr() as u64, 0, 0, 0],
    );
    r.case(
        "args.increase_reservation of order 40 does nothing",
        Got::Value(ret as u64),
        same(Want::Value(0)),
    );
}

/// Nested multicalls, entries that overwrite the next entry, output overlapping input.
fn multicalls(r: &mut Report) {
    let mut inner = [multicall(Hypercall::XenVersion, [0, 0, 0, 0, 0, 0])];
    let mut calls = [multicall(
        Hypercall::Multicall,
        [inner.as_mut_ptr() as u64, 1, 0, 0, 0, 0],
    )];
    let ret = run_multicall(&mut calls);
    r.check(
        "args.nested multicall runs the outer one",
        ret == 0,
        format_args!("multicall {ret}"),
    );
    r.case(
        "args.nested multicall entry is refused",
        Got::Ret(calls[0][1] as i64),
        err(XenError::Inval),
    );
    // Entry 0 writes xen_machphys_mapping (24 bytes) over entry 1's op, result and first
    // argument: entry 1 becomes hypercall number MACH2PHYS_VIRT_START, which does not exist.
    let mut calls = [
        multicall(Hypercall::MemoryOp, [12, 0, 0, 0, 0, 0]),
        multicall(Hypercall::XenVersion, [0, 0, 0, 0, 0, 0]),
    ];
    calls[0][2 + 1] = &raw mut calls[1] as u64;
    let ret = run_multicall(&mut calls);
    r.check(
        "args.multicall entry 0 overwrites entry 1",
        ret == 0 && calls[0][1] == 0,
        format_args!("multicall {ret}, entry 0 result {}", calls[0][1] as i64),
    );
    r.case(
        "args.multicall overwritten entry 1 is refused as unknown",
        Got::Ret(calls[1][1] as i64),
        err(XenError::NoSys),
    );
    // A multicall whose entry is a multicall of the list itself.
    let mut calls = [multicall(Hypercall::Multicall, [0, 1, 0, 0, 0, 0])];
    calls[0][2] = calls.as_ptr() as u64;
    let ret = run_multicall(&mut calls);
    r.case(
        "args.multicall of itself is refused inside",
        Got::Ret(if ret == 0 { calls[0][1] as i64 } else { ret }),
        err(XenError::Inval),
    );
    // The done count written over the request being processed.
    let ours = mem::mfn_of(scratch(7));
    let mut reqs = [[(ours << 12) | 1, mem::m2p(ours)]; 2];
    let pdone = reqs.as_mut_ptr() as u64 + 16;
    let ret = raw(
        Hypercall::MmuUpdate,
        [reqs.as_ptr() as u64, 2, pdone, self_dom(), 0],
    );
    r.ret("args.mmu_update done count over its own requests", ret, OK);
    // An extent list that is the reservation struct itself.
    let mut reservation: [u64; 4] = [0, 1, 0, self_dom()];
    reservation[0] = reservation.as_ptr() as u64 + 8;
    let ret = raw(
        Hypercall::MemoryOp,
        [1, reservation.as_ptr() as u64, 0, 0, 0],
    );
    r.case(
        "args.decrease_reservation with the list inside its own struct",
        Got::Value(ret as u64),
        same(Want::Value(0)),
    );
}
