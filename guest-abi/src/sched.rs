//! Scheduler operations (`sched.h`): `SCHEDOP_*`, `SHUTDOWN_*` and their structs.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::macros::xen_enum;

xen_enum! {
    /// `sched_op` sub-ops.
    pub enum SchedOp: u32, prefix "SCHEDOP_" {
        /// Give up the CPU voluntarily.
        Yield = 0 => "yield",
        /// Block until an event arrives (clears the upcall mask).
        Block = 1 => "block",
        /// Shut the domain down (`sched_shutdown`).
        Shutdown = 2 => "shutdown",
        /// Block until one of some ports is pending or a timeout.
        Poll = 3 => "poll",
        /// Shut another domain down (dom0).
        RemoteShutdown = 4 => "remote_shutdown",
        /// Record a shutdown code without shutting down.
        ShutdownCode = 5 => "shutdown_code",
        /// Arm or disarm a watchdog.
        Watchdog = 6 => "watchdog",
        /// Pin the caller to a physical CPU (hardware domain).
        PinOverride = 7 => "pin_override",
    }
}

xen_enum! {
    /// Why a domain shuts down (`sched_shutdown.reason`).
    pub enum ShutdownReason: u32, prefix "SHUTDOWN_" {
        /// Power off.
        Poweroff = 0 => "poweroff",
        /// Reboot.
        Reboot = 1 => "reboot",
        /// Suspend (to be resumed).
        Suspend = 2 => "suspend",
        /// The domain crashed.
        Crash = 3 => "crash",
        /// A watchdog fired.
        Watchdog = 4 => "watchdog",
        /// Soft reset.
        SoftReset = 5 => "soft_reset",
    }
}

/// `SHUTDOWN_MAX`: the highest shutdown reason.
pub const SHUTDOWN_MAX: u32 = 5;

/// `struct sched_shutdown`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SchedShutdown {
    /// [`ShutdownReason`].
    pub reason: u32,
}

/// `struct sched_poll`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SchedPoll {
    /// Guest handle of an array of ports.
    pub ports: u64,
    /// Number of ports.
    pub nr_ports: u32,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: u32,
    /// Absolute system time (ns) to give up at; 0 for none.
    pub timeout: u64,
}

/// `struct sched_remote_shutdown`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SchedRemoteShutdown {
    /// The domain to shut down.
    pub domain_id: u16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: u16,
    /// [`ShutdownReason`].
    pub reason: u32,
}

/// `struct sched_watchdog`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SchedWatchdog {
    /// Watchdog id (0 to allocate one).
    pub id: u32,
    /// Timeout in seconds (0 to destroy).
    pub timeout: u32,
}

/// `struct sched_pin_override`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SchedPinOverride {
    /// Physical CPU, or negative to undo.
    pub pcpu: i32,
}
