//! vCPU operations (`vcpu.h`): `VCPUOP_*` and their structs.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::macros::xen_enum;

xen_enum! {
    /// `vcpu_op` sub-ops.
    pub enum VcpuOp: u32, prefix "VCPUOP_" {
        /// Set the initial context of an offline vCPU (`vcpu_guest_context`).
        Initialise = 0 => "initialise",
        /// Bring a vCPU up.
        Up = 1 => "up",
        /// Take a vCPU down.
        Down = 2 => "down",
        /// Whether a vCPU is up.
        IsUp = 3 => "is_up",
        /// Read runstate information.
        GetRunstateInfo = 4 => "get_runstate_info",
        /// Register a runstate area.
        RegisterRunstateMemoryArea = 5 => "register_runstate_memory_area",
        /// Start a periodic timer.
        SetPeriodicTimer = 6 => "set_periodic_timer",
        /// Stop the periodic timer.
        StopPeriodicTimer = 7 => "stop_periodic_timer",
        /// Arm the one-shot timer.
        SetSingleshotTimer = 8 => "set_singleshot_timer",
        /// Disarm the one-shot timer.
        StopSingleshotTimer = 9 => "stop_singleshot_timer",
        /// Move `vcpu_info` out of the shared info page.
        RegisterVcpuInfo = 10 => "register_vcpu_info",
        /// Send an NMI to a vCPU.
        SendNmi = 11 => "send_nmi",
        /// Physical CPU id (dom0).
        GetPhysid = 12 => "get_physid",
        /// Register a secondary time area.
        RegisterVcpuTimeMemoryArea = 13 => "register_vcpu_time_memory_area",
    }
}

xen_enum! {
    /// `vcpu_runstate_info.state`.
    pub enum Runstate: u32, prefix "RUNSTATE_" {
        /// Running on a physical CPU.
        Running = 0 => "running",
        /// Runnable, waiting for a CPU.
        Runnable = 1 => "runnable",
        /// Blocked.
        Blocked = 2 => "blocked",
        /// Offline.
        Offline = 3 => "offline",
    }
}

/// `VCPU_SSHOTTMR_future`: fail with `-ETIME` if the timeout is already in the past.
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;
/// `XEN_RUNSTATE_UPDATE`: set in `state_entry_time` while the runstate area is updated.
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

/// `struct vcpu_runstate_info`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuRunstateInfo {
    /// [`Runstate`].
    pub state: i32,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: u32,
    /// System time when the current state was entered.
    pub state_entry_time: u64,
    /// Nanoseconds spent in each state.
    pub time: [u64; 4],
}

/// `struct vcpu_register_runstate_memory_area` (and
/// `vcpu_register_time_memory_area`): a guest virtual address.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuRegisterMemoryArea {
    /// The `addr` union: guest virtual address of the area.
    pub addr: u64,
}

/// `struct vcpu_set_periodic_timer`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuSetPeriodicTimer {
    /// Period in nanoseconds.
    pub period_ns: u64,
}

/// `struct vcpu_set_singleshot_timer`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute system time (ns) to fire at.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: u32,
}

/// `struct vcpu_register_vcpu_info`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuRegisterVcpuInfo {
    /// Machine frame holding the new `vcpu_info`.
    pub mfn: u64,
    /// Offset in that frame.
    pub offset: u32,
    /// Reserved.
    pub rsvd: u32,
}

/// `struct vcpu_get_physid`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuGetPhysid {
    /// APIC id (low 32 bits) and ACPI id (high 32 bits).
    pub phys_id: u64,
}
