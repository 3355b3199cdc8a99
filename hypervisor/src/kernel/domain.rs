//! Domains and vCPUs as the running hypervisor keeps them, and the machine-wide state
//! (event channels, scheduler, timers, clock) that hypercalls reach through `Host::world`.

use crate::arch::x86_64::fpu::FpuArea;
use crate::event::abi as eabi;
use crate::event::channel::{Channel, EventChannels};
use crate::event::evtchn_ops::{DomainEvents, Domains};
use crate::event::shared::{DomainShared, SharedInfo};
use crate::hypercall::DomainInfo;
use crate::hypercall::event::{Sched, Timers};
use crate::mm::Mfn;
use crate::mm::pv::{DomainRef, Teardown};
use crate::pv::vcpu::PvVcpu;
use crate::time::pvclock::PvClock;
use crate::x86::regs::Regs;
use alloc::boxed::Box;
use alloc::vec::Vec;
use guest_abi::sched::ShutdownReason;

/// One virtual CPU.
pub struct Vcpu {
    /// Its id within the domain.
    pub id: u32,
    /// Paravirtual state.
    pub pv: PvVcpu,
    /// Registers while it is not running.
    pub regs: Regs,
    /// FPU/SSE/AVX state while it is not running.
    pub fpu: Box<FpuArea>,
    /// Whether it has a context (dom0's from the builder, a domU's from `setvcpucontext`).
    pub initialised: bool,
}

impl Vcpu {
    /// A vCPU with no context yet.
    pub fn new(id: u32, pv: PvVcpu) -> Self {
        Self {
            id,
            pv,
            regs: Regs::default(),
            fpu: FpuArea::new(),
            initialised: false,
        }
    }
}

/// One domain.
pub struct Domain {
    /// What hypercalls see of it.
    pub info: DomainInfo,
    /// Pseudo-physical to machine frames: the frames it owns, in PFN order.
    pub p2m: Vec<Mfn>,
    /// Its shared-info frame (owned by the hypervisor, shared with the guest).
    pub shared_info: Mfn,
    /// Its vCPUs.
    pub vcpus: Vec<Vcpu>,
    /// Its handle in the PV MMU.
    pub mm: DomainRef,
    /// Why it shut down, once it has.
    pub shutdown: Option<ShutdownReason>,
    /// Whether a line of its console output is in progress (for the `(dN)` prefix).
    pub console_mid_line: bool,
    /// Its teardown, once `destroydomain` has started it: the domain is dying, off the
    /// scheduler and without event channels, and never runs again.
    pub teardown: Option<Teardown>,
}

impl Domain {
    /// The atomic view of the domain's shared-info page.
    pub fn shared(&self) -> &'static SharedInfo {
        shared_view(self.shared_info)
    }
}

/// The atomic view of a shared-info frame.
pub fn shared_view(frame: Mfn) -> &'static SharedInfo {
    // Shared-info frames are allocated for a domain's lifetime and never freed while it
    // exists; a frame is a whole page, so the view always fits.
    crate::arch::x86_64::direct_map::view(frame, 0)
        .expect("a shared-info frame is direct-mapped RAM")
}

/// One domain's event state.
pub struct DomainEventState {
    /// Domain id.
    pub id: eabi::DomId,
    /// Its ports.
    pub channels: EventChannels<Box<[Channel]>>,
    /// Its shared-info page and where its vCPUs' `vcpu_info` are.
    pub shared: DomainShared,
    /// Paused by its controller (the toolstack).
    pub controller_paused: bool,
}

/// Every domain's event state, for operations that cross domains.
#[derive(Default)]
pub struct EventTable {
    /// One entry per domain.
    pub domains: Vec<DomainEventState>,
}

impl Domains for EventTable {
    type Store = Box<[Channel]>;
    type Shared = DomainShared;

    fn events(
        &mut self,
        id: eabi::DomId,
    ) -> Option<DomainEvents<'_, Box<[Channel]>, DomainShared>> {
        self.domains
            .iter_mut()
            .find(|d| d.id == id)
            .map(|d| DomainEvents {
                channels: &mut d.channels,
                shared: &d.shared,
            })
    }

    fn controller_paused(&self, id: eabi::DomId) -> bool {
        self.domains
            .iter()
            .any(|d| d.id == id && d.controller_paused)
    }
}

/// All domains and which vCPU runs.
pub struct Machine {
    /// Domains, dom0 first.
    pub domains: Vec<Box<Domain>>,
    /// Event channels of all domains.
    pub events: EventTable,
    /// The scheduler.
    pub sched: Sched,
    /// The CPU's timers.
    pub timers: Timers,
    /// The CPU's clock, as published to guests.
    pub clock: PvClock,
    /// The running domain's id.
    pub current: u16,
    /// The running vCPU's id.
    pub current_vcpu: u32,
}

impl Machine {
    /// Position of domain `id` in `domains`.
    pub fn index_of(&self, id: u16) -> Option<usize> {
        self.domains.iter().position(|d| d.info.id.0 == id)
    }

    /// The domain with id `id`.
    pub fn domain_mut(&mut self, id: u16) -> Option<&mut Domain> {
        self.domains
            .iter_mut()
            .find(|d| d.info.id.0 == id)
            .map(|d| &mut **d)
    }
}

/// The machine state, once dom0 exists.
pub static MACHINE: spin::Mutex<Option<Machine>> = spin::Mutex::new(None);
