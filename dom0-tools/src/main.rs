//! `dom0`: the dom0 PV kernel. It runs the toolstack ([`dom0_tools::Toolstack`]) on the
//! hypervisor console: an `xl> ` prompt, lines read with `console_io(CONSOLEIO_read)`,
//! each executed and answered; between keystrokes it drains the domains' console rings
//! and applies the shutdown policy when `VIRQ_DOM_EXC` fires. With `script` (or
//! `script=PATH`) on its command line it runs the commands of `/script` (or PATH) from its
//! ramdisk instead of the terminal and powers the machine off at the end.
//!
//! Its ramdisk (multiboot module 1, `start_info.mod_start/mod_len`) is a newc cpio archive:
//! the configuration files and kernels that `create` reads. `docs/TOOLSTACK.md` is the
//! user's guide; `kernel` holds the pieces and says what they assume.
//!
//! The host build is an empty program, so that `cargo test` and clippy can build the
//! workspace; the host tests cover the kernel's pure parts (line editing, the session).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

#[cfg(any(test, target_os = "none"))]
mod kernel;

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::XenFeature;
    use guest_abi::xen::StartInfo;

    /// Where the bootstrap region starts (`XEN_ELFNOTE_VIRT_BASE`).
    const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;

    guest_abi::xen_elf_notes! {
        guest_os: "dom0-tools",
        guest_version: env!("CARGO_PKG_VERSION"),
        xen_version: "xen-3.0",
        loader: "generic",
        virt_base: VIRT_BASE,
        paddr_offset: VIRT_BASE,
        features: "dom0",
        supported_features: XenFeature::Dom0.bit(),
    }

    guest_abi::guest_main!(main, VIRT_BASE);

    fn main(si: &'static StartInfo) {
        crate::kernel::main(si)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
