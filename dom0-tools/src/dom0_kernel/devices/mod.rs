//! dom0's devices: PCI configuration space through ports `0xcf8`/`0xcfc` (the hypervisor
//! emulates them for the hardware domain, as Xen does) and the functions found on the buses.
//!
//! Port I/O from dom0's kernel (ring 3 on x86-64 PV) traps to the hypervisor, which performs
//! it when the virtual I/O privilege level allows: dom0 raises it to 1 with
//! `PHYSDEVOP_set_iopl` first, as Linux does on Xen.

mod ports;

use dom0_tools::pci::{self, Function};
use guest_abi::println;
use guest_abi::runtime::hypercall;

use alloc::vec::Vec;

/// Raises the I/O privilege level, enumerates PCI and prints one line per function
/// (`bus:dev.fn vendor:device class`). Returns the functions found.
pub fn init() -> Vec<Function> {
    if let Err(e) = hypercall::set_iopl(1) {
        println!("dom0: PHYSDEVOP_set_iopl refused ({e:?}): no devices");
        return Vec::new();
    }
    let found = pci::enumerate(&mut ports::PortConfig);
    if found.is_empty() {
        println!("dom0: pci: no functions answer (configuration space refused?)");
    }
    for function in &found {
        println!("dom0: pci {function}");
    }
    found
}
