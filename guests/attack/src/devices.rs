//! `dev.*`: the machine's devices from a hostile guest. I/O memory mappings of the
//! hypervisor's devices, beyond the physical address width, and of device memory as a domU;
//! PCI configuration space as a domU; `XENMEM_exchange` of a frame not the caller's, with a list
//! in the hypervisor's range, an order beyond the caller's, a progress count beyond the input, a
//! continuation in `cmd`; `XENMEM_machine_memory_map` as a domU.
//!
//! Safety: mappings go to scratch page 0, which is mapped back onto its own frame after each
//! case; no exchange reaches a frame of ours (each is refused before, or names frames that are
//! not ours).

use guest_abi::hypercall::Hypercall;
use guest_abi::memory::{XenMemoryExchange, XenMemoryMap};
use guest_abi::runtime::hypercall;
use guest_abi::{DomId, XenError};

use crate::mem::{RO, RW, mfn_of, remap, scratch};
use crate::report::{Expect, Got, OK, Report, Want, err};

/// `XENMEM_exchange`.
const XENMEM_EXCHANGE: u64 = 11;
/// `XENMEM_machine_memory_map`.
const XENMEM_MACHINE_MEMORY_MAP: u64 = 10;
/// An address in the hypervisor's range.
const HYPERVISOR_ADDRESS: u64 = 0xffff_8000_0000_0000;

/// Maps scratch page 0 onto `mfn` read-only; returns the raw result and maps it back.
fn map_frame(mfn: u64) -> i64 {
    let ret = remap(0, mfn, RO);
    let own = mfn_of(scratch(0));
    remap(0, own, RW);
    ret
}

fn memory_op<T>(cmd: u64, arg: &mut T) -> i64 {
    // SAFETY: `arg` is the struct the sub-op takes; its lists are the case's own arrays or
    // addresses the hypervisor must refuse.
    unsafe { hypercall::raw(Hypercall::MemoryOp, [cmd, arg as *mut T as u64, 0, 0, 0]) }
}

/// An exchange of `input` (order `in_order`) for `n_out` extents of `out_order` into `output`.
fn exchange(
    input: &[u64],
    in_order: u32,
    output: u64,
    n_out: u64,
    out_order: u32,
) -> XenMemoryExchange {
    let mut x = XenMemoryExchange::default();
    x.in_.extent_start = input.as_ptr() as u64;
    x.in_.nr_extents = input.len() as u64;
    x.in_.extent_order = in_order;
    x.in_.domid = DomId::SELF.0;
    x.out.extent_start = output;
    x.out.nr_extents = n_out;
    x.out.extent_order = out_order;
    x.out.domid = DomId::SELF.0;
    x
}

fn mappings(r: &mut Report) {
    r.ret(
        "dev.map the MSI window / local APIC (0xfee00000)",
        map_frame(0xfee00),
        err(XenError::Perm),
    );
    r.ret(
        "dev.map a frame beyond the physical address width",
        map_frame(1 << 39),
        err(XenError::Perm),
    );
    r.ret(
        "dev.map device memory outside RAM (0xfd000000), a domU has no I/O memory",
        map_frame(0xfd000),
        OK.domu(XenError::Perm),
    );
}

fn pci_config(r: &mut Report) {
    let set_iopl = |iopl: u32| {
        let arg = [iopl];
        // SAFETY: physdev_op(set_iopl) reads one u32.
        unsafe { hypercall::raw(Hypercall::PhysdevOp, [6, arg.as_ptr() as u64, 0, 0, 0]) }
    };
    r.ret("dev.set_iopl 1 for port I/O", set_iopl(1), OK);
    let value: u32;
    // SAFETY: port I/O under IOPL 1, emulated by the hypervisor: the configuration address of
    // 00:00.0 register 0, then its data.
    unsafe {
        core::arch::asm!(
            "out dx, eax", "add dx, 4", "in eax, dx",
            inout("eax") 0x8000_0000u32 => value, inout("dx") 0xcf8u16 => _,
            options(nostack)
        );
    }
    // dom0 reads the host bridge's ids; a domU reads all-ones.
    r.case(
        "dev.PCI configuration of 00:00.0 through 0xcf8/0xcfc (a domU reads all-ones)",
        Got::Value(u64::from(value != u32::MAX)),
        Expect {
            ours: Want::Value(1),
            xen: None,
            domu: Some(Want::Value(0)),
            domu_xen: None,
        },
    );
}

fn exchanges(r: &mut Report) {
    let mut out = [0u64; 4];
    // Frame 0 is never a guest's.
    let mut x = exchange(&[0], 0, out.as_mut_ptr() as u64, 1, 0);
    r.ret(
        "dev.exchange of a frame not the caller's (frame 0)",
        memory_op(XENMEM_EXCHANGE, &mut x),
        err(XenError::Inval),
    );
    let mut x = exchange(&[0], 0, HYPERVISOR_ADDRESS, 1, 0);
    r.ret(
        "dev.exchange with the output list in the hypervisor's range",
        memory_op(XENMEM_EXCHANGE, &mut x),
        err(XenError::Fault),
    );
    let mut x = exchange(&[], 10, out.as_mut_ptr() as u64, 0, 0);
    r.ret(
        "dev.exchange of order 10 (a domU's limit is 9; nothing to do for dom0)",
        memory_op(XENMEM_EXCHANGE, &mut x),
        OK.domu(XenError::Perm),
    );
    let mut x = exchange(&[0], 0, out.as_mut_ptr() as u64, 1, 19);
    r.ret(
        "dev.exchange of order 19 (beyond dom0's)",
        memory_op(XENMEM_EXCHANGE, &mut x),
        err(XenError::Perm),
    );
    let mut x = exchange(&[0], 0, out.as_mut_ptr() as u64, 1, 0);
    x.nr_exchanged = 2;
    r.ret(
        "dev.exchange with a progress count beyond the input",
        memory_op(XENMEM_EXCHANGE, &mut x),
        err(XenError::Inval),
    );
    let mut x = exchange(&[0], 0, out.as_mut_ptr() as u64, 1, 0);
    r.ret(
        "dev.exchange with a continuation in cmd",
        memory_op(XENMEM_EXCHANGE | (1 << 6), &mut x),
        err(XenError::Inval),
    );
    let mut x = exchange(&[0], 0, out.as_mut_ptr() as u64, 1, 0);
    x.out.domid = 0;
    x.in_.domid = 0;
    r.ret(
        "dev.exchange for dom0's frames (a domU may not)",
        memory_op(XENMEM_EXCHANGE, &mut x),
        err(XenError::Inval).domu(XenError::Perm),
    );
}

fn machine_map(r: &mut Report) {
    let mut map = XenMemoryMap::default();
    r.ret(
        "dev.machine_memory_map (counting only; dom0 only)",
        memory_op(XENMEM_MACHINE_MEMORY_MAP, &mut map),
        OK.domu(XenError::Perm),
    );
    let mut map = XenMemoryMap {
        nr_entries: 64,
        _hole: 0,
        buffer: HYPERVISOR_ADDRESS,
    };
    r.ret(
        "dev.machine_memory_map into the hypervisor's range",
        memory_op(XENMEM_MACHINE_MEMORY_MAP, &mut map),
        err(XenError::Fault).domu(XenError::Perm),
    );
}

pub fn run(r: &mut Report) {
    mappings(r);
    pci_config(r);
    exchanges(r);
    machine_map(r);
}
