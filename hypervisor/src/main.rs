//! The hypervisor binary: bare-metal only; on the host it is an empty program so that the
//! workspace builds and tests there. Everything, the boot entry included, is in the library
//! (`hypervisor::boot::start`, entered from `arch::x86_64::boot`).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
use hypervisor as _;

#[cfg(not(target_os = "none"))]
fn main() {}
