//! The hypervisor's console: leveled logging (`log`) and the routing of serial input between
//! dom0 and the debug keys (`input`, the Ctrl-A switch).

pub mod input;
pub mod log;
