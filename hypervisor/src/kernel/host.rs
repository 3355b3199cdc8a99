//! The machine as hypercall handlers see it.

use crate::arch::x86_64::{guest, serial, time};
use crate::hypercall::Host;
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
