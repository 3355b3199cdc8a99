//! PCI configuration mechanism #1 on the machine: the address at port `0xcf8`, the data at
//! `0xcfc`–`0xcff`. The two are one operation: a lock (taken with interrupts off) keeps any other
//! address write between them out.

use super::cpu::{port_in, port_out};
use spin::Mutex;

/// Held from the address write to the data access.
static CONFIG_PAIR: Mutex<()> = Mutex::new(());

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

/// Reads `size` bytes of configuration space at `address` (enable bit set; the byte offset in
/// the two low bits; the access stays inside the dword).
pub fn config_read(address: u32, size: u8) -> u32 {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let _pair = CONFIG_PAIR.lock();
        // SAFETY: the configuration ports are the hypervisor's, used only here under the lock;
        // a configuration read has no effect on memory the hypervisor relies on.
        unsafe {
            port_out(CONFIG_ADDRESS, 4, address & !3);
            port_in(CONFIG_DATA + (address & 3) as u16, size)
        }
    })
}

/// Writes `size` bytes of configuration space at `address` (as for [`config_read`]).
pub fn config_write(address: u32, size: u8, value: u32) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let _pair = CONFIG_PAIR.lock();
        // SAFETY: as for `config_read`; what the write does to the device is the hardware
        // domain's business, as under Xen.
        unsafe {
            port_out(CONFIG_ADDRESS, 4, address & !3);
            port_out(CONFIG_DATA + (address & 3) as u16, size, value);
        }
    })
}
