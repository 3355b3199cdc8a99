//! Xen's public paravirtualization ABI for x86-64 PV guests, in Rust types.
//!
//! This crate is the one definition of the interface between the hypervisor, the dom0
//! toolstack and every guest. It holds:
//! - the hypercall numbers ([`Hypercall`]), Xen's errno values ([`XenError`]) and every
//!   sub-op as an enum that decodes with `TryFrom` (unknown values give `-ENOSYS`);
//! - the structs exchanged with guests, `#[repr(C)]` and laid out as in Xen 4.17's public
//!   headers (a host test compares every size and offset with the headers' own numbers);
//!   they derive `zerocopy`'s traits so they can be read from and written to guest memory
//!   as bytes;
//! - reading a kernel image's ELF notes ([`image`]) and computing its start-of-day layout
//!   ([`boot`]), both pure and allocation-free;
//! - [`report`], the `PASS`/`FAIL` test report format;
//! - with the `runtime` feature, [`runtime`]: the guest side (entry stub, hypercall page,
//!   hypercall wrappers, console, panic handler) for our own PV guests.
//!
//! Safety: everything but the `runtime` module is safe code. The runtime's assumptions are
//! stated at the top of that module.
#![no_std]
#![cfg_attr(not(all(feature = "runtime", target_os = "none")), forbid(unsafe_code))]
#![warn(missing_docs)]

mod macros;

pub mod arch;
pub mod boot;
pub mod callback;
pub mod console;
pub mod domctl;
pub mod elfnote;
pub mod errno;
pub mod event_channel;
pub mod features;
pub mod grant_table;
pub mod hypercall;
pub mod image;
pub mod io;
pub mod memory;
pub mod payload;
pub mod report;
pub mod sched;
pub mod sysctl;
pub mod types;
pub mod vcpu;
pub mod version;
pub mod xen;
pub mod xenstore;

#[cfg(all(feature = "runtime", target_os = "none"))]
pub mod runtime;

pub use errno::XenError;
pub use features::XenFeature;
pub use hypercall::Hypercall;
pub use types::{DomId, EvtchnPort, Mfn, PAGE_SHIFT, PAGE_SIZE, Pfn, VcpuId, VirtAddr};
