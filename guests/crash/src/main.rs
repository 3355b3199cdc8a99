//! `crash`: a PV guest that crashes on purpose, so that the toolstack's handling of a
//! crashed domain (`on_crash`, `VIRQ_DOM_EXC`) can be tested.
//!
//! It prints `crash: crashing by HOW` and then, by the first of these words on its command
//! line (default `fault`):
//! - `fault`: writes to an unmapped address with no trap table installed, so the page
//!   fault has no handler and the hypervisor crashes the domain;
//! - `panic`: panics, and the runtime's panic handler shuts down with `SHUTDOWN_crash`;
//! - `ud2`: executes an invalid instruction, again with no handler.
//!
//! Safety: guest-abi's runtime assumptions hold; the one `unsafe` block is the crash.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use guest_abi::println;
    use guest_abi::runtime::cmdline_words;
    use guest_abi::xen::StartInfo;

    /// An address no PV guest has mapped: the bottom page of the address space.
    const UNMAPPED: u64 = 0x10;

    guest_abi::pv_guest!("crash", main);

    fn main(_: &'static StartInfo) {
        let how = cmdline_words()
            .find_map(|w| match w {
                b"fault" | b"panic" | b"ud2" => core::str::from_utf8(w).ok(),
                _ => None,
            })
            .unwrap_or("fault");
        println!("crash: crashing by {how}");
        match how {
            "panic" => panic!("crash: panicking as asked"),
            // SAFETY: not sound, on purpose: the domain dies here and no Rust code runs
            // after the fault (the hypervisor has no handler to bounce it to).
            "ud2" => unsafe { core::arch::asm!("ud2") },
            // SAFETY: as above.
            _ => unsafe { (UNMAPPED as *mut u64).write_volatile(0xdead) },
        }
        println!("crash: still alive after {how}");
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
