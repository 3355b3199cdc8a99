//! `hello`: a PV guest that prints the facts of its domain from `start_info` (magic,
//! pages, flags, command line, ...), checks a few of them in the `PASS`/`FAIL` format,
//! and powers off with `SCHEDOP_shutdown(poweroff)`. Runs as dom0 or as a domU.
//!
//! For the tests of the boot scripts, the command-line word `panic` makes it panic (and
//! so shut down with `SHUTDOWN_crash`) and `reboot` makes it shut down with
//! `SHUTDOWN_reboot`. For the toolstack's tests, `wait` makes it block for good instead
//! of powering off (until dom0 destroys it), and `xenbus` makes it wait for the toolstack
//! to ask it to power off or reboot through the store (`xenbus.rs`).
//!
//! Safety: the few `unsafe` hypercalls below rely on the assumptions guest-abi's runtime
//! states (a PV guest started by the hypervisor, one vCPU, events masked).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod xenbus;

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::arch::MACH2PHYS_VIRT_START;
    use guest_abi::event_channel::{EvtchnAllocUnbound, EvtchnBindVirq, EvtchnOp};
    use guest_abi::hypercall::Hypercall;
    use guest_abi::memory::{MemoryOp, XenMachphysMapping};
    use guest_abi::report::Reporter;
    use guest_abi::runtime::console::Console;
    use guest_abi::runtime::{VIRT_BASE, cmdline_has, hypercall};
    use guest_abi::sched::ShutdownReason;
    use guest_abi::xen::{START_INFO_MAGIC_X86_64, StartInfo, Virq};
    use guest_abi::{DomId, EvtchnPort, println};

    guest_abi::pv_guest!("hello", main, dom0);

    fn main(si: &'static StartInfo) {
        let text = |bytes| core::str::from_utf8(bytes).unwrap_or("<not utf-8>");
        println!("hello: magic {}", text(si.magic()));
        println!("hello: nr_pages {}", si.nr_pages);
        println!("hello: flags {:#x} {:?}", si.flags, si.sif_flags());
        println!("hello: cmdline \"{}\"", si.cmdline().escape_ascii());
        println!("hello: shared_info {:#x}", si.shared_info);
        println!(
            "hello: pt_base {:#x} nr_pt_frames {}",
            si.pt_base, si.nr_pt_frames
        );
        println!("hello: mfn_list {:#x}", si.mfn_list);
        println!(
            "hello: mod_start {:#x} mod_len {}",
            si.mod_start, si.mod_len
        );
        println!(
            "hello: store_mfn {:#x} store_evtchn {}",
            si.store_mfn, si.store_evtchn
        );
        let version = hypercall::xen_version();
        if let Ok((major, minor)) = version {
            println!("hello: xen {major}.{minor}");
        }

        let mut report = Reporter::new(Console);
        report.check_eq("start_info.magic", si.magic(), START_INFO_MAGIC_X86_64);
        report.check_eq("start_info.pt_base in region", si.pt_base > VIRT_BASE, true);
        report.check_eq("xen_version", version.is_ok(), true);
        // An unknown hypercall number must fail with ENOSYS, through the page's stub.
        // SAFETY: arch_7 takes no pointer; Xen rejects it without touching memory.
        let unknown = unsafe { hypercall::call(Hypercall::Arch7, [0; 5]) };
        report.check_eq(
            "unknown hypercall",
            unknown,
            Err(guest_abi::XenError::NoSys),
        );
        check_runtime(&mut report);
        report.finish();

        // For the tests of the boot scripts: other ways to end.
        if cmdline_has(b"panic") {
            panic!("hello: panicking as asked");
        }
        if cmdline_has(b"reboot") {
            println!("hello: rebooting as asked");
            hypercall::shutdown(ShutdownReason::Reboot)
        }
        if cmdline_has(b"wait") {
            wait_forever();
        }
        if cmdline_has(b"xenbus") {
            if let Err(e) = crate::xenbus::serve(si) {
                println!("hello: xenbus failed: {e}");
            }
            hypercall::shutdown(ShutdownReason::Crash)
        }
        println!("hello: powering off");
        hypercall::shutdown(ShutdownReason::Poweroff)
    }

    /// Blocks for good: polls a port nothing will signal (one allocated for ourselves).
    /// Polling, unlike `SCHEDOP_block`, leaves events masked, so a notification on the
    /// console port cannot send an upcall to a callback hello does not have.
    fn wait_forever() -> ! {
        let mut own = EvtchnAllocUnbound {
            dom: DomId::SELF.0,
            remote_dom: DomId::SELF.0,
            port: 0,
        };
        if let Err(e) = hypercall::event_channel_op(&mut own) {
            println!("hello: cannot allocate a port to wait on: {e}");
            hypercall::shutdown(ShutdownReason::Crash)
        }
        println!("hello: waiting to be destroyed");
        loop {
            if let Err(e) = hypercall::sched_poll(&[EvtchnPort(own.port)], 0) {
                println!("hello: SCHEDOP_poll failed: {e}");
                hypercall::shutdown(ShutdownReason::Crash)
            }
        }
    }

    /// A few more of the runtime's wrappers, each a round trip through the hypervisor.
    fn check_runtime(report: &mut Reporter<Console>) {
        let mut mapping = XenMachphysMapping::default();
        // SAFETY: XENMEM_machphys_mapping fills a xen_machphys_mapping and nothing else.
        let m2p = unsafe { hypercall::memory_op(MemoryOp::MachphysMapping, &mut mapping) };
        report.check_eq(
            "memory_op machphys_mapping",
            m2p.map(|_| mapping.v_start),
            Ok(MACH2PHYS_VIRT_START),
        );

        let mut bind = EvtchnBindVirq {
            virq: Virq::Timer as u32,
            vcpu: 0,
            port: 0,
        };
        let bound = hypercall::event_channel_op(&mut bind);
        report.check_eq(
            "evtchn bind_virq timer",
            bound.map(|_| bind.port > 0),
            Ok(true),
        );
        let closed = hypercall::evtchn_port_op(EvtchnOp::Close, bind.port);
        report.check_eq("evtchn close", closed, Ok(0));

        report.check_eq("xen_features", hypercall::xen_features(0).is_ok(), true);
        let fpu = hypercall::fpu_taskswitch(true).and_then(|_| hypercall::fpu_taskswitch(false));
        report.check_eq("fpu_taskswitch", fpu, Ok(0));
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
