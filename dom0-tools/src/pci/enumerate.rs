//! Enumeration: every function on bus 0 and on the buses behind its bridges.
//!
//! Each bus is scanned once (a bridge that names a bus already seen, or bus 0, adds nothing),
//! so a device reporting a loop of bridges ends the walk after at most 256 buses.

use super::{Address, ConfigSpace, offset};
use alloc::vec::Vec;

/// One function found on the buses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// Where it is.
    pub address: Address,
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Class (high byte), subclass and programming interface (low byte).
    pub class: u32,
    /// Header type without the multi-function bit: 0 device, 1 PCI bridge.
    pub header_type: u8,
}

impl core::fmt::Display for Function {
    /// `bus:dev.fn vendor:device class`, as dom0 prints it at boot.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} {:04x}:{:04x} class {:06x}",
            self.address, self.vendor, self.device, self.class
        )
    }
}

/// Reads a function's identity, or `None` if nothing answers there.
fn probe(config: &mut dyn ConfigSpace, address: Address) -> Option<Function> {
    let id = config.read32(address, offset::ID);
    let vendor = id as u16;
    if vendor == 0xffff || vendor == 0 {
        return None;
    }
    Some(Function {
        address,
        vendor,
        device: (id >> 16) as u16,
        class: config.read32(address, offset::CLASS) >> 8,
        header_type: config.read8(address, offset::HEADER_TYPE) & 0x7f,
    })
}

/// Every function reachable from bus 0, bus by bus in the order bridges name them.
pub fn enumerate(config: &mut dyn ConfigSpace) -> Vec<Function> {
    let mut found = Vec::new();
    let mut seen = [false; 256];
    let mut queue = Vec::from([0u8]);
    seen[0] = true;
    let mut next = 0;
    while let Some(&bus) = queue.get(next) {
        next += 1;
        for device in 0..32 {
            let Some(first) = Address::new(bus, device, 0) else {
                continue;
            };
            let multi = config.read8(first, offset::HEADER_TYPE) & 0x80 != 0;
            let functions = if multi { 8 } else { 1 };
            for function in 0..functions {
                let Some(address) = Address::new(bus, device, function) else {
                    continue;
                };
                let Some(found_fn) = probe(config, address) else {
                    if function == 0 {
                        break;
                    }
                    continue;
                };
                if found_fn.header_type == 1 {
                    let secondary = config.read8(address, offset::BRIDGE_BUSES + 1);
                    if let Some(slot) = seen.get_mut(usize::from(secondary))
                        && !*slot
                    {
                        *slot = true;
                        queue.push(secondary);
                    }
                }
                found.push(found_fn);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakeConfig;
    use super::*;
    use alloc::string::ToString;
    use proptest::prelude::*;

    #[test]
    fn finds_functions_and_follows_bridges() {
        let mut c = FakeConfig::default();
        let host = Address::new(0, 0, 0).unwrap();
        let blk = Address::new(0, 3, 0).unwrap();
        let multi0 = Address::new(0, 4, 0).unwrap();
        let multi2 = Address::new(0, 4, 2).unwrap();
        let bridge = Address::new(0, 5, 0).unwrap();
        let behind = Address::new(2, 0, 0).unwrap();
        c.add(host, 0x8086, 0x1237, 0x06_00_00, 0);
        c.add(blk, 0x1af4, 0x1001, 0x01_00_00, 0);
        c.add(multi0, 0x8086, 0x7000, 0x06_01_00, 0x80);
        c.add(multi2, 0x8086, 0x7010, 0x01_01_80, 0);
        c.add(bridge, 0x1b36, 0x0001, 0x06_04_00, 1);
        c.set_byte(bridge, 0x19, 2);
        c.add(behind, 0x1af4, 0x1042, 0x01_00_00, 0);
        let all: Vec<Address> = enumerate(&mut c).iter().map(|f| f.address).collect();
        assert_eq!(all, [host, blk, multi0, multi2, bridge, behind]);
        let first = enumerate(&mut c)[1];
        assert_eq!(first.to_string(), "00:03.0 1af4:1001 class 010000");
    }

    #[test]
    fn a_bridge_loop_ends() {
        let mut c = FakeConfig::default();
        let b0 = Address::new(0, 1, 0).unwrap();
        let b1 = Address::new(1, 0, 0).unwrap();
        c.add(b0, 0x1b36, 1, 0x06_04_00, 1);
        c.set_byte(b0, 0x19, 1);
        c.add(b1, 0x1b36, 1, 0x06_04_00, 1);
        c.set_byte(b1, 0x19, 0);
        assert_eq!(enumerate(&mut c).len(), 2);
    }

    proptest! {
        /// Whatever a configuration space answers, enumeration ends, lists each address at most
        /// once and only functions that answered.
        #[test]
        fn any_answers_end(words in proptest::collection::vec(any::<u32>(), 64)) {
            let mut c = FakeConfig::noise(words);
            let found = enumerate(&mut c);
            let mut addresses: Vec<Address> = found.iter().map(|f| f.address).collect();
            addresses.sort();
            addresses.dedup();
            prop_assert_eq!(addresses.len(), found.len());
            prop_assert!(found.iter().all(|f| f.vendor != 0xffff));
        }
    }
}
