//! `dom0`: the dom0 PV kernel. It runs the toolstack ([`dom0_tools::Toolstack`]) on the
//! hypervisor console: an `xl> ` prompt, lines read with `console_io(CONSOLEIO_read)`,
//! each executed and answered; between keystrokes it drains the domains' console rings
//! and applies the shutdown policy when `VIRQ_DOM_EXC` fires. With `script` (or
//! `script=PATH`) on its command line it runs the commands of `/script` (or PATH) from its
//! ramdisk instead of the terminal and powers the machine off at the end.
//!
//! Its ramdisk (multiboot module 1, `start_info.mod_start/mod_len`) is a newc cpio archive:
//! the configuration files and kernels that `create` reads. `docs/TOOLSTACK.md` is the
//! user's guide; `dom0_kernel` holds the pieces and says what they assume.
//!
//! The host build is an empty program, so that `cargo test` and clippy can build the
//! workspace; the host tests cover the kernel's pure parts (line editing, the session).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

#[cfg(any(test, target_os = "none"))]
mod dom0_kernel;

#[cfg(target_os = "none")]
mod guest {
    guest_abi::pv_guest!("dom0-tools", crate::dom0_kernel::main, dom0);
}

#[cfg(not(target_os = "none"))]
fn main() {}
