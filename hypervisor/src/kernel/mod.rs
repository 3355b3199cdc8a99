//! The running hypervisor: domains and their vCPUs, the dom0 builder, and the handlers that
//! the arch layer calls on every guest exit. This is the glue between the pure logic
//! (`hypercall`, `pv`) and the machine (`arch`).

pub mod console;
pub mod dom0;
pub mod domain;
pub mod domctl;
pub mod exit;
pub mod exit_clock;
mod host;
pub mod mmu;
pub mod resched;
pub mod vcpu_ops;

use crate::mm::frames::FrameAllocator;

/// The machine's frame allocator.
pub static FRAMES: spin::Mutex<Option<FrameAllocator<'static>>> = spin::Mutex::new(None);
