//! The hypervisor's console: leveled logging (`log`), the routing of serial input between
//! dom0 and the debug keys (`input`, the Ctrl-A switch), and the VGA text screen's contents
//! (`screen`, drawn by `arch` when `console=vga`).

pub mod input;
pub mod log;
pub mod screen;
