//! `callback_op` (`callback.h`) and `physdev_op` (`physdev.h`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::macros::xen_enum;

xen_enum! {
    /// `callback_register.type`.
    pub enum CallbackType: u16, prefix "CALLBACKTYPE_" {
        /// Event upcall.
        Event = 0 => "event",
        /// Failsafe (bad segment on return to guest).
        Failsafe = 1 => "failsafe",
        /// 64-bit `syscall` from guest user mode.
        Syscall = 2 => "syscall",
        /// Old number of `sysenter`.
        SysenterDeprecated = 3 => "sysenter_deprecated",
        /// NMI.
        Nmi = 4 => "nmi",
        /// `sysenter` from 32-bit user mode.
        Sysenter = 5 => "sysenter",
        /// 32-bit `syscall` from user mode.
        Syscall32 = 7 => "syscall32",
    }
}

xen_enum! {
    /// `callback_op` sub-ops.
    pub enum CallbackOp: u32, prefix "CALLBACKOP_" {
        /// Register a callback (`callback_register`).
        Register = 0 => "register",
        /// Unregister one (`callback_unregister`).
        Unregister = 1 => "unregister",
    }
}

/// `CALLBACKF_mask_events`: mask events while in the callback.
pub const CALLBACKF_MASK_EVENTS: u16 = 1 << 0;

/// `struct callback_register`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CallbackRegister {
    /// [`CallbackType`].
    pub type_: u16,
    /// `CALLBACKF_*`.
    pub flags: u16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: u32,
    /// Handler address (`xen_callback_t`).
    pub address: u64,
}

/// `struct callback_unregister`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CallbackUnregister {
    /// [`CallbackType`].
    pub type_: u16,
    /// Unused.
    pub _unused: u16,
}

xen_enum! {
    /// `physdev_op` sub-ops.
    pub enum PhysdevOp: u32, prefix "PHYSDEVOP_" {
        /// Old: notify unmask.
        IrqUnmaskNotify = 4 => "IRQ_UNMASK_NOTIFY",
        /// Query an IRQ's status.
        IrqStatusQuery = 5 => "irq_status_query",
        /// Set the I/O privilege level (`physdev_set_iopl`).
        SetIopl = 6 => "set_iopl",
        /// Set the I/O bitmap.
        SetIobitmap = 7 => "set_iobitmap",
        /// Read an IO-APIC register.
        ApicRead = 8 => "apic_read",
        /// Write an IO-APIC register.
        ApicWrite = 9 => "apic_write",
        /// Allocate an IRQ vector.
        AllocIrqVector = 10 => "alloc_irq_vector",
        /// Free an IRQ vector.
        FreeIrqVector = 11 => "free_irq_vector",
        /// End of interrupt.
        Eoi = 12 => "eoi",
        /// Map a physical IRQ.
        MapPirq = 13 => "map_pirq",
        /// Unmap a physical IRQ.
        UnmapPirq = 14 => "unmap_pirq",
        /// Add a PCI device.
        ManagePciAdd = 15 => "manage_pci_add",
        /// Remove a PCI device.
        ManagePciRemove = 16 => "manage_pci_remove",
        /// PIRQ EOI frame (v1).
        PirqEoiGmfnV1 = 17 => "pirq_eoi_gmfn_v1",
        /// Restore MSI state.
        RestoreMsi = 19 => "restore_msi",
        /// Add a PCI device (extended).
        ManagePciAddExt = 20 => "manage_pci_add_ext",
        /// Set up a GSI.
        SetupGsi = 21 => "setup_gsi",
        /// Get a free PIRQ.
        GetFreePirq = 23 => "get_free_pirq",
        /// Report an MMCFG region.
        PciMmcfgReserved = 24 => "pci_mmcfg_reserved",
        /// Add a PCI device (segment-aware).
        PciDeviceAdd = 25 => "pci_device_add",
        /// Remove a PCI device (segment-aware).
        PciDeviceRemove = 26 => "pci_device_remove",
        /// Restore MSI state (segment-aware).
        RestoreMsiExt = 27 => "restore_msi_ext",
        /// PIRQ EOI frame (v2).
        PirqEoiGmfnV2 = 28 => "pirq_eoi_gmfn_v2",
        /// USB debug port operations.
        DbgpOp = 29 => "dbgp_op",
        /// Prepare MSI-X.
        PrepareMsix = 30 => "prepare_msix",
        /// Release MSI-X.
        ReleaseMsix = 31 => "release_msix",
    }
}

/// `struct physdev_set_iopl`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct PhysdevSetIopl {
    /// The new I/O privilege level (0 to 3).
    pub iopl: u32,
}
