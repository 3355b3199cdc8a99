//! The guest side of the ABI, for our own PV guests built for `x86_64-unknown-none`.
//!
//! A guest crate calls [`pv_guest!`](crate::pv_guest) with its name and main function (the
//! usual notes and [`VIRT_BASE`]), or [`guest_main!`](crate::guest_main) with its main
//! function and `VIRT_BASE` and gives its notes itself with
//! [`xen_elf_notes!`](crate::xen_elf_notes).
//! It gets: an entry point that switches to a 64 KiB stack, the [`hypercall_page`],
//! hypercall wrappers returning `Result<_, XenError>` ([`hypercall`]), console output
//! ([`print!`](crate::print), [`println!`](crate::println)), and a panic handler that prints
//! the panic and shuts the domain down with `SHUTDOWN_crash`.
//!
//! Nothing here is `#[no_mangle]` or a lang item (the macro defines those in the guest), so
//! the module can be compiled into any bare-metal binary without clashing with it.
//!
//! # Safety
//!
//! What this module assumes, everywhere:
//! - it runs as a 64-bit PV guest started the way `xen.h` describes: `rsi` holds the
//!   virtual address of `start_info` on entry, and the bootstrap region (which holds
//!   `start_info` and, for a domU, the console ring page) stays mapped for the guest's
//!   whole life;
//! - one vCPU, with event upcalls masked (as Xen starts a guest), so nothing runs
//!   concurrently with the code here and there is no reentrancy except a panic;
//! - the hypervisor fills [`hypercall_page`] with 32-byte stubs before the guest starts;
//! - Xen maps the read-only machine-to-phys table at `MACH2PHYS_VIRT_START`.

mod asm_cell;
pub mod console;
pub mod events;
pub mod hypercall;
pub mod traps;
pub mod user;

pub use asm_cell::AsmCell;

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use crate::sched::ShutdownReason;
use crate::xen::StartInfo;

/// Bytes of the stack the runtime switches to at entry (Xen's boot stack is one page).
pub const STACK_SIZE: usize = 64 * 1024;

/// The runtime's stack; [`guest_main!`](crate::guest_main) defines one.
#[repr(C, align(16))]
pub struct Stack([u8; STACK_SIZE]);

impl Stack {
    /// A zeroed stack.
    pub const fn new() -> Self {
        Self([0; STACK_SIZE])
    }
}

impl Default for Stack {
    fn default() -> Self {
        Self::new()
    }
}

/// The `VIRT_BASE` of the guests that [`pv_guest!`](crate::pv_guest) defines: the bootstrap
/// region starts here, and their linker script loads them 2 MiB above it.
pub const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;

static START_INFO: AtomicPtr<StartInfo> = AtomicPtr::new(core::ptr::null_mut());
static STARTED_VIRT_BASE: AtomicU64 = AtomicU64::new(0);

/// The page the hypervisor fills with hypercall stubs (`XEN_ELFNOTE_HYPERCALL_PAGE`).
/// The guest's linker script must place `.text.hypercall_page` on a page boundary.
///
/// # Safety
/// Never call it directly: [`hypercall`] calls the stubs inside it.
#[unsafe(naked)]
#[unsafe(link_section = ".text.hypercall_page")]
pub unsafe extern "C" fn hypercall_page() -> ! {
    core::arch::naked_asm!(".fill 4096, 1, 0xcc")
}

/// The Rust half of the entry point that [`guest_main!`](crate::guest_main) defines:
/// records `start_info` and `virt_base`, runs `main`, then powers the domain off.
///
/// # Safety
/// `info` must be the `rsi` the hypervisor entered the guest with (module assumptions),
/// and this must be called once, at the start of day.
pub unsafe fn start(info: *mut StartInfo, virt_base: u64, main: fn(&'static StartInfo)) -> ! {
    START_INFO.store(info, Ordering::Relaxed);
    STARTED_VIRT_BASE.store(virt_base, Ordering::Relaxed);
    main(start_info());
    hypercall::shutdown(ShutdownReason::Poweroff)
}

/// What the guest's panic handler does: prints the panic, shuts down with
/// `SHUTDOWN_crash`.
pub fn panic(info: &PanicInfo<'_>) -> ! {
    crate::println!("PANIC: {info}");
    hypercall::shutdown(ShutdownReason::Crash)
}

/// The `start_info` the domain was started with.
pub fn start_info() -> &'static StartInfo {
    let ptr = START_INFO.load(Ordering::Relaxed);
    assert!(!ptr.is_null(), "start_info read before the guest started");
    // SAFETY: `ptr` is what Xen passed in rsi at entry: a mapped, aligned start_info page
    // in the bootstrap region, which stays mapped and which nothing else writes (module
    // assumptions).
    unsafe { &*ptr }
}

/// The guest's `VIRT_BASE`: the virtual address of PFN 0 in the bootstrap region.
pub fn virt_base() -> u64 {
    STARTED_VIRT_BASE.load(Ordering::Relaxed)
}

/// The words of the domain's command line (`start_info.cmd_line` split at spaces).
pub fn cmdline_words() -> impl Iterator<Item = &'static [u8]> {
    start_info().cmdline().split(|&b| b == b' ')
}

/// Whether `word` is one of the command line's words.
pub fn cmdline_has(word: &[u8]) -> bool {
    cmdline_words().any(|w| w == word)
}

/// What follows `prefix` (say `b"count="`) in the first command-line word that starts with it.
pub fn cmdline_value(prefix: &[u8]) -> Option<&'static [u8]> {
    cmdline_words().find_map(|w| w.strip_prefix(prefix))
}

/// Makes the crate a PV guest: defines its entry point `xen_guest_start` (which switches
/// to a 64 KiB stack and calls [`start`]), its panic handler ([`panic`]) and the `ENTRY`
/// and `HYPERCALL_PAGE` ELF notes. `$main` runs with the `start_info`; when it returns,
/// the domain powers off. `$virt_base` must be the value of the guest's `virt_base` note.
/// The linker script should say `ENTRY(xen_guest_start)`.
///
/// ```ignore
/// const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
/// guest_abi::guest_main!(main, VIRT_BASE);
/// fn main(start_info: &'static guest_abi::xen::StartInfo) { /* ... */ }
/// ```
#[macro_export]
macro_rules! guest_main {
    ($main:path, $virt_base:expr) => {
        static mut __XEN_GUEST_STACK: $crate::runtime::Stack = $crate::runtime::Stack::new();

        /// The entry point (`XEN_ELFNOTE_ENTRY`).
        ///
        /// # Safety
        /// Only the hypervisor enters here, once, at the start of day.
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        #[unsafe(link_section = ".text.entry")]
        pub unsafe extern "C" fn xen_guest_start() -> ! {
            core::arch::naked_asm!(
                "lea rsp, [rip + {stack} + {size}]",
                "xor ebp, ebp",
                "mov rdi, rsi",
                "call {start}",
                "ud2",
                stack = sym __XEN_GUEST_STACK,
                size = const $crate::runtime::STACK_SIZE,
                start = sym __xen_guest_rust_start,
            )
        }

        extern "C" fn __xen_guest_rust_start(info: *mut $crate::xen::StartInfo) -> ! {
            // SAFETY: called once, from the entry point, with the rsi Xen entered with.
            unsafe { $crate::runtime::start(info, $virt_base, $main) }
        }

        #[panic_handler]
        fn __xen_guest_panic(info: &core::panic::PanicInfo<'_>) -> ! {
            $crate::runtime::panic(info)
        }

        $crate::xen_elf_notes! {
            entry: xen_guest_start,
            hypercall_page: $crate::runtime::hypercall_page,
        }
    };
}

/// A whole PV guest in one line: the notes every guest of this project gives
/// (`GUEST_OS` = `$name`, `GUEST_VERSION` = the crate's version, `XEN_VERSION` "xen-3.0",
/// `LOADER` "generic", `VIRT_BASE` and `PADDR_OFFSET` = [`VIRT_BASE`]), and with `dom0` also
/// `FEATURES` "dom0" and `SUPPORTED_FEATURES` = dom0; then [`guest_main!`](crate::guest_main)
/// with `$main` and [`VIRT_BASE`]. The linker script must load the guest at `VIRT_BASE + 2 MiB`
/// with `p_paddr = p_vaddr` (what `guests/*/link.ld` do).
///
/// ```ignore
/// guest_abi::pv_guest!("hello", main, dom0);
/// fn main(start_info: &'static guest_abi::xen::StartInfo) { /* ... */ }
/// ```
#[macro_export]
macro_rules! pv_guest {
    ($name:expr, $main:path, dom0) => {
        $crate::pv_guest!(@notes $name, features: "dom0", supported_features: $crate::XenFeature::Dom0.bit(),);
        $crate::guest_main!($main, $crate::runtime::VIRT_BASE);
    };
    ($name:expr, $main:path) => {
        $crate::pv_guest!(@notes $name,);
        $crate::guest_main!($main, $crate::runtime::VIRT_BASE);
    };
    (@notes $name:expr, $($more:tt)*) => {
        $crate::xen_elf_notes! {
            guest_os: $name,
            guest_version: env!("CARGO_PKG_VERSION"),
            xen_version: "xen-3.0",
            loader: "generic",
            virt_base: $crate::runtime::VIRT_BASE,
            paddr_offset: $crate::runtime::VIRT_BASE,
            $($more)*
        }
    };
}
