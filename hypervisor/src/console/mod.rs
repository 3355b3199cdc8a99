//! The hypervisor's console: leveled logging (`log`), the routing of serial input between
//! dom0 and the debug keys (`input`, the Ctrl-A switch), and for `console=vga` the text
//! screen's contents (`screen`, drawn by `arch`) and the keyboard's scan codes as terminal
//! input (`keyboard`).

pub mod input;
pub mod keyboard;
pub mod log;
pub mod screen;
