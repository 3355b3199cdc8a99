//! `vcpu.*`: the per-vCPU areas a guest registers in its own memory, as Linux does at boot:
//! the runstate area (`VCPUOP_register_runstate_memory_area`) and a new home for `vcpu_info`
//! (`VCPUOP_register_vcpu_info`). Moving `vcpu_info` is permanent, so these checks run last:
//! afterwards events and time are announced in the new place, not in shared info.

use core::sync::atomic::{Ordering, compiler_fence};

use guest_abi::hypercall::Hypercall;
use guest_abi::runtime::hypercall;
use guest_abi::vcpu::{
    Runstate, VcpuOp, VcpuRegisterMemoryArea, VcpuRegisterVcpuInfo, VcpuRunstateInfo,
};
use guest_abi::xen::{StartInfo, VcpuInfo};
use guest_abi::{DomId, VcpuId, XenError};

use crate::check::{Report, Why, ensure, eq, ok};
use crate::{domain, events, upcall};
use guest_abi::runtime::AsmCell;

/// Where the hypervisor mirrors the runstate.
static RUNSTATE: AsmCell<VcpuRunstateInfo> = AsmCell::new(VcpuRunstateInfo {
    state: -1,
    _hole: 0,
    state_entry_time: 0,
    time: [0; 4],
});

/// A page of the image that becomes the home of `vcpu_info[0]`.
#[repr(C, align(4096))]
struct Page([u8; 4096]);
static VCPU_INFO_PAGE: AsmCell<Page> = AsmCell::new(Page([0; 4096]));
/// Where in that page (Linux puts it in a per-CPU area: anywhere 64-byte aligned).
const VCPU_INFO_OFFSET: u32 = 0x240;

/// An address in the hypervisor's range.
const HYPERVISOR_VA: u64 = 0xffff_8000_0000_0000;

pub fn run(r: &mut Report, si: &StartInfo) {
    runstate_area(r);
    vcpu_info(r, si);
}

fn register_runstate(addr: u64) -> Result<u64, XenError> {
    let mut area = VcpuRegisterMemoryArea { addr };
    // SAFETY: the area is ours (or refused); the hypervisor reads the argument only.
    unsafe { hypercall::vcpu_op(VcpuOp::RegisterRunstateMemoryArea, VcpuId(0), &mut area) }
}

fn runstate_area(r: &mut Report) {
    let res = register_runstate(RUNSTATE.addr());
    let got = RUNSTATE.get();
    r.check(
        "vcpu.register_runstate_memory_area written at once",
        ok("VCPUOP_register_runstate_memory_area", res)
            .and_then(|_| eq("state", got.state as u64, Runstate::Running as u64))
            .and_then(|_| ensure(got.time[0] > 0, "no running time"))
            .and_then(|_| ensure(got.state_entry_time > 0, "no entry time")),
    );
    r.check_eq(
        "vcpu.register_runstate_memory_area hypervisor address",
        register_runstate(HYPERVISOR_VA),
        Err(XenError::Fault),
    );
    // Address 0 stops the updates; the image's cell is left alone from here on.
    r.check_eq(
        "vcpu.register_runstate_memory_area none",
        register_runstate(0),
        Ok(0),
    );
}

fn register_vcpu_info(mfn: u64, offset: u32) -> Result<u64, XenError> {
    let mut arg = VcpuRegisterVcpuInfo {
        mfn,
        offset,
        rsvd: 0,
    };
    // SAFETY: the frame is ours (or refused); once accepted, the hypervisor writes only the
    // 64 bytes at `offset`, a page nothing else in the image uses.
    unsafe { hypercall::vcpu_op(VcpuOp::RegisterVcpuInfo, VcpuId(0), &mut arg) }
}

/// The relocated `vcpu_info`.
fn moved() -> *mut VcpuInfo {
    (VCPU_INFO_PAGE.addr() + u64::from(VCPU_INFO_OFFSET)) as *mut VcpuInfo
}

fn vcpu_info(r: &mut Report, si: &StartInfo) {
    let page_mfn = domain::mfn_of(si, VCPU_INFO_PAGE.addr());
    r.check_eq(
        "vcpu.register_vcpu_info past the page end",
        register_vcpu_info(page_mfn, 4096 - 56),
        Err(XenError::NxIo),
    );
    r.check_eq(
        "vcpu.register_vcpu_info misaligned",
        register_vcpu_info(page_mfn, 0x204),
        Err(XenError::NxIo),
    );
    r.check_eq(
        "vcpu.register_vcpu_info in a page table",
        register_vcpu_info(domain::l4_mfn(si), 0),
        Err(XenError::Inval),
    );
    // SAFETY: a vCPU that does not exist; nothing is read beyond the argument.
    let other = unsafe {
        hypercall::call(
            Hypercall::VcpuOp,
            [VcpuOp::RegisterVcpuInfo as u64, 1, 0, 0, 0],
        )
    };
    r.check_eq(
        "vcpu.register_vcpu_info other vCPU",
        other,
        Err(XenError::NoEnt),
    );

    // Events stay masked while the structure moves: the mask travels with it.
    upcall::events_off();
    let res = register_vcpu_info(page_mfn, VCPU_INFO_OFFSET);
    let v = moved();
    // SAFETY: `v` is in our page, which the hypervisor now writes concurrently: volatile
    // reads and writes of single fields.
    let (pending, mask, sel, mul) = unsafe {
        (
            (&raw const (*v).evtchn_upcall_pending).read_volatile(),
            (&raw const (*v).evtchn_upcall_mask).read_volatile(),
            (&raw const (*v).evtchn_pending_sel).read_volatile(),
            (&raw const (*v).time.tsc_to_system_mul).read_volatile(),
        )
    };
    r.check(
        "vcpu.register_vcpu_info moves it",
        ok("VCPUOP_register_vcpu_info", res)
            .and_then(|_| eq("evtchn_upcall_mask", mask.into(), 1))
            .and_then(|_| eq("evtchn_upcall_pending", pending.into(), 1))
            .and_then(|_| eq("evtchn_pending_sel", sel, u64::MAX))
            .and_then(|_| ensure(mul != 0, "no time record")),
    );
    r.check_eq(
        "vcpu.register_vcpu_info twice",
        register_vcpu_info(page_mfn, 0),
        Err(XenError::Inval),
    );
    r.check("vcpu.register_vcpu_info events land there", events_land(v));
}

/// A loopback send sets the selector and `evtchn_upcall_pending` in the moved structure,
/// not in the shared info slot.
fn events_land(v: *mut VcpuInfo) -> Result<(), Why> {
    let Some(si) = domain::shared_info() else {
        return Err(Why::Text("shared_info is not mapped"));
    };
    // SAFETY: `v` and `si` map our page and the shared info page; single-field volatile
    // accesses, as the hypervisor writes both concurrently.
    let old = unsafe { &raw mut (*(si as *mut guest_abi::xen::SharedInfo)).vcpu_info[0] };
    // SAFETY: as above.
    unsafe {
        (&raw mut (*v).evtchn_upcall_pending).write_volatile(0);
        (&raw mut (*v).evtchn_pending_sel).write_volatile(0);
        (&raw mut (*old).evtchn_upcall_pending).write_volatile(0);
        (&raw mut (*old).evtchn_pending_sel).write_volatile(0);
    }
    compiler_fence(Ordering::SeqCst);
    let a = ok_port(events::alloc_unbound(DomId::SELF, DomId::SELF))?;
    let b = ok_port(events::bind_interdomain(DomId::SELF, a))?;
    let sent = ok("EVTCHNOP_send", events::send(b.0));
    compiler_fence(Ordering::SeqCst);
    // SAFETY: as above.
    let (pending, sel, old_pending) = unsafe {
        (
            (&raw const (*v).evtchn_upcall_pending).read_volatile(),
            (&raw const (*v).evtchn_pending_sel).read_volatile(),
            (&raw const (*old).evtchn_upcall_pending).read_volatile(),
        )
    };
    let _ = events::close(a.0);
    let _ = events::close(b.0);
    sent?;
    eq("evtchn_upcall_pending", pending.into(), 1)?;
    eq("evtchn_pending_sel", sel, 1 << (a.0 / 64))?;
    eq(
        "shared info slot's evtchn_upcall_pending",
        old_pending.into(),
        0,
    )
}

fn ok_port(r: Result<guest_abi::EvtchnPort, XenError>) -> Result<guest_abi::EvtchnPort, Why> {
    r.map_err(|err| Why::Xen {
        what: "event channel setup",
        err,
    })
}
