//! PCI configuration space, as dom0 reaches it through ports `0xcf8`/`0xcfc`: the device
//! addresses, the enumeration of every bus reachable from bus 0, the decoding of base address
//! registers (32- and 64-bit memory, I/O), the walk of the capability list and the bus
//! addresses of DMA buffers over dom0's P2M ([`dma`]).
//!
//! Pure logic over the [`ConfigSpace`] trait: the dom0 kernel implements it with port I/O,
//! host tests with a fake. Everything read from a device is untrusted: lengths and pointers
//! are bounded, a device that answers all-ones is absent, and nothing here panics on any
//! value a device returns.

pub mod bar;
pub mod capability;
pub mod dma;
pub mod enumerate;
#[cfg(test)]
mod fake;

pub use bar::{Bar, BarKind};
pub use capability::capabilities;
pub use enumerate::{Function, enumerate};

/// A function's place on the PCI buses: bus 0..=255, device 0..=31, function 0..=7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    /// The bus number.
    pub bus: u8,
    /// The device number, below 32.
    pub device: u8,
    /// The function number, below 8.
    pub function: u8,
}

impl Address {
    /// The address, or `None` if `device` or `function` is out of range.
    pub fn new(bus: u8, device: u8, function: u8) -> Option<Self> {
        (device < 32 && function < 8).then_some(Self {
            bus,
            device,
            function,
        })
    }

    /// The value written to port `0xcf8` to reach the aligned dword at `offset`: the enable
    /// bit, bus, device, function and register number (configuration mechanism #1).
    pub fn cf8(self, offset: u8) -> u32 {
        0x8000_0000
            | u32::from(self.bus) << 16
            | u32::from(self.device & 0x1f) << 11
            | u32::from(self.function & 0x7) << 8
            | u32::from(offset & 0xfc)
    }
}

impl core::fmt::Display for Address {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// The 256-byte configuration space of every function, reached a dword at a time.
pub trait ConfigSpace {
    /// Reads the dword at `offset` (a multiple of 4) of `address`; all-ones when no function
    /// answers.
    fn read32(&mut self, address: Address, offset: u8) -> u32;
    /// Writes the dword at `offset` (a multiple of 4) of `address`.
    fn write32(&mut self, address: Address, offset: u8, value: u32);

    /// Reads the 16 bits at `offset` (even).
    fn read16(&mut self, address: Address, offset: u8) -> u16 {
        let shift = u32::from(offset & 2) * 8;
        (self.read32(address, offset & 0xfc) >> shift) as u16
    }

    /// Reads the byte at `offset`.
    fn read8(&mut self, address: Address, offset: u8) -> u8 {
        let shift = u32::from(offset & 3) * 8;
        (self.read32(address, offset & 0xfc) >> shift) as u8
    }
}

/// Offsets in the common header, as the PCI specification lays it out.
pub mod offset {
    /// Vendor ID (low 16 bits) and device ID (high 16 bits).
    pub const ID: u8 = 0x00;
    /// Command (low 16 bits) and status (high 16 bits).
    pub const COMMAND_STATUS: u8 = 0x04;
    /// Revision, programming interface, subclass, class (low to high byte).
    pub const CLASS: u8 = 0x08;
    /// Header type byte; bit 7 says the device has several functions.
    pub const HEADER_TYPE: u8 = 0x0e;
    /// The first base address register.
    pub const BAR0: u8 = 0x10;
    /// A type-1 (bridge) header's primary, secondary and subordinate bus numbers.
    pub const BRIDGE_BUSES: u8 = 0x18;
    /// The first capability's offset.
    pub const CAPABILITIES: u8 = 0x34;
    /// Interrupt line (low byte) and pin (next byte).
    pub const INTERRUPT: u8 = 0x3c;
}

/// The status register's bit saying the capability list exists.
pub const STATUS_CAPABILITIES: u16 = 1 << 4;
/// The command register's bits enabling I/O decoding, memory decoding and bus mastering.
pub const COMMAND_IO: u16 = 1 << 0;
/// Memory space decoding.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Bus mastering (DMA).
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;

/// Sets bits in a function's command register (enabling decoding or DMA).
pub fn enable(config: &mut dyn ConfigSpace, address: Address, bits: u16) {
    let dword = config.read32(address, offset::COMMAND_STATUS);
    // The status half is write-one-to-clear: write zeros there so nothing is cleared.
    let command = (dword as u16) | bits;
    config.write32(address, offset::COMMAND_STATUS, u32::from(command));
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn cf8_packs_the_fields() {
        let a = Address::new(1, 2, 3).unwrap();
        assert_eq!(a.cf8(0x11), 0x8001_1310);
        assert_eq!(a.to_string(), "01:02.3");
        assert!(Address::new(0, 32, 0).is_none());
        assert!(Address::new(0, 0, 8).is_none());
    }
}
