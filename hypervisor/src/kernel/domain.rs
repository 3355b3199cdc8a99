//! Domains and vCPUs as the running hypervisor keeps them.

use crate::arch::x86_64::paging::phys_to_virt;
use crate::hypercall::DomainInfo;
use crate::mm::Mfn;
use crate::pv::vcpu::PvVcpu;
use crate::regs::Regs;
use alloc::boxed::Box;
use alloc::vec::Vec;
use guest_abi::xen::VcpuInfo;

/// One virtual CPU.
pub struct Vcpu {
    /// Its id within the domain.
    pub id: u32,
    /// Paravirtual state.
    pub pv: PvVcpu,
    /// Registers while it is not running.
    pub regs: Regs,
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
}

impl Domain {
    /// The `vcpu_info` of vCPU `id` in the shared-info page.
    pub fn vcpu_info(&self, id: u32) -> *mut VcpuInfo {
        let base = phys_to_virt(self.shared_info.addr()) as *mut VcpuInfo;
        base.wrapping_add(id as usize)
    }
}

/// All domains and which vCPU runs.
pub struct Machine {
    /// Domains, dom0 first.
    pub domains: Vec<Box<Domain>>,
    /// Index of the running domain in `domains`.
    pub current: usize,
    /// The running vCPU's id.
    pub current_vcpu: u32,
}

/// The machine state, once dom0 exists.
pub static MACHINE: spin::Mutex<Option<Machine>> = spin::Mutex::new(None);
