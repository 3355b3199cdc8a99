//! `attack`: a hostile PV guest. It tries, one case at a time, the classic ways a PV guest
//! escapes from or takes down a hypervisor (writable views of its own page tables, mappings of
//! frames it does not own, the hypervisor's L4 slots, linear page tables, bad descriptors,
//! privileged operations, port I/O and MSRs, hostile hypercall arguments, event-channel abuse,
//! grant-table abuse, bad trap handlers and stacks), and prints for each `PASS name: got X, expected Y` or
//! `FAIL name: got X, expected Y`, where X and Y are the hypercall's result (`-errno`), the
//! vector of the trap the guest took, or what it read. Then `attack: N cases` and
//! `N passed, N failed`, and it powers off.
//!
//! Expectations are what Xen 4.17 answers, except for the cases where our hypervisor refuses
//! on purpose what Xen accepts (docs/SECURITY.md lists them): those carry both answers, and the
//! command-line word `xen` (given by `scripts/attack-tests.sh` when it boots real Xen) selects
//! Xen's. The word `domu` expects the answers of an unprivileged domain (`EPERM` for the
//! privileged operations that dom0 may use), and adds the `ring.*` cases against the services
//! dom0 runs for a domU (its xenstore ring flooded, its console ring carrying control bytes,
//! `console_io` with a count of 2^32 - 1). The word `victim`, with `remote=DOMID port=PORT`
//! (appended by the toolstack for `evtchn_peer = "victim"`), adds the `victim.*` cases against
//! a live `guests/victim` domain, and after every case the event that asks it to check itself.
//!
//! Cases that kill the domain when refused (an `iret` to a bad frame, a trap onto a kernel
//! stack in the hypervisor's range) run only when asked with `fatal=NAME`, instead of the
//! others: the domain must crash and the hypervisor must stay up (the boot script checks how
//! the machine stopped).
//!
//! `repeat=N` runs the case list N times (without it, once; `scripts/dom0-tests.sh` keeps the
//! guest busy this way while domains come and go next to it): each pass starts with
//! `attack: pass K of N`; the cases that give frames away (a scratch page, the shared_info
//! frame) run in the first pass only, and the last case (giving back the running L4) once,
//! after the last pass. The counts cover every pass.
//!
//! Safety: guest-abi's runtime assumptions hold (a PV guest started by the hypervisor, one
//! vCPU, events masked for the whole run). `traps` says how its assembly handlers and the
//! `asm!` blocks that provoke traps cooperate; `mem` says which pages the cases may remap.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod args;
#[cfg(target_os = "none")]
mod desc;
#[cfg(target_os = "none")]
mod devices;
#[cfg(target_os = "none")]
mod events;
#[cfg(target_os = "none")]
mod grants;
#[cfg(target_os = "none")]
mod mem;
#[cfg(target_os = "none")]
mod mmu;
#[cfg(target_os = "none")]
mod privs;
#[cfg(target_os = "none")]
mod report;
#[cfg(target_os = "none")]
mod rings;
#[cfg(target_os = "none")]
mod traps;
#[cfg(target_os = "none")]
mod victim;

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::println;
    use guest_abi::runtime::{cmdline_has, cmdline_value, hypercall};
    use guest_abi::sched::ShutdownReason;
    use guest_abi::xen::StartInfo;

    use crate::report::{Mode, Report};
    use crate::victim::Victim;
    use crate::{args, desc, devices, events, grants, mem, mmu, privs, rings, traps, victim};

    guest_abi::pv_guest!("attack", main, dom0);

    fn main(si: &'static StartInfo) {
        let mode = Mode {
            xen: cmdline_has(b"xen"),
            domu: cmdline_has(b"domu"),
        };
        let fatal = cmdline_value(b"fatal=");
        let repeat = cmdline_value(b"repeat=");
        let number = |key: &[u8]| {
            let digits = cmdline_value(key)?;
            core::str::from_utf8(digits).ok()?.parse::<u32>().ok()
        };
        // The victim: its id and the port it offers us, appended by the toolstack
        // (`evtchn_peer`).
        let victim = match (cmdline_has(b"victim"), number(b"remote="), number(b"port=")) {
            (false, ..) => None,
            (true, Some(dom), Some(offered)) if dom < 0x7ff0 => Some(Victim {
                dom: guest_abi::DomId(dom as u16),
                offered,
            }),
            (true, ..) => {
                println!("FAIL attack.setup: victim needs remote=DOMID port=PORT");
                hypercall::shutdown(ShutdownReason::Crash)
            }
        };
        let passes = match repeat {
            None => 1,
            Some(n) => match parse_count(n) {
                Some(n) => n,
                None => {
                    println!("FAIL attack.setup: bad repeat= count");
                    hypercall::shutdown(ShutdownReason::Crash)
                }
            },
        };
        println!(
            "attack: start, {} pages, expecting {}{}",
            si.nr_pages,
            if mode.xen {
                "Xen 4.17"
            } else {
                "our hypervisor"
            },
            if mode.domu { " as a domU" } else { " as dom0" }
        );
        let mut r = Report::new(mode);
        if let Err(e) = traps::install() {
            println!("FAIL attack.setup: set_trap_table {e}");
            hypercall::shutdown(ShutdownReason::Crash);
        }
        mem::init(si);
        if let Some(name) = fatal {
            traps::fatal(name);
            hypercall::shutdown(ShutdownReason::Poweroff);
        }
        if mode.domu {
            rings::init();
        }
        for pass in 1..=passes {
            if repeat.is_some() {
                println!("attack: pass {pass} of {passes}");
            }
            mmu::run(&mut r, si, pass == 1);
            desc::run(&mut r);
            privs::run(&mut r);
            traps::run(&mut r);
            args::run(&mut r);
            events::run(&mut r);
            grants::run(&mut r);
            devices::run(&mut r);
        }
        if let Some(v) = victim {
            victim::run(&mut r, v);
        }
        if mode.domu {
            rings::run(&mut r, si);
        }
        mmu::release_running_l4(&mut r);
        if let Some(v) = victim {
            victim::finish(&mut r, v);
        }
        println!("attack: {} cases", r.cases());
        let ok = r.finish();
        // Still alive after everything: the hypervisor answers an ordinary call.
        println!(
            "attack: alive, xen_version {:?}",
            hypercall::xen_version().ok()
        );
        println!(
            "attack: powering off{}",
            if ok { "" } else { " (with failures)" }
        );
        hypercall::shutdown(ShutdownReason::Poweroff)
    }

    /// A decimal count from 1 to 10000.
    fn parse_count(digits: &[u8]) -> Option<u32> {
        let n = core::str::from_utf8(digits).ok()?.parse::<u32>().ok()?;
        (1..=10_000).contains(&n).then_some(n)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
