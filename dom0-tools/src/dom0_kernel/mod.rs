//! The dom0 kernel: the toolstack library on real hypercalls.
//!
//! - [`session`]: the main loop on the console (prompt, line editing, scripts, waits);
//!   pure, host-tested over a fake machine;
//! - [`editor`]: line editing; pure;
//! - [`spare`]: where dom0's memory beyond its bootstrap region is mapped for the heap;
//!   pure;
//! - `machine` (bare metal only): `main`, and the session's machine on real hypercalls:
//!   - `machine::xen`: the toolstack's [`Hypervisor`](dom0_tools::hv::Hypervisor), with
//!     `hcall` (the hypercalls guest-abi's runtime has no wrapper for) and `mapping`
//!     (pages of other domains and the shared info page mapped into dom0);
//!   - `machine::events`: sleeping on event channels with `SCHEDOP_poll`, and the pvclock;
//!   - `machine::heap`: the global allocator (a `.bss` arena, then the spare memory);
//!   - `machine::spare`: maps the spare memory with `mmu_update`.
//!
//! # Safety
//!
//! On top of guest-abi's runtime assumptions (a PV guest started by the hypervisor, one
//! vCPU, event delivery masked for its whole life, so there is no concurrency inside dom0
//! and no reentrancy), the kernel assumes:
//! - the hypervisor maps the ramdisk it was given at `start_info.mod_start` for
//!   `mod_len` bytes (no `SIF_MOD_START_PFN`) and nothing writes it;
//! - other domains and the hypervisor change shared pages (console rings, the shared info
//!   page) at any time, so those are only reached through atomics or volatile accesses
//!   (`mapping`, `events`);
//! - the pages of `mapping`'s window are never touched as Rust memory, so remapping them
//!   breaks nothing.

pub mod editor;
pub mod session;
pub mod spare;

#[cfg(target_os = "none")]
mod devices;
#[cfg(target_os = "none")]
mod machine;
#[cfg(target_os = "none")]
pub use machine::main;
