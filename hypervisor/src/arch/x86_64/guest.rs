//! Loading a guest's machine state: page tables, segment bases, the FPU trap.

use super::cpu::wrmsr;
use super::guest_entry::MSR_KERNEL_GS_BASE;
use crate::mm::Mfn;
use crate::pv::vcpu::PvVcpu;
use x86_64::PhysAddr;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr3, Cr3Flags};
use x86_64::structures::paging::PhysFrame;

const MSR_FS_BASE: u32 = 0xc000_0100;

/// Loads `table` into CR3 unless it is already there.
///
/// # Safety
/// `table` must be a validated guest L4 whose hypervisor slots map the hypervisor.
pub unsafe fn load_table(table: Mfn) {
    let (current, _) = Cr3::read();
    if current.start_address().as_u64() != table.addr() {
        let frame = PhysFrame::containing_address(PhysAddr::new(table.addr()));
        // SAFETY: the caller vouches that the table maps the hypervisor like ours.
        unsafe { Cr3::write(frame, Cr3Flags::empty()) };
    }
}

/// Makes the hardware match the vCPU's current mode: its page tables and its GS base (which
/// lives in `KERNEL_GS_BASE` while the hypervisor runs, and is swapped in on return).
pub fn load_mode(vcpu: &PvVcpu) {
    if let Some(table) = vcpu.active_table() {
        // SAFETY: the vCPU's tables were validated when installed as its base pointers.
        unsafe { load_table(table) };
    }
    // SAFETY: writing the inactive GS base only affects the guest after `swapgs`.
    unsafe { wrmsr(MSR_KERNEL_GS_BASE, vcpu.active_gs_base()) };
}

/// Loads the guest's FS base.
pub fn set_fs_base(base: u64) {
    // SAFETY: FS is not used by the hypervisor; the value was checked to be canonical.
    unsafe { wrmsr(MSR_FS_BASE, base) };
}

/// Sets or clears CR0.TS, so the guest's next FPU instruction traps (or not).
pub fn set_fpu_trap(ts: bool) {
    // SAFETY: CR0.TS only changes whether FPU/SSE instructions raise #NM.
    unsafe {
        Cr0::update(|f| f.set(Cr0Flags::TASK_SWITCHED, ts));
    }
}
