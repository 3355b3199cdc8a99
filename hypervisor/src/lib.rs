//! A Xen-compatible PV hypervisor for x86-64.
//!
//! The crate is split in two: pure logic (command line, frame allocation, ACPI table parsing,
//! descriptor encoding, time scaling) that builds and is tested on the host, and the thin
//! `arch` layer that touches hardware and exists only in the bare-metal build.
//!
//! # Safety
//! `unsafe` code lives only under `arch/x86_64/`. It assumes: one physical CPU runs the
//! hypervisor; the boot code's page tables map the image and the first 4 GiB at the direct-map
//! base until `arch::x86_64::paging` replaces them; and every physical address handed to the
//! direct map was taken from the multiboot2 memory map.
#![no_std]

#[cfg(test)]
extern crate std;

#[cfg(target_os = "none")]
extern crate alloc;

pub mod acpi;
pub mod cmdline;
pub mod console_input;
pub mod descriptors;
pub mod event;
pub mod hypercall;
pub mod lifecycle;
pub mod log;
pub mod mm;
pub mod pv;
pub mod pvclock;
pub mod regs;
pub mod rtc;
pub mod sched;
pub mod time;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod kernel;

/// The hypervisor's version, as printed in the banner.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
