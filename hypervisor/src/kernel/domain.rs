//! Domains and vCPUs as the running hypervisor keeps them (one record per domain: its
//! hypercall-visible info, event channels, vCPUs and PV MMU slot), and the machine-wide state
//! (scheduler, timers, clock) that hypercalls reach through `Host::world`.

use crate::arch::x86_64::fpu::FpuArea;
use crate::event::abi as eabi;
use crate::event::channel::{Channel, ConfigError, EventChannels};
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

/// One domain: everything the hypervisor keeps about it, in one record.
pub struct Domain {
    /// What hypercalls see of it (its id, privilege, pages, VM assists, grant frames).
    pub info: DomainInfo,
    /// Its event channels and the view of its shared-info page.
    pub events: DomainEventState,
    /// Pseudo-physical to machine frames: the frames it owns, in PFN order.
    pub p2m: Vec<Mfn>,
    /// Its shared-info frame (owned by the hypervisor, shared with the guest).
    pub shared_info: Mfn,
    /// Its vCPUs.
    pub vcpus: Vec<Vcpu>,
    /// Its slot in the PV MMU (the frames it owns and their references).
    pub mm: DomainRef,
    /// Why it shut down, once it has.
    pub shutdown: Option<ShutdownReason>,
    /// Whether a line of its console output is in progress (for the `(dN)` prefix).
    pub console_mid_line: bool,
    /// Its latched PCI CONFIG_ADDRESS (what it last wrote to port `0xcf8` as a dword).
    pub pci_cf8: u32,
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
    /// Its ports.
    pub channels: EventChannels<Box<[Channel]>>,
    /// Its shared-info page and where its vCPUs' `vcpu_info` are.
    pub shared: DomainShared,
}

/// The highest event-channel port of every domain (Xen's default `max_evtchn_port` for the
/// 2-level ABI).
pub const MAX_PORT: u32 = 4095;

impl DomainEventState {
    /// Every port free (port 0 reserved) for a domain of `vcpus` vCPUs whose shared-info page
    /// is `shared_info`.
    pub fn new(shared_info: Mfn, vcpus: u32) -> Result<Self, ConfigError> {
        let storage =
            alloc::vec![Channel::FREE; EventChannels::<Box<[Channel]>>::storage_len(MAX_PORT)];
        Ok(Self {
            channels: EventChannels::new(storage.into_boxed_slice(), vcpus, MAX_PORT)?,
            shared: DomainShared::new(shared_view(shared_info)),
        })
    }
}

/// The event state of every domain, as event-channel operations see it: the whole domain
/// list, or (while a vCPU runs) the list split around the running domain, whose record is
/// borrowed apart (its vCPUs are the handler's) but whose event state is reachable here.
pub struct EventView<'a> {
    /// Domains before the running one (or all of them).
    pub before: &'a mut [Box<Domain>],
    /// The running domain's id and event state.
    pub current: Option<(eabi::DomId, &'a mut DomainEventState)>,
    /// Domains after the running one.
    pub after: &'a mut [Box<Domain>],
}

impl<'a> EventView<'a> {
    /// Every domain's event state.
    pub fn all(domains: &'a mut [Box<Domain>]) -> Self {
        Self {
            before: domains,
            current: None,
            after: &mut [],
        }
    }

    /// The running domain's event state.
    pub fn current(&self) -> Option<&DomainEventState> {
        self.current.as_ref().map(|(_, e)| &**e)
    }
}

impl Domains for EventView<'_> {
    type Store = Box<[Channel]>;
    type Shared = DomainShared;

    fn events(
        &mut self,
        id: eabi::DomId,
    ) -> Option<DomainEvents<'_, Box<[Channel]>, DomainShared>> {
        let e = match &mut self.current {
            Some((cur, e)) if *cur == id => &mut **e,
            _ => {
                let d = self
                    .before
                    .iter_mut()
                    .chain(self.after.iter_mut())
                    .find(|d| d.info.id == id)?;
                &mut d.events
            }
        };
        Some(DomainEvents {
            channels: &mut e.channels,
            shared: &e.shared,
        })
    }
}

/// All domains and which vCPU runs.
pub struct Machine {
    /// Domains, dom0 first.
    pub domains: Vec<Box<Domain>>,
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
    /// Where the running domain sat in `domains` when it was last looked up (a hint: checked
    /// against its id before use, since destroying a domain shifts the ones after it).
    pub current_slot: usize,
}

impl Machine {
    /// Position of domain `id` in `domains`.
    pub fn index_of(&self, id: u16) -> Option<usize> {
        self.domains.iter().position(|d| d.info.id.0 == id)
    }

    /// Position of the running domain in `domains`: the hint, else a search (which renews it).
    pub fn current_index(&mut self) -> Option<usize> {
        let hint = self.current_slot;
        if self
            .domains
            .get(hint)
            .is_some_and(|d| d.info.id.0 == self.current)
        {
            return Some(hint);
        }
        let i = self.index_of(self.current)?;
        self.current_slot = i;
        Some(i)
    }

    /// The domain with id `id`.
    pub fn domain_mut(&mut self, id: u16) -> Option<&mut Domain> {
        self.domains
            .iter_mut()
            .find(|d| d.info.id.0 == id)
            .map(|d| &mut **d)
    }

    /// Every domain's event state.
    pub fn events(&mut self) -> EventView<'_> {
        EventView::all(&mut self.domains)
    }
}

/// The machine state, once dom0 exists.
pub static MACHINE: spin::Mutex<Option<Machine>> = spin::Mutex::new(None);
