//! The hypervisor binary: bare-metal only; on the host it is an empty program so that the
//! workspace builds and tests there.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod start;

#[cfg(not(target_os = "none"))]
fn main() {}
