//! Console input: COM1's receive interrupt and the keyboard's (with `console=vga`) drain both
//! devices through the Ctrl-A switch
//! ([`crate::console::input`]); bytes for dom0 wait in a ring for `console_io(CONSOLEIO_read)`
//! and raise `VIRQ_CONSOLE`; bytes for the hypervisor are debug keys (`h` lists them, `q`
//! dumps the domains and raises `VIRQ_DEBUG` on every vCPU, as Xen's `q` does).

use super::domain::{MACHINE, Machine};
use crate::arch::x86_64::{keyboard, pit, serial};
use crate::console::input::{Focus, Input, InputRing, InputSwitch};
use crate::event::abi as eabi;
use crate::event::evtchn_ops::{self as evops, Domains};
use crate::info;

/// What serial input has been routed but not yet read.
struct SerialInput {
    switch: InputSwitch,
    ring: InputRing<256>,
}

static INPUT: spin::Mutex<SerialInput> = spin::Mutex::new(SerialInput {
    switch: InputSwitch::new(),
    ring: InputRing::new(),
});

/// The debug keys and what they do.
const KEYS: [(u8, &str); 3] = [
    (
        b'e',
        "print the longest single exit per kind (hypercall, exception, ...)",
    ),
    (b'h', "print this list of debug keys"),
    (b'q', "dump domain (and guest debug) info"),
];

/// Handles the COM1 and keyboard interrupts (interrupts are off; the machine lock is free):
/// both devices are read whichever raised it, as one stream of typed bytes.
pub fn input_interrupt() {
    let mut bytes = [0u8; 32];
    let mut for_dom0 = false;
    loop {
        let n = serial::read_bytes(&mut bytes);
        let n = n + keyboard::read_bytes(&mut bytes[n..]);
        if n == 0 {
            break;
        }
        // Switches and debug keys, in the order typed (3 Ctrl-A per switch at most).
        let mut actions = [Input::Guest(0); 32];
        let mut nactions = 0;
        {
            let mut input = INPUT.lock();
            let SerialInput { switch, ring } = &mut *input;
            for &b in &bytes[..n] {
                switch.feed(b, |i| match i {
                    Input::Guest(b) => for_dom0 |= ring.push(b),
                    other => {
                        actions[nactions] = other;
                        nactions += 1;
                    }
                });
            }
        }
        for &a in &actions[..nactions] {
            match a {
                Input::Switched(f) => {
                    let to = if f == Focus::Dom0 { "DOM0" } else { "Xen" };
                    info!("*** Serial input to {to} (type 'CTRL-a' three times to switch input)");
                }
                Input::DebugKey(k) => debug_key(k),
                Input::Guest(_) => {}
            }
        }
    }
    if for_dom0 {
        with_machine(|m| {
            let wake = evops::raise_virq(
                &mut m.events(),
                eabi::DomId(0),
                eabi::VcpuId(0),
                eabi::Virq::CONSOLE,
            );
            let _ = m.sched.wake_all(wake);
        });
    }
    pit::eoi(pit::SERIAL_IRQ);
    pit::eoi(keyboard::IRQ);
}

/// Moves waiting dom0 input into `buf`; returns how many bytes.
pub fn read_input(buf: &mut [u8]) -> usize {
    INPUT.lock().ring.pop_into(buf)
}

/// Runs `f` on the machine, if there is one (not during boot), then asks for a scheduling
/// decision, since `f` may have woken a vCPU.
fn with_machine(f: impl FnOnce(&mut Machine)) {
    // Interrupts are off whenever the lock is held, so on one CPU it is free here.
    if let Some(mut guard) = MACHINE.try_lock()
        && let Some(m) = guard.as_mut()
    {
        f(m);
        super::resched::request_reschedule();
    }
}

fn debug_key(k: u8) {
    match k {
        b'h' => {
            info!("'h' pressed -> showing installed handlers");
            for (key, what) in KEYS {
                info!(" key '{}' (ascii '{key:02x}') => {what}", key as char);
            }
        }
        b'e' => {
            info!("'e' pressed -> longest exits");
            super::exit_clock::print_exit_times();
        }
        b'q' => {
            info!("'q' pressed -> dumping domain info");
            with_machine(dump_domains);
        }
        _ => {}
    }
}

fn dump_domains(m: &mut Machine) {
    for d in &m.domains {
        info!(
            "Domain {}: {} pages (max {}), {} vCPU(s){}{}",
            d.info.id.0,
            super::mmu::tot_pages(d.mm),
            d.info.max_pages,
            d.vcpus.len(),
            if d.info.privilege.is_some() {
                ", privileged"
            } else {
                ""
            },
            match d.shutdown {
                Some(r) => r.c_name(),
                None => "",
            }
        );
    }
    let vcpus: alloc::vec::Vec<(u16, u32)> = m
        .domains
        .iter()
        .flat_map(|d| d.vcpus.iter().map(|v| (d.info.id.0, v.id)))
        .collect();
    for (dom, vcpu) in vcpus {
        let (d, v) = (eabi::DomId(dom), eabi::VcpuId(vcpu));
        let port = m
            .events()
            .events(d)
            .and_then(|ev| ev.channels.virq_port(v, eabi::Virq::DEBUG))
            .map_or(0, |p| p.0);
        info!(
            "Notifying guest {dom}:{vcpu} (virq {}, port {port})",
            eabi::Virq::DEBUG.index()
        );
        let wake = evops::raise_virq(&mut m.events(), d, v, eabi::Virq::DEBUG);
        let _ = m.sched.wake_all(wake);
    }
}
