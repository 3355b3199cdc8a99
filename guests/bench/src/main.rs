//! `bench`: a PV64 kernel (run as dom0) that counts TSC ticks over the hypervisor's hot
//! paths and prints one machine-readable line per metric, then powers off:
//!
//! ```text
//! BENCH-INFO xen=4.17 extraversion=.7 tsc_khz=1000000
//! BENCH null_hypercall median=281 min=281 max=283 iters=500 reps=11 unit=tsc
//! BENCH user_syscall_roundtrip error=mmuext_op(NEW_USER_BASEPTR):EINVAL
//! BENCH-DONE
//! ```
//!
//! Each cost is per operation, from [`run::REPS`] timed repetitions (after a warm-up) of a
//! fixed number of operations: the median, minimum and maximum. Under QEMU with
//! `-icount shift=0,sleep=off` the TSC counts executed instructions, so the figures are
//! instruction counts and repeat exactly; `scripts/bench.sh` runs this same binary on our
//! hypervisor and on Xen 4.17 and compares them. A metric that fails prints `error=` and
//! the others still run. The command-line word `boot-only` makes it power off at once (for
//! timing the boot).
//!
//! As a domU (built by the dom0 toolstack, `scripts/bench.sh`'s toolstack run) it measures
//! the switch between domains, by its command-line word: `yield-peer` loops in
//! `SCHEDOP_yield` until destroyed; `yield-alone` and `yield-switch` time `SCHEDOP_yield`
//! (as `domu_yield_alone` and `domain_switch_roundtrip`), print `BENCH-DONE` and wait to be
//! destroyed (so that the toolstack reads the output before the domain goes).
//! Started while a `yield-peer` domain runs, each yield of `yield-switch` runs the other
//! domain's loop once: two domain switches and two yields per operation.
//!
//! Safety: guest-abi's runtime assumptions hold (a PV guest started by the hypervisor, one
//! vCPU); events stay masked except inside the event round-trip benchmark. `traps` and
//! `events` say how their handlers cooperate with the Rust code; `pt` owns the spare pages
//! that become page tables.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod error;
#[cfg(target_os = "none")]
mod events;
#[cfg(target_os = "none")]
mod grants;
#[cfg(target_os = "none")]
mod hypercalls;
#[cfg(target_os = "none")]
mod mmu;
#[cfg(target_os = "none")]
mod pt;
#[cfg(target_os = "none")]
mod run;
#[cfg(any(target_os = "none", test))]
mod stats;
#[cfg(target_os = "none")]
mod timing;
#[cfg(target_os = "none")]
mod traps;
#[cfg(target_os = "none")]
mod user;

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::event_channel::EvtchnAllocUnbound;
    use guest_abi::runtime::{cmdline_has, hypercall};
    use guest_abi::sched::ShutdownReason;
    use guest_abi::version::XenVersionOp;
    use guest_abi::xen::StartInfo;
    use guest_abi::{DomId, EvtchnPort, println};

    use crate::error::Error;
    use crate::run::{Spec, bench_each, failed};
    use crate::{events, grants, hypercalls, mmu, stats, timing, traps, user};

    guest_abi::pv_guest!("bench", main, dom0);

    fn main(si: &'static StartInfo) {
        println!("bench: start, {} pages", si.nr_pages);
        if cmdline_has(b"boot-only") {
            println!("bench: boot-only, powering off");
            hypercall::shutdown(ShutdownReason::Poweroff)
        }
        if let Err(e) = traps::install() {
            failed("setup", Error::xen("set_trap_table", e));
        }
        if let Err(e) = events::map_shared_info(si.shared_info) {
            failed("setup", e);
        }
        info();
        if cmdline_has(b"yield-peer") {
            loop {
                let _ = hypercall::sched_yield();
            }
        }
        let domu_yield = if cmdline_has(b"yield-alone") {
            Some("domu_yield_alone")
        } else if cmdline_has(b"yield-switch") {
            Some("domain_switch_roundtrip")
        } else {
            None
        };
        if let Some(name) = domu_yield {
            bench_each(Spec::new(name, 200), |_| {
                hypercall::sched_yield()
                    .map(drop)
                    .map_err(|e| Error::xen("sched_op(yield)", e))
            });
            println!("BENCH-DONE");
            wait_forever();
        } else {
            let lb = hypercalls::run();
            mmu::run();
            grants::run();
            user::run();
            timing::run(lb);
        }
        println!("BENCH-DONE");
        hypercall::shutdown(ShutdownReason::Poweroff)
    }

    /// Blocks until the domain is destroyed: `SCHEDOP_poll` on a port of its own that
    /// nothing sends to (yields if there is none).
    fn wait_forever() -> ! {
        let mut alloc = EvtchnAllocUnbound {
            dom: DomId::SELF.0,
            remote_dom: 0,
            port: 0,
        };
        let port = hypercall::event_channel_op(&mut alloc).map(|_| EvtchnPort(alloc.port));
        loop {
            let _ = match port {
                Ok(port) => hypercall::sched_poll(&[port], 0),
                Err(_) => hypercall::sched_yield(),
            };
        }
    }

    /// `BENCH-INFO`: the hypervisor's version and the TSC rate (1 GHz under icount).
    fn info() {
        let (major, minor) = hypercall::xen_version().unwrap_or((0, 0));
        let mut extra = [0u8; 16];
        let _ = hypercall::xen_version_string(XenVersionOp::Extraversion, &mut extra);
        let len = extra.iter().position(|&b| b == 0).unwrap_or(extra.len());
        let extra = core::str::from_utf8(&extra[..len]).unwrap_or("?");
        let khz = events::pvclock().and_then(|(mul, shift)| stats::tsc_khz(mul, shift));
        println!(
            "BENCH-INFO xen={major}.{minor} extraversion={} tsc_khz={}",
            if extra.is_empty() { "-" } else { extra },
            khz.unwrap_or(0)
        );
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
