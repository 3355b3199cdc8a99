//! The capability list: a chain of (id, next) pairs in configuration space from offset 0x34.
//!
//! The walk stops at a null pointer, at a pointer into the header (below 0x40) and after 48
//! entries (all that fit in 192 bytes), so a device whose list loops ends the walk.

use super::{Address, ConfigSpace, STATUS_CAPABILITIES, offset};
use alloc::vec::Vec;

/// At most this many capabilities fit after the header.
const MAX_CAPABILITIES: usize = 48;

/// The function's capabilities as (id, offset) pairs, in list order.
pub fn capabilities(config: &mut dyn ConfigSpace, address: Address) -> Vec<(u8, u8)> {
    let mut found = Vec::new();
    let status = config.read16(address, offset::COMMAND_STATUS + 2);
    if status & STATUS_CAPABILITIES == 0 {
        return found;
    }
    let mut at = config.read8(address, offset::CAPABILITIES) & 0xfc;
    while at >= 0x40 && found.len() < MAX_CAPABILITIES {
        let id = config.read8(address, at);
        found.push((id, at));
        at = config.read8(address, at + 1) & 0xfc;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakeConfig;
    use super::*;

    #[test]
    fn walks_the_list_and_stops_on_a_loop() {
        let a = Address::new(0, 5, 0).unwrap();
        let mut c = FakeConfig::default();
        c.add(a, 0x1af4, 0x1042, 0x01_00_00, 0);
        c.capability(a, 0x40, 0x09, 0x50);
        c.capability(a, 0x50, 0x11, 0x00);
        assert_eq!(capabilities(&mut c, a), [(0x09, 0x40), (0x11, 0x50)]);
        c.capability(a, 0x50, 0x11, 0x40);
        assert_eq!(capabilities(&mut c, a).len(), MAX_CAPABILITIES);
    }
}
