//! Scheduling and virtual timers: which vCPU runs on which CPU, when, and what wakes it.
//!
//! - [`scheduler`]: a round-robin model with per-CPU run queues, blocking, pausing and an idle
//!   decision.
//! - [`timer`]: the per-CPU timer queue and the vCPU timer hypercalls (`VCPUOP_*_timer`,
//!   `set_timer_op`), which produce `VIRQ_TIMER` events.
//! - [`ops`]: `SCHEDOP_block`, `SCHEDOP_poll` and `SCHEDOP_yield` over the scheduler and the
//!   event channels.
//!
//! The hypervisor drives it like this on each CPU: on a timer interrupt, pop expired timers and
//! act on each ([`timer::on_expiry`]); then, and whenever an operation reports that this CPU
//! must reschedule, call [`scheduler::Scheduler::schedule`] and switch to its decision,
//! programming the hardware timer for `Decision::until`.

pub mod blocking;
pub mod runqueue;
pub mod scheduler;
pub mod timer;

#[cfg(test)]
mod tests;

use crate::event::abi::{DomId, VcpuId};

/// A vCPU anywhere in the system: a domain and a vCPU number within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VcpuRef {
    /// The vCPU's domain.
    pub domain: DomId,
    /// The vCPU's number in its domain.
    pub vcpu: VcpuId,
}

pub use scheduler::{CpuId, CpuSet, Decision, RunState, Scheduler};
pub use timer::{TimerAction, TimerKey, TimerKind, TimerQueue, VcpuTimers};
