//! Benchmarks of single hypercalls and of the event and FPU paths: the empty loop (the
//! harness's own cost), the null hypercall, a multicall of 32 null calls, `sched_op(yield)`,
//! `mmuext_op(TLB_FLUSH_LOCAL)`, a masked loopback `evtchn_send`, a send that raises an
//! upcall and its return, and `fpu_taskswitch(1)` followed by the `#NM` of the first FPU
//! instruction.

use core::sync::atomic::Ordering;

use guest_abi::hypercall::Hypercall;
use guest_abi::runtime::hypercall;
use guest_abi::version::XenVersionOp;
use guest_abi::xen::{MmuextCmd, MmuextOp, MulticallEntry};
use guest_abi::{DomId, XenError};

use crate::error::Error;
use crate::events::{self, Loopback};
use crate::run::{Spec, bench, bench_each, failed};
use crate::traps;

/// Calls in the multicall benchmark.
const MULTICALL_LEN: usize = 32;

/// Runs these benchmarks; returns the loopback channel (or why there is none).
pub fn run() -> Result<Loopback, Error> {
    bench_each(Spec::new("loop_empty", 1000), |i| {
        core::hint::black_box(i);
        Ok(())
    });
    bench_each(Spec::new("null_hypercall", 500), |_| null().map(drop));
    bench_multicall();
    bench_each(Spec::new("sched_yield", 200), |_| {
        hypercall::sched_yield()
            .map(drop)
            .map_err(|e| Error::xen("sched_op(yield)", e))
    });
    let flush = [MmuextOp {
        cmd: MmuextCmd::TlbFlushLocal as u32,
        ..MmuextOp::default()
    }];
    bench_each(Spec::new("tlb_flush_local", 200), |_| {
        let mut done = 0;
        // SAFETY: a TLB flush changes no mapping.
        unsafe { hypercall::mmuext_op(&flush, &mut done, DomId::SELF) }
            .map(drop)
            .map_err(|e| Error::xen("mmuext_op(TLB_FLUSH_LOCAL)", e))
    });
    let lb = events::setup();
    match lb {
        Ok(lb) => {
            bench_masked_send(lb);
            bench_upcall(lb);
        }
        Err(e) => {
            failed("evtchn_send_masked", e);
            failed("evtchn_upcall_roundtrip", e);
        }
    }
    bench_fpu();
    lb
}

/// `xen_version(XENVER_version)`, the cheapest hypercall.
fn null() -> Result<u64, Error> {
    // SAFETY: XENVER_version takes no buffer.
    let r = unsafe {
        hypercall::raw(
            Hypercall::XenVersion,
            [XenVersionOp::Version as u64, 0, 0, 0, 0],
        )
    };
    XenError::from_ret(r).map_err(|e| Error::xen("xen_version", e))
}

fn bench_multicall() {
    let entry = MulticallEntry {
        op: u64::from(Hypercall::XenVersion.raw()),
        result: 0,
        args: [XenVersionOp::Version as u64, 0, 0, 0, 0, 0],
    };
    let mut calls = [entry; MULTICALL_LEN];
    let want = null();
    bench_each(Spec::new("multicall_32_null", 50), |_| {
        // SAFETY: every entry is xen_version(XENVER_version), which takes no buffer.
        unsafe { hypercall::multicall(&mut calls) }.map_err(|e| Error::xen("multicall", e))?;
        match want {
            Ok(v) if calls.iter().all(|c| c.result == v) => Ok(()),
            _ => Err(Error::Text("a call in the multicall failed")),
        }
    });
}

fn send(port: u64) -> Result<(), Error> {
    hypercall::evtchn_send(port as u32)
        .map(drop)
        .map_err(|e| Error::xen("evtchn_send", e))
}

/// Sends on the loopback with the receiving port masked: it stays pending (after the
/// first send), nothing is delivered.
fn bench_masked_send(lb: Loopback) {
    events::mask_port(lb.receiver, true);
    bench_each(Spec::new("evtchn_send_masked", 500), |_| send(lb.sender));
    events::clear_pending(lb.receiver);
}

/// Sends on the loopback with the receiving port and upcalls unmasked: each send raises
/// an upcall on the way out of the hypercall; the handler clears the port and returns with
/// the `iret` hypercall.
fn bench_upcall(lb: Loopback) {
    events::clear_pending(lb.receiver);
    events::mask_port(lb.receiver, false);
    events::mask_upcalls(false);
    bench(Spec::new("evtchn_upcall_roundtrip", 200), |n| {
        let before = events::UPCALLS.load(Ordering::Relaxed);
        for _ in 0..n {
            send(lb.sender)?;
        }
        if events::UPCALLS.load(Ordering::Relaxed) - before == u64::from(n) {
            Ok(())
        } else {
            Err(Error::Text("fewer upcalls than sends"))
        }
    });
    events::mask_upcalls(true);
    events::mask_port(lb.receiver, true);
}

/// `fpu_taskswitch(1)`, then an x87 instruction: `#NM` bounces to the handler (the
/// hypervisor clears the virtual TS), which returns with the `iret` hypercall, and the
/// instruction runs again.
fn bench_fpu() {
    bench(Spec::new("fpu_taskswitch_nm", 200), |n| {
        let before = traps::nm_count();
        for _ in 0..n {
            hypercall::fpu_taskswitch(true).map_err(|e| Error::xen("fpu_taskswitch", e))?;
            // SAFETY: fnop changes nothing; the #NM it raises returns here.
            unsafe { core::arch::asm!("fnop") };
        }
        if traps::nm_count() - before == u64::from(n) {
            Ok(())
        } else {
            Err(Error::Text("fewer #NM bounces than taskswitches"))
        }
    });
    let _ = hypercall::fpu_taskswitch(false);
}
