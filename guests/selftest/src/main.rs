//! `selftest`: a PV64 test kernel that runs as dom0 and checks, one `PASS name` /
//! `FAIL name: why` line each, the hypercalls a PV kernel uses at boot, bad guest
//! pointers, trap bounces and their frames, software interrupts through the virtual IDT,
//! user mode and the syscall callback, emulated privileged instructions, the lazy FPU
//! switch, the PV MMU (a new address space, pins, flushes, batches, the M2P and the updates
//! Xen refuses), event channels and their upcalls, and guest time and timers; then prints
//! `N passed, N failed` and powers off.
//!
//! The expected values are what Xen 4.17 does (`scripts/xen-tests.sh` runs this kernel on
//! it); where our hypervisor differs, the hypervisor is wrong.
//!
//! Groups, in the order they run (riskier ones last, so that a hypervisor that crashes the
//! domain on one of them still shows the rest): `hypercall.*`, `fault.*`, `mmu.*`
//! (mapping the shared info page), `trap.*`, `privop.*`, `fpu.*`, `pci.*`, `memory.*`, `multicall.*`,
//! `user.*`, `mmu.*` (the page-table checks), `event.*`, `time.*`.
//!
//! Safety: guest-abi's runtime assumptions hold (a PV guest started by the hypervisor, one
//! vCPU, events masked), except that `event.*` and `time.*` turn events on for a while:
//! `upcall` says what holds then. On top of them, `traps` says how its assembly handlers
//! and the `asm!` blocks that provoke traps cooperate; every `asm!` elsewhere runs one
//! instruction under those rules or says why it is sound.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod check;
#[cfg(target_os = "none")]
mod devices;
#[cfg(target_os = "none")]
mod domain;
#[cfg(target_os = "none")]
mod events;
#[cfg(target_os = "none")]
mod exceptions;
#[cfg(target_os = "none")]
mod exchange;
#[cfg(target_os = "none")]
mod grant;
#[cfg(target_os = "none")]
mod grant_copy;
#[cfg(target_os = "none")]
mod grant_map;
#[cfg(target_os = "none")]
mod grant_v2;
#[cfg(target_os = "none")]
mod hypercalls;
#[cfg(target_os = "none")]
mod mmu;
#[cfg(target_os = "none")]
mod multicall;
#[cfg(target_os = "none")]
mod privop;
#[cfg(target_os = "none")]
mod serial_input;
#[cfg(target_os = "none")]
mod time;
#[cfg(target_os = "none")]
mod traps;
#[cfg(target_os = "none")]
mod upcall;
#[cfg(target_os = "none")]
mod user;
#[cfg(target_os = "none")]
mod vcpu_areas;

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::println;
    use guest_abi::report::Reporter;
    use guest_abi::runtime::console::Console;
    use guest_abi::runtime::hypercall;
    use guest_abi::sched::ShutdownReason;
    use guest_abi::version::XenVersionOp;
    use guest_abi::xen::StartInfo;

    use crate::check::{c_str, eq};
    use crate::{
        devices, domain, events, exceptions, exchange, grant, hypercalls, mmu, multicall, privop,
        serial_input, time, traps, user, vcpu_areas,
    };

    guest_abi::pv_guest!("selftest", main, dom0);

    /// Whether this is our hypervisor rather than Xen: it reports extraversion `.0-rs`.
    /// Used only where the two deliberately differ (the check names say so).
    fn on_our_hypervisor() -> bool {
        let mut extra = [0u8; 16];
        let _ = hypercall::xen_version_string(XenVersionOp::Extraversion, &mut extra);
        c_str(&extra) == ".0-rs"
    }

    fn main(si: &'static StartInfo) {
        println!("selftest: start, {} pages", si.nr_pages);
        let mut r = Reporter::new(Console);
        r.check_eq("hypercall.set_trap_table", traps::install(), Ok(0));
        if si.cmdline().windows(12).any(|w| w == b"serial-input") {
            serial_input::run(&mut r, si);
            r.finish();
            hypercall::shutdown(ShutdownReason::Poweroff)
        }
        hypercalls::run(&mut r, si);
        exceptions::bad_pointers(&mut r);

        let mapped = domain::map_shared_info(si);
        r.check_eq("mmu.update_va_mapping shared_info", mapped, Ok(0));
        r.check(
            "mmu.shared_info vcpu_info[0] events masked",
            match domain::vcpu0_upcall_mask() {
                Some(mask) => eq("evtchn_upcall_mask", mask.into(), 1),
                None => Err(crate::check::Why::Text("shared_info is not mapped")),
            },
        );

        exceptions::traps(&mut r, si);
        privop::run(&mut r, si);
        devices::run(&mut r, si);
        exchange::run(&mut r, si);
        multicall::run(&mut r);
        grant::run(&mut r, si);
        user::run(&mut r, si);
        mmu::run(&mut r, si, on_our_hypervisor());
        if events::run(&mut r).is_some() {
            time::run(&mut r);
        }
        // Last: it moves vcpu_info out of shared info for good.
        vcpu_areas::run(&mut r, si);

        r.finish();
        println!("selftest: powering off");
        hypercall::shutdown(ShutdownReason::Poweroff)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
