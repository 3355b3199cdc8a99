//! A Xen-compatible PV hypervisor for x86-64.
//!
//! The crate is split in two: pure logic (hypercall handlers, the PV MMU, event channels, the
//! scheduler, domain creation, the command line and ACPI parsing, time scaling) that builds
//! and is tested on the host, and the machine: the `arch` layer that touches hardware and the
//! `kernel` glue that runs the pure logic on it, both only in the bare-metal build. `boot`
//! brings the machine up.
//!
//! # Safety
//! `unsafe` code lives only under `arch/`: the rest of the crate is `#![deny(unsafe_code)]`,
//! so the build checks it. `arch` offers safe functions for what the rest needs (frames
//! through the direct map, CPU operations, entering a guest), each stating what it assumes.
//! Those assumptions: one physical CPU runs the hypervisor; the boot code's page tables map
//! the image and the first 4 GiB at the direct-map base until `arch::x86_64::paging` replaces
//! them; and every physical address handed to the direct map was taken from the multiboot2
//! memory map.
#![no_std]
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

// The heap: the kernel's allocator on bare metal, std's in host tests (pure modules that keep
// per-domain tables, such as the grant maptrack, use it on both).
extern crate alloc;

pub mod boot;
pub mod console;
pub mod event;
pub mod hypercall;
pub mod lifecycle;
pub mod mm;
pub mod privilege;
pub mod pv;
pub mod sched;
#[cfg(any(test, feature = "test-doubles"))]
pub mod testing;
pub mod time;
pub mod x86;

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod arch;
#[cfg(target_os = "none")]
pub mod kernel;

/// The Xen version whose ABI the hypervisor speaks (`xen_version`, the CPUID leaves).
pub const XEN_MAJOR: u64 = 4;
/// Its minor version.
pub const XEN_MINOR: u64 = 17;

/// The hypervisor's version, as printed in the banner.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
