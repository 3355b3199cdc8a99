//! The dom0 toolstack: an xl-like command line, xl configuration files, the PV domain
//! builder, the console backend, the xenstore and the domain lifecycle policy, as a pure
//! library.
//!
//! Everything here runs inside the dom0 kernel, which drives it through two traits:
//! [`hv::Hypervisor`] (the hypercalls: domctl, sysctl, memory, event channels, foreign
//! frame writes; [`requests`] builds their arguments) and [`files::Files`] (the dom0
//! ramdisk, usually a [`cpio::Archive`]). [`Toolstack`] is the entry point:
//! [`Toolstack::execute`] runs one command line, [`Toolstack::poll_consoles`] drains the
//! domains' console rings and services their xenstore rings, [`Toolstack::console_input`]
//! feeds the attached one,
//! [`Toolstack::on_dom_exc`] applies the shutdown policy when `VIRQ_DOM_EXC` fires.
//! Host tests drive it all with a fake hypervisor that models memory (`fake.rs`). The dom0
//! kernel itself is this crate's `dom0` binary (`src/main.rs`, `src/dom0_kernel/`).
//!
//! Modules: [`cli`] (command lines), [`config`] (xl.cfg files), [`cpio`] and [`files`]
//! (the dom0 archive and path rules), [`blkback`] (the block backend and the disk registry), [`block_device`] (dom0's disks as
//! the block backend sees them), [`builder`] (the PV domain builder), [`console`]
//! (the console ring backend), [`store`] (the xenstore: nodes, permissions, transactions,
//! watches, quotas), [`xenstore`] (its server on a domain's ring), [`domain_nodes`] (what
//! the toolstack writes there for a domain), [`domains`] (the domain table, `list` and
//! `info`), [`toolstack`] (commands, lifecycle, shutdown policy). `docs/TOOLSTACK.md` is the user's
//! guide.
//!
//! Safety: the crate has no `unsafe` code. Memory shared with other domains (the console
//! and xenstore rings) is reached through [`console::ConsoleRing`] and
//! [`shared_page::SharedPage`], implemented over atomics.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod blkback;
pub mod block_device;
pub mod builder;
pub mod cli;
pub mod config;
pub mod console;
pub mod cpio;
pub mod domain_nodes;
pub mod domains;
#[cfg(test)]
mod fake;
pub mod files;
pub mod hv;
pub mod kernel_file;
pub mod pci;
pub mod requests;
pub mod shared_page;
pub mod store;
pub mod toolstack;
pub mod xenstore;

pub use toolstack::{CreateError, Created, InputResult, Reply, ToolError, Toolstack, Wait};
