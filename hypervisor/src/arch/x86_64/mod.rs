//! The x86-64 machine layer: boot, console, descriptor tables, traps, paging, timers, power.
//!
//! # Safety
//! Code here runs in ring 0 on the single boot CPU. Raw physical memory is reached only through
//! [`paging::phys_to_virt`], which is valid for addresses the current page tables direct-map
//! (the first 4 GiB before [`paging::init`], all memory in the firmware map after it).

pub mod apic;
pub mod boot;
pub mod cpu;
pub mod direct_map;
pub mod fpu;
pub mod gdt;
pub mod guest;
pub mod guest_entry;
pub mod handlers;
pub mod handoff;
pub mod heap;
pub mod ioapic;
pub mod keyboard;
pub mod paging;
pub mod pci;
pub mod percpu;
pub mod pit;
pub mod power;
pub mod serial;
pub mod smp;
pub mod time;
pub mod trap;
pub mod uaccess;
pub mod vga;
