//! The x86-64 part of the ABI (`arch-x86/xen.h`, `arch-x86/xen-x86_64.h`): registers, the
//! virtual IDT entry, the vCPU context, the virtual address layout, flat selectors and
//! page-table entry flags.

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `HYPERVISOR_VIRT_START`: start of the range every address space reserves for Xen
/// (L4 slots 256 to 271).
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// `HYPERVISOR_VIRT_END`: end (exclusive) of the hypervisor's range.
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// `MACH2PHYS_VIRT_START`: where guests see the read-only machine-to-phys table.
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// `MACH2PHYS_VIRT_END`: end (exclusive) of the machine-to-phys table.
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;
/// `MACH2PHYS_NR_ENTRIES`: entries the machine-to-phys table can hold.
pub const MACH2PHYS_NR_ENTRIES: u64 = (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) >> 3;

/// `FLAT_RING3_CS32`: flat 32-bit ring-3 code selector.
pub const FLAT_RING3_CS32: u16 = 0xe023;
/// `FLAT_RING3_CS64`: flat 64-bit ring-3 code selector.
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// `FLAT_RING3_DS32`: flat 32-bit ring-3 data selector.
pub const FLAT_RING3_DS32: u16 = 0xe02b;
/// `FLAT_RING3_DS64`: the null selector serves as 64-bit data selector.
pub const FLAT_RING3_DS64: u16 = 0x0000;
/// `FLAT_RING3_SS32`: flat 32-bit ring-3 stack selector.
pub const FLAT_RING3_SS32: u16 = 0xe02b;
/// `FLAT_RING3_SS64`: flat 64-bit ring-3 stack selector.
pub const FLAT_RING3_SS64: u16 = 0xe02b;
/// `FLAT_KERNEL_CS`: a 64-bit PV kernel runs in ring 3 with this code selector.
pub const FLAT_KERNEL_CS: u16 = FLAT_RING3_CS64;
/// `FLAT_KERNEL_DS`: kernel data selector.
pub const FLAT_KERNEL_DS: u16 = FLAT_RING3_DS64;
/// `FLAT_KERNEL_SS`: kernel stack selector.
pub const FLAT_KERNEL_SS: u16 = FLAT_RING3_SS64;
/// `FLAT_USER_CS`: user code selector.
pub const FLAT_USER_CS: u16 = FLAT_RING3_CS64;
/// `FLAT_USER_DS`: user data selector.
pub const FLAT_USER_DS: u16 = FLAT_RING3_DS64;
/// `FLAT_USER_SS`: user stack selector.
pub const FLAT_USER_SS: u16 = FLAT_RING3_SS64;

/// `FIRST_RESERVED_GDT_PAGE`: GDT pages from here on belong to Xen.
pub const FIRST_RESERVED_GDT_PAGE: u32 = 14;
/// `FIRST_RESERVED_GDT_BYTE`.
pub const FIRST_RESERVED_GDT_BYTE: u32 = FIRST_RESERVED_GDT_PAGE * 4096;
/// `FIRST_RESERVED_GDT_ENTRY`.
pub const FIRST_RESERVED_GDT_ENTRY: u32 = FIRST_RESERVED_GDT_BYTE / 8;

/// `SEGBASE_FS`: `set_segment_base` sets the FS base.
pub const SEGBASE_FS: u32 = 0;
/// `SEGBASE_GS_USER`: sets the user GS base.
pub const SEGBASE_GS_USER: u32 = 1;
/// `SEGBASE_GS_KERNEL`: sets the kernel GS base.
pub const SEGBASE_GS_KERNEL: u32 = 2;
/// `SEGBASE_GS_USER_SEL`: loads the user GS selector.
pub const SEGBASE_GS_USER_SEL: u32 = 3;

bitflags! {
    /// `vcpu_guest_context.flags` (`VGCF_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct VgcfFlags: u64 {
        /// The FPU context is valid.
        const I387_VALID = 1 << 0;
        /// The vCPU is in guest kernel mode.
        const IN_KERNEL = 1 << 2;
        /// The failsafe callback masks events.
        const FAILSAFE_DISABLES_EVENTS = 1 << 3;
        /// The syscall callback masks events.
        const SYSCALL_DISABLES_EVENTS = 1 << 4;
        /// The vCPU is online.
        const ONLINE = 1 << 5;
        /// The vCPU entered through `syscall` (x86-64 `iret` hypercall flag).
        const IN_SYSCALL = 1 << 8;
    }
}

bitflags! {
    /// x86-64 page-table entry flags (the bits Xen's PV MMU looks at).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PteFlags: u64 {
        /// Present.
        const PRESENT = 1 << 0;
        /// Writable.
        const RW = 1 << 1;
        /// Accessible from ring 3 (a PV kernel runs in ring 3, so Xen sets it as needed).
        const USER = 1 << 2;
        /// Write-through.
        const PWT = 1 << 3;
        /// Cache disabled.
        const PCD = 1 << 4;
        /// Accessed.
        const ACCESSED = 1 << 5;
        /// Dirty.
        const DIRTY = 1 << 6;
        /// Large page (L2/L3) or PAT (L1).
        const PSE = 1 << 7;
        /// Global.
        const GLOBAL = 1 << 8;
        /// Available to software (Xen: guest-usable bit 9).
        const AVAIL0 = 1 << 9;
        /// Available to software.
        const AVAIL1 = 1 << 10;
        /// Available to software.
        const AVAIL2 = 1 << 11;
        /// No execute.
        const NX = 1 << 63;
    }
}

impl PteFlags {
    /// `_PAGE_PAT` in an L1 entry: the same bit as PSE.
    pub const PAT: Self = Self::PSE;
    /// Mask of the frame number bits of an entry (bits 12..51).
    pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
}

/// `struct trap_info`: one entry of the virtual IDT (`set_trap_table`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct TrapInfo {
    /// Exception vector.
    pub vector: u8,
    /// Bits 0-1: privilege level allowed to raise it with `int`; bit 2: clear event mask.
    pub flags: u8,
    /// Code selector.
    pub cs: u16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: u32,
    /// Handler address.
    pub address: u64,
}

/// `struct cpu_user_regs`: the saved general registers of a vCPU.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
#[allow(missing_docs)]
pub struct CpuUserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    /// Error code of the exception (Xen-private).
    pub error_code: u32,
    /// Exception vector (Xen-private).
    pub entry_vector: u32,
    pub rip: u64,
    pub cs: u16,
    pub _pad0: [u16; 1],
    /// Event mask saved across an upcall.
    pub saved_upcall_mask: u8,
    pub _pad1: [u8; 3],
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u16,
    pub _pad2: [u16; 3],
    pub es: u16,
    pub _pad3: [u16; 3],
    pub ds: u16,
    pub _pad4: [u16; 3],
    pub fs: u16,
    pub _pad5: [u16; 3],
    pub gs: u16,
    pub _pad6: [u16; 3],
}

/// `struct iret_context`: what the guest pushes before the `iret` hypercall.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
#[allow(missing_docs)]
pub struct IretContext {
    pub rax: u64,
    pub r11: u64,
    pub rcx: u64,
    /// `VGCF_IN_SYSCALL` when returning from a syscall.
    pub flags: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// `struct vcpu_guest_context`: the full state of a vCPU (`VCPUOP_initialise`,
/// `XEN_DOMCTL_{get,set}vcpucontext`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuGuestContext {
    /// FXSAVE image.
    pub fpu_ctxt: [u8; 512],
    /// [`VgcfFlags`].
    pub flags: u64,
    /// General registers.
    pub user_regs: CpuUserRegs,
    /// The virtual IDT.
    pub trap_ctxt: [TrapInfo; 256],
    /// LDT linear base.
    pub ldt_base: u64,
    /// LDT entries.
    pub ldt_ents: u64,
    /// GDT machine frames.
    pub gdt_frames: [u64; 16],
    /// GDT entries.
    pub gdt_ents: u64,
    /// Kernel stack selector.
    pub kernel_ss: u64,
    /// Kernel stack pointer.
    pub kernel_sp: u64,
    /// Control registers (CR3 as `xen_pfn_to_cr3(mfn)`; CR1 holds the user base).
    pub ctrlreg: [u64; 8],
    /// Debug registers.
    pub debugreg: [u64; 8],
    /// Event callback address.
    pub event_callback_eip: u64,
    /// Failsafe callback address.
    pub failsafe_callback_eip: u64,
    /// Syscall callback address.
    pub syscall_callback_eip: u64,
    /// Enabled VM assists (bitmap of `VMASST_TYPE_*`).
    pub vm_assist: u64,
    /// FS base.
    pub fs_base: u64,
    /// Kernel GS base.
    pub gs_base_kernel: u64,
    /// User GS base.
    pub gs_base_user: u64,
}

/// `struct arch_vcpu_info`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ArchVcpuInfo {
    /// The virtual CR2 (faulting address of the last page fault).
    pub cr2: u64,
    /// Padding.
    pub pad: u64,
}

/// `struct arch_shared_info`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ArchSharedInfo {
    /// Highest PFN of the P2M.
    pub max_pfn: u64,
    /// Frame of the frame list list of the P2M (for the tools).
    pub pfn_to_mfn_frame_list_list: u64,
    /// NMI reason bits.
    pub nmi_reason: u64,
    /// CR3 of the virtually mapped P2M.
    pub p2m_cr3: u64,
    /// Virtual address of the P2M.
    pub p2m_vaddr: u64,
    /// Generation count of the P2M.
    pub p2m_generation: u64,
}

/// `xen_pfn_to_cr3`: the CR3 value for an L4 frame.
pub const fn xen_pfn_to_cr3(pfn: u64) -> u64 {
    pfn << 12
}

/// `xen_cr3_to_pfn`: the L4 frame of a CR3 value.
pub const fn xen_cr3_to_pfn(cr3: u64) -> u64 {
    cr3 >> 12
}

const _: () = assert!(size_of::<TrapInfo>() == 16);
const _: () = assert!(size_of::<CpuUserRegs>() == 200);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypervisor_range_is_l4_slots_256_to_271() {
        assert_eq!((HYPERVISOR_VIRT_START >> 39) & 511, 256);
        assert_eq!(((HYPERVISOR_VIRT_END - 1) >> 39) & 511, 271);
    }

    #[test]
    fn cr3_conversions() {
        assert_eq!(xen_cr3_to_pfn(xen_pfn_to_cr3(0x1234)), 0x1234);
    }
}
