//! The machine as hypercall handlers see it.

use crate::arch::x86_64::{cpu, guest, serial, time};
use crate::hypercall::Host;
use crate::pv::emulate::PrivHost;
use crate::pv::vcpu::PvVcpu;
use core::sync::atomic::{AtomicU64, Ordering};
use guest_abi::DomId;
use guest_abi::xen::VcpuInfo;

/// The highest machine frame number, set at boot.
pub static MAX_MFN: AtomicU64 = AtomicU64::new(0);

/// [`Host`] for the running vCPU.
pub struct KernelHost {
    /// The running vCPU's `vcpu_info`, direct-mapped.
    pub vcpu_info: *mut VcpuInfo,
    /// Whether the running domain is dom0 (which is granted the machine's I/O ports).
    pub privileged: bool,
}

impl Host for KernelHost {
    fn console_write(&mut self, _domain: DomId, bytes: &[u8]) {
        serial::write_bytes(bytes);
    }

    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        serial::read_bytes(buf)
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

    fn vcpu_info(&mut self) -> &mut VcpuInfo {
        // SAFETY: the pointer is the running vCPU's slot in its domain's shared-info frame,
        // which the hypervisor owns for the domain's lifetime; only this CPU touches it while
        // the hypercall runs.
        unsafe { &mut *self.vcpu_info }
    }

    fn max_mfn(&self) -> u64 {
        MAX_MFN.load(Ordering::Relaxed)
    }

    fn now_ns(&self) -> u64 {
        time::now()
    }
}

impl PrivHost for KernelHost {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        cpu::cpuid(leaf, subleaf)
    }

    fn port_permitted(&self, port: u16, size: u8) -> bool {
        self.privileged && !cpu::hypervisor_owns_ports(port, size)
    }

    fn port_in(&mut self, port: u16, size: u8) -> u32 {
        // SAFETY: the port is granted to dom0 and not used by the hypervisor.
        unsafe { cpu::port_in(port, size) }
    }

    fn port_out(&mut self, port: u16, size: u8, value: u32) {
        // SAFETY: as for `port_in`.
        unsafe { cpu::port_out(port, size, value) }
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
        Host::vcpu_info(self).arch.cr2
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
