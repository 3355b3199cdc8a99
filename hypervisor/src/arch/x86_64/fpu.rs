//! Per-vCPU FPU/SSE/AVX state, saved and restored with XSAVE (FXSAVE where the CPU has no
//! XSAVE) when the CPU switches between vCPUs.

use alloc::boxed::Box;

/// An XSAVE area (64-byte aligned, large enough for x87, SSE and AVX state).
#[repr(C, align(64))]
pub struct FpuArea(pub [u8; 4096]);

/// Offset of MXCSR in the legacy region.
const MXCSR_OFFSET: usize = 24;

impl FpuArea {
    /// The state of a fresh vCPU: the architectural initial state (XSTATE_BV clear) with
    /// SIMD exceptions masked.
    pub fn new() -> Box<Self> {
        let mut a = Box::new(FpuArea([0; 4096]));
        a.0[MXCSR_OFFSET..MXCSR_OFFSET + 4].copy_from_slice(&0x1f80u32.to_le_bytes());
        a
    }
}

fn has_xsave() -> bool {
    x86_64::registers::control::Cr4::read().contains(x86_64::registers::control::Cr4Flags::OSXSAVE)
}

/// Saves the live FPU state into `area`. CR0.TS must be clear.
pub fn save(area: &mut FpuArea) {
    let p = area.0.as_mut_ptr();
    // SAFETY: `area` is a writable, 64-byte aligned, 4 KiB buffer: large enough for every
    // component XCR0 enables on CPUs we run on (x87, SSE, AVX) and for FXSAVE.
    unsafe {
        if has_xsave() {
            core::arch::asm!("xsave64 [{}]", in(reg) p, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack));
        } else {
            core::arch::asm!("fxsave64 [{}]", in(reg) p, options(nostack));
        }
    }
}

/// Loads the FPU state from `area`. CR0.TS must be clear.
pub fn restore(area: &FpuArea) {
    let p = area.0.as_ptr();
    // SAFETY: `area` holds either a state saved by `save` or the initial state of `new`, both
    // well-formed for XRSTOR/FXRSTOR.
    unsafe {
        if has_xsave() {
            core::arch::asm!("xrstor64 [{}]", in(reg) p, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack));
        } else {
            core::arch::asm!("fxrstor64 [{}]", in(reg) p, options(nostack));
        }
    }
}
