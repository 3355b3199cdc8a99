//! The machine as hypercall handlers and the instruction emulator see it.

use super::domain::{DomainEventState, EventView};
use crate::arch::x86_64::direct_map;
use crate::arch::x86_64::{cpu, guest, pci, serial};
use crate::event::shared::{DomainShared, MovedVcpuInfo, VcpuInfo};
use crate::hypercall::event::{Sched, Timers, World};
use crate::hypercall::grant::GrantFrames;
use crate::hypercall::grant_map::ActiveGrants;
use crate::hypercall::{FrameRefused, GrantPteOp, Host};
use crate::mm::Mfn;
use crate::mm::device_frames::DeniedFrames;
use crate::mm::machine_map::MACHINE_MAP;
use crate::mm::pv::GrantPte;
use crate::pv::emulate::PrivHost;
use crate::pv::io_ports::GuestPorts;
use crate::pv::vcpu::PvVcpu;
use crate::time::pvclock::PvClock;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use guest_abi::memory::E820Entry;
use guest_abi::{DomId, XenError};

/// The highest machine frame number, set at boot.
pub static MAX_MFN: AtomicU64 = AtomicU64::new(0);

/// [`Host`] for the running vCPU.
pub struct KernelHost<'a> {
    /// Whether the running domain's console output is in the middle of a line.
    pub console_mid_line: &'a mut bool,
    /// The running domain's id.
    pub domain: crate::event::abi::DomId,
    /// The running domain's latched PCI CONFIG_ADDRESS (port `0xcf8`).
    pub pci_cf8: &'a mut u32,
    /// The running vCPU's id.
    pub vcpu_id: u32,
    /// The running domain's privilege (dom0 is granted the machine's I/O ports).
    pub privilege: Option<crate::privilege::Privilege>,
    /// Event channels of all domains, the running one's included.
    pub events: EventView<'a>,
    /// The scheduler.
    pub sched: &'a mut Sched,
    /// The CPU's timers.
    pub timers: &'a mut Timers,
    /// The CPU's clock.
    pub clock: &'a PvClock,
}

impl KernelHost<'_> {
    /// The running domain's event state ([`super::exit`] always builds the host with it).
    fn own(&self) -> &DomainEventState {
        match self.events.current() {
            Some(e) => e,
            None => own_state_missing(),
        }
    }

    /// The running domain's shared-info view and the scheduler, together (blocking needs both).
    pub fn shared_and_sched(&mut self) -> (&DomainShared, &mut Sched) {
        let shared = match self.events.current() {
            Some(e) => &e.shared,
            None => own_state_missing(),
        };
        (shared, self.sched)
    }

    /// The running vCPU's `vcpu_info`.
    pub fn vcpu_info(&self) -> &'static VcpuInfo {
        let shared = self.shared();
        shared
            .vcpu_info(crate::event::abi::VcpuId(self.vcpu_id))
            .unwrap_or(&shared.page().vcpu_info[0])
    }
}

#[cold]
fn own_state_missing() -> ! {
    crate::error!("a host for the running vCPU was built without its domain's event state");
    crate::arch::x86_64::power::crash()
}

impl<'a> Host for KernelHost<'a> {
    type Doms = EventView<'a>;

    fn console_write(&mut self, domain: DomId, bytes: &[u8]) {
        if domain.0 == 0 {
            serial::write_bytes(bytes);
            return;
        }
        // A domU's lines are prefixed with its id, as Xen does.
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            if !*self.console_mid_line {
                serial::print(format_args!("(d{}) ", domain.0));
            }
            serial::write_bytes(line);
            *self.console_mid_line = !line.ends_with(b"\n");
        }
    }

    fn console_read(&mut self, _: crate::privilege::Privilege, buf: &mut [u8]) -> usize {
        super::console::read_input(buf)
    }

    fn sync_mode(&mut self, vcpu: &PvVcpu) {
        guest::load_mode(vcpu);
    }

    fn set_fs_base(&mut self, base: u64) {
        guest::set_fs_base(base);
    }

    fn set_fpu_trap(&mut self, ts: bool) {
        guest::set_fpu_trap(ts);
    }

    fn shared(&self) -> &DomainShared {
        &self.own().shared
    }

    fn register_vcpu_info(&mut self, vcpu: u32, mfn: u64, offset: u32) -> Result<(), XenError> {
        use crate::mm::pv::PageType;
        let mut guard = super::mmu::MMU.lock();
        let mmu = guard.as_mut().ok_or(XenError::NoSys)?;
        let me = mmu.lookup(self.domain).ok_or(XenError::Srch)?;
        // Xen answers -EINVAL for a frame that is not the caller's or cannot be writable.
        super::mmu::honour(mmu.get_page_and_type(me, Mfn(mfn), PageType::Writable))
            .map_err(|_| XenError::Inval)?;
        // The frame is the domain's RAM, held with a writable type reference until the domain
        // is destroyed, so it stays a plain data page; the caller checked that `offset` is
        // 8-byte aligned and leaves room for the 64-byte structure.
        let Some(info) = direct_map::view::<VcpuInfo>(Mfn(mfn), offset as usize) else {
            super::mmu::honour(mmu.put_page_and_type(Mfn(mfn)));
            return Err(XenError::Inval);
        };
        let Some(own) = self.events.current.as_mut().map(|(_, e)| &mut e.shared) else {
            own_state_missing()
        };
        if !own.relocate(crate::event::abi::VcpuId(vcpu), MovedVcpuInfo { mfn, info }) {
            super::mmu::honour(mmu.put_page_and_type(Mfn(mfn)));
            return Err(XenError::Inval);
        }
        crate::time::pvclock::publish(&info.time, &self.clock.record(), 0);
        Ok(())
    }

    fn vcpu_is_up(&self, vcpu: u32) -> Option<bool> {
        let v = crate::sched::scheduler::vcpu(self.domain, crate::event::abi::VcpuId(vcpu));
        self.sched.is_up(v)
    }

    fn read_descriptor(&self, vcpu: &PvVcpu, selector: u16) -> Option<u64> {
        super::mmu::read_descriptor(vcpu, selector)
    }

    fn alloc_shared_frame(&mut self, dom: DomId) -> Option<u64> {
        super::mmu::alloc_shared_frame(dom.0).map(|m| m.0)
    }

    fn shared_frame_unused(&self, frame: u64) -> bool {
        let guard = super::mmu::MMU.lock();
        guard
            .as_ref()
            .and_then(|mmu| mmu.frame(Mfn(frame)).copied())
            .is_some_and(|f| f.count() == 1)
    }

    fn free_shared_frame(&mut self, frame: u64) {
        if let Some(mmu) = super::mmu::MMU.lock().as_mut() {
            super::mmu::free_shared_frame(mmu, Mfn(frame));
        }
    }

    fn m2p_frames(&self) -> (u64, u64) {
        super::mmu::m2p_frames()
    }

    fn world(&mut self) -> World<'_, EventView<'a>> {
        World {
            doms: &mut self.events,
            sched: self.sched,
            timers: self.timers,
        }
    }

    fn max_mfn(&self) -> u64 {
        MAX_MFN.load(Ordering::Relaxed)
    }

    fn machine_memory(&self) -> (&[E820Entry], DeniedFrames) {
        let map = MACHINE_MAP.get().map_or(&[][..], |m| m.entries());
        let madt = crate::boot::madt::MACHINE_MADT.get();
        (map, DeniedFrames::new(madt, super::mmu::io_frame_limit()))
    }

    fn now_ns(&self) -> u64 {
        self.clock.now(cpu::rdtsc())
    }

    fn preempt_check(&mut self) -> bool {
        super::exit_clock::exit_ticks() > crate::hypercall::exit_times::PREEMPT_TICKS
    }

    fn mmu_hypercall(
        &mut self,
        nr: guest_abi::Hypercall,
        args: &mut [u64; 5],
        vcpu: &mut PvVcpu,
        domain: &mut crate::hypercall::DomainInfo,
    ) -> crate::hypercall::HcResult {
        super::mmu::hypercall(nr, args, vcpu, domain)
    }

    fn foreign_grant_table(&mut self, dom: DomId) -> Option<(&GrantFrames, &mut ActiveGrants)> {
        let v = &mut self.events;
        v.before
            .iter_mut()
            .chain(v.after.iter_mut())
            .find(|d| d.info.id == dom)
            .map(|d| (&d.info.grant_frames, &mut d.info.grant_active))
    }

    fn grant_pte(
        &mut self,
        vcpu: &PvVcpu,
        at: GrantPte,
        op: GrantPteOp,
    ) -> Result<(), FrameRefused> {
        let mut guard = super::mmu::MMU.lock();
        let mmu = guard.as_mut().ok_or(FrameRefused::NotOwned)?;
        let me = mmu.lookup(self.domain).ok_or(FrameRefused::NotOwned)?;
        let vmm = vcpu.mm.as_ref().ok_or(FrameRefused::NotWritable)?;
        let outcome = match op {
            GrantPteOp::Map { granter, pte } => mmu.map_grant(me, vmm, at, granter, pte),
            GrantPteOp::Unmap { pte, new_va } => mmu.unmap_grant(me, vmm, at, pte, new_va),
        };
        let result = super::mmu::honour(outcome);
        // The entry changed under a live address space: no stale translation may survive.
        super::mmu::flush_tlb_all();
        result.map_err(|e| match e {
            crate::mm::pv::PvMmError::NotMappable { .. } => FrameRefused::NotOwned,
            _ => FrameRefused::NotWritable,
        })
    }

    fn grant_word(&mut self, frame: u64, offset: usize) -> Option<&'static AtomicU32> {
        // Grant-table frames are the hypervisor's, shared with their domain for its life.
        direct_map::view(Mfn(frame), offset)
    }

    fn get_frame(&mut self, owner: DomId, mfn: u64, writable: bool) -> Result<(), FrameRefused> {
        use crate::mm::pv::PageType;
        let mut guard = super::mmu::MMU.lock();
        let mmu = guard.as_mut().ok_or(FrameRefused::NotOwned)?;
        if !writable {
            return mmu
                .get_page(owner, Mfn(mfn))
                .then_some(())
                .ok_or(FrameRefused::NotOwned);
        }
        let d = mmu.lookup(owner).ok_or(FrameRefused::NotOwned)?;
        super::mmu::honour(mmu.get_page_and_type(d, Mfn(mfn), PageType::Writable)).map_err(|e| {
            match e {
                crate::mm::pv::PvMmError::BadReference { .. } => FrameRefused::NotOwned,
                _ => FrameRefused::NotWritable,
            }
        })
    }

    fn put_frame(&mut self, mfn: u64, writable: bool) {
        let mut guard = super::mmu::MMU.lock();
        let Some(mmu) = guard.as_mut() else { return };
        if writable {
            super::mmu::honour(mmu.put_page_and_type(Mfn(mfn)));
        } else {
            super::mmu::honour(mmu.put_page(Mfn(mfn)));
        }
    }

    fn copy_frame_bytes(&mut self, dst: (u64, u16), src: (u64, u16), len: u16) {
        let copied = direct_map::copy_bytes(
            Mfn(dst.0),
            usize::from(dst.1),
            Mfn(src.0),
            usize::from(src.1),
            usize::from(len),
        );
        debug_assert!(copied, "grant copy ranges were checked");
    }
}

impl GuestPorts for KernelHost<'_> {
    fn port_permitted(&self, port: u16, size: u8) -> bool {
        self.privilege.is_some() && !cpu::hypervisor_owns_ports(port, size)
    }

    fn port_in(&mut self, port: u16, size: u8) -> u32 {
        cpu::guest_port_in(port, size)
    }

    fn port_out(&mut self, port: u16, size: u8, value: u32) {
        cpu::guest_port_out(port, size, value);
    }

    fn pci_cf8(&self) -> u32 {
        *self.pci_cf8
    }

    fn set_pci_cf8(&mut self, value: u32) {
        *self.pci_cf8 = value;
    }

    fn pci_config_permitted(&self) -> bool {
        self.privilege.is_some()
    }

    fn pci_config_read(&mut self, address: u32, size: u8) -> u32 {
        pci::config_read(address, size)
    }

    fn pci_config_write(&mut self, address: u32, size: u8, value: u32) {
        pci::config_write(address, size, value);
    }
}

impl PrivHost for KernelHost<'_> {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        cpu::cpuid(leaf, subleaf)
    }

    fn host_cr0(&self) -> u64 {
        x86_64::registers::control::Cr0::read_raw()
    }

    fn host_cr4(&self) -> u64 {
        x86_64::registers::control::Cr4::read_raw()
    }

    fn host_efer(&self) -> u64 {
        x86_64::registers::model_specific::Efer::read_raw()
    }

    fn xcr0_supported(&self) -> u64 {
        cpu::xcr0_supported()
    }

    fn set_xcr0(&mut self, value: u64) {
        cpu::set_xcr0(value);
    }

    fn guest_cr2(&mut self) -> u64 {
        self.vcpu_info().arch_cr2.load(Ordering::SeqCst)
    }

    fn sync_mode(&mut self, vcpu: &PvVcpu) {
        guest::load_mode(vcpu);
    }

    fn set_fs_base(&mut self, base: u64) {
        guest::set_fs_base(base);
    }

    fn set_fpu_trap(&mut self, ts: bool) {
        guest::set_fpu_trap(ts);
    }
}
