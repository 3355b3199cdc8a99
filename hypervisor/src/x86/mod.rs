//! x86-64 architectural formats, as pure data: the guest register frame (`regs`) and segment
//! and gate descriptors (`descriptors`). The hardware itself is reached only in `arch`.

pub mod descriptors;
pub mod regs;
