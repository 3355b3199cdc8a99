//! dom0's devices: PCI configuration space through ports `0xcf8`/`0xcfc` (the hypervisor
//! emulates them for the hardware domain, as Xen does) and the functions found on the buses.
//!
//! Port I/O from dom0's kernel (ring 3 on x86-64 PV) traps to the hypervisor, which performs
//! it when the virtual I/O privilege level allows: dom0 raises it to 1 with
//! `PHYSDEVOP_set_iopl` first, as Linux does on Xen.

mod ports;

use dom0_tools::pci::{self, BarKind, Function};
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
        if function.vendor == VIRTIO_VENDOR {
            describe_virtio(function);
        }
    }
    found
}

/// The vendor ID of virtio devices.
const VIRTIO_VENDOR: u16 = 0x1af4;

/// Prints a virtio function's BARs and capability IDs (vendor capabilities, 0x09, locate the
/// modern transport's structures), the driver's starting point.
fn describe_virtio(function: &Function) {
    let config = &mut ports::PortConfig;
    let mut line = alloc::format!("dom0: pci {}", function.address);
    for bar in pci::bar::bars(config, function.address) {
        let kind = match bar.kind {
            BarKind::Io => "io",
            BarKind::Memory32 { .. } => "mem",
            BarKind::Memory64 { .. } => "mem64",
        };
        line += &alloc::format!(" bar{} {kind} {:#x}+{:#x}", bar.index, bar.base, bar.size);
    }
    let caps = pci::capabilities(config, function.address);
    line += &alloc::format!(", {} capabilities", caps.len());
    println!("{line}");
}
