//! Port I/O and PCI configuration mechanism #1 over it.

use core::arch::asm;
use dom0_tools::pci::{Address, ConfigSpace};

/// `CONFIG_ADDRESS`.
const CONFIG_ADDRESS: u16 = 0xcf8;
/// `CONFIG_DATA`.
const CONFIG_DATA: u16 = 0xcfc;

/// Reads a dword from `port`.
fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: dom0 runs with I/O privilege 1 (devices::init); the hypervisor performs or
    // emulates the access and nothing in dom0's memory is touched.
    unsafe { asm!("in eax, dx", in("dx") port, out("eax") value, options(nostack, nomem)) };
    value
}

/// Writes a dword to `port`.
fn outl(port: u16, value: u32) {
    // SAFETY: as for `inl`.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nostack, nomem)) };
}

/// Configuration space through `0xcf8`/`0xcfc`. dom0 is single-threaded, so the address and
/// data accesses are never interleaved with another configuration access.
pub struct PortConfig;

impl ConfigSpace for PortConfig {
    fn read32(&mut self, address: Address, offset: u8) -> u32 {
        outl(CONFIG_ADDRESS, address.cf8(offset));
        inl(CONFIG_DATA)
    }

    fn write32(&mut self, address: Address, offset: u8, value: u32) {
        outl(CONFIG_ADDRESS, address.cf8(offset));
        outl(CONFIG_DATA, value);
    }
}
