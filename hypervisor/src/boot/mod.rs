//! Bringing the machine up: the boot loader's command line, the firmware's ACPI tables, and
//! the start-of-day sequence that sets up memory, time and devices and builds dom0.

pub mod acpi;
pub mod cmdline;
pub mod madt;
#[cfg(target_os = "none")]
pub mod start;
