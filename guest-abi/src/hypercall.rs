//! Hypercall numbers (`__HYPERVISOR_*` in `xen.h`) and the x86-64 calling convention.
//!
//! A 64-bit PV guest calls hypercall `n` by calling offset `n * 32` of its hypercall page.
//! The stub there puts `n` in `rax` and executes `syscall`. The arguments travel in
//! [`ARG_REGISTERS`] order, the result comes back in `rax`, and `syscall` itself destroys
//! `rcx` and `r11` ([`CLOBBERED_REGISTERS`]).

use crate::macros::xen_enum;

/// Bytes of hypercall page per hypercall stub.
pub const HYPERCALL_STUB_SIZE: usize = 32;

/// The registers that carry hypercall arguments 1 to 5, in order (Xen's `xen.h` says so
/// for x86-64: "rdi, rsi, rdx, r10, r8").
pub const ARG_REGISTERS: [&str; 5] = ["rdi", "rsi", "rdx", "r10", "r8"];

/// The registers the `syscall` instruction overwrites (return `rip` and `rflags`).
pub const CLOBBERED_REGISTERS: [&str; 2] = ["rcx", "r11"];

/// The register that holds the hypercall number on entry and the result on return.
pub const RESULT_REGISTER: &str = "rax";

xen_enum! {
    /// A hypercall number.
    pub enum Hypercall: u32, prefix "__HYPERVISOR_" {
        /// Install the virtual IDT (`trap_info` array).
        SetTrapTable = 0 => "set_trap_table",
        /// Batch of page-table and M2P updates.
        MmuUpdate = 1 => "mmu_update",
        /// Install the guest's GDT frames.
        SetGdt = 2 => "set_gdt",
        /// Set the kernel stack for ring transitions.
        StackSwitch = 3 => "stack_switch",
        /// Register event and failsafe callbacks (and syscall on x86-64).
        SetCallbacks = 4 => "set_callbacks",
        /// Set or clear CR0.TS lazily.
        FpuTaskswitch = 5 => "fpu_taskswitch",
        /// Old scheduler operation interface.
        SchedOpCompat = 6 => "sched_op_compat",
        /// Platform operations (dom0).
        PlatformOp = 7 => "platform_op",
        /// Write a debug register.
        SetDebugreg = 8 => "set_debugreg",
        /// Read a debug register.
        GetDebugreg = 9 => "get_debugreg",
        /// Update one GDT/LDT descriptor.
        UpdateDescriptor = 10 => "update_descriptor",
        /// Memory reservation and physmap operations (`XENMEM_*`).
        MemoryOp = 12 => "memory_op",
        /// Batch of hypercalls.
        Multicall = 13 => "multicall",
        /// Update one PTE by virtual address.
        UpdateVaMapping = 14 => "update_va_mapping",
        /// Set a one-shot timer.
        SetTimerOp = 15 => "set_timer_op",
        /// Old event channel interface.
        EventChannelOpCompat = 16 => "event_channel_op_compat",
        /// Version and feature queries (`XENVER_*`).
        XenVersion = 17 => "xen_version",
        /// Console read/write (`CONSOLEIO_*`).
        ConsoleIo = 18 => "console_io",
        /// Old physdev interface.
        PhysdevOpCompat = 19 => "physdev_op_compat",
        /// Grant table operations (`GNTTABOP_*`).
        GrantTableOp = 20 => "grant_table_op",
        /// Enable or disable a VM assist (`VMASST_*`).
        VmAssist = 21 => "vm_assist",
        /// Update one PTE by virtual address in another domain.
        UpdateVaMappingOtherdomain = 22 => "update_va_mapping_otherdomain",
        /// Return from an exception or event to the guest (x86 only).
        Iret = 23 => "iret",
        /// Virtual CPU operations (`VCPUOP_*`).
        VcpuOp = 24 => "vcpu_op",
        /// Set FS/GS bases (x86-64 only).
        SetSegmentBase = 25 => "set_segment_base",
        /// Extended MMU operations (`MMUEXT_*`).
        MmuextOp = 26 => "mmuext_op",
        /// XSM/FLASK operations.
        XsmOp = 27 => "xsm_op",
        /// NMI callback operations.
        NmiOp = 28 => "nmi_op",
        /// Scheduler operations (`SCHEDOP_*`).
        SchedOp = 29 => "sched_op",
        /// Register or unregister callbacks (`CALLBACKOP_*`).
        CallbackOp = 30 => "callback_op",
        /// Xenoprof profiling.
        XenoprofOp = 31 => "xenoprof_op",
        /// Event channel operations (`EVTCHNOP_*`).
        EventChannelOp = 32 => "event_channel_op",
        /// Physical device operations (`PHYSDEVOP_*`).
        PhysdevOp = 33 => "physdev_op",
        /// HVM operations.
        HvmOp = 34 => "hvm_op",
        /// System control (dom0 toolstack, `XEN_SYSCTL_*`).
        Sysctl = 35 => "sysctl",
        /// Domain control (dom0 toolstack, `XEN_DOMCTL_*`).
        Domctl = 36 => "domctl",
        /// Kexec operations.
        KexecOp = 37 => "kexec_op",
        /// Transcendent memory (removed).
        TmemOp = 38 => "tmem_op",
        /// Argo inter-domain messaging.
        ArgoOp = 39 => "argo_op",
        /// PMU operations.
        XenpmuOp = 40 => "xenpmu_op",
        /// Device-model operations.
        DmOp = 41 => "dm_op",
        /// Hypervisor file system.
        HypfsOp = 42 => "hypfs_op",
        /// Architecture-specific hypercall 0 (x86: machine check).
        Arch0 = 48 => "arch_0",
        /// Architecture-specific hypercall 1.
        Arch1 = 49 => "arch_1",
        /// Architecture-specific hypercall 2.
        Arch2 = 50 => "arch_2",
        /// Architecture-specific hypercall 3.
        Arch3 = 51 => "arch_3",
        /// Architecture-specific hypercall 4.
        Arch4 = 52 => "arch_4",
        /// Architecture-specific hypercall 5.
        Arch5 = 53 => "arch_5",
        /// Architecture-specific hypercall 6.
        Arch6 = 54 => "arch_6",
        /// Architecture-specific hypercall 7.
        Arch7 = 55 => "arch_7",
    }
}

impl Hypercall {
    /// Offset of this hypercall's stub in the hypercall page.
    pub const fn stub_offset(self) -> usize {
        self as usize * HYPERCALL_STUB_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PAGE_SIZE;

    #[test]
    fn every_stub_fits_in_the_page() {
        for &h in Hypercall::ALL {
            assert!(h.stub_offset() + HYPERCALL_STUB_SIZE <= PAGE_SIZE as usize);
        }
    }

    #[test]
    fn decoding_unknown_numbers_gives_enosys() {
        assert_eq!(Hypercall::try_from(11), Err(crate::XenError::NoSys));
        assert_eq!(Hypercall::try_from(36), Ok(Hypercall::Domctl));
        assert_eq!(Hypercall::try_from(u32::MAX), Err(crate::XenError::NoSys));
    }

    #[test]
    fn register_convention_is_xens() {
        assert_eq!(ARG_REGISTERS[3], "r10");
        assert_eq!(ARG_REGISTERS[4], "r8");
        assert_eq!(CLOBBERED_REGISTERS, ["rcx", "r11"]);
    }
}
