//! A configuration space in memory for host tests: functions with BARs whose writable bits are
//! set per register, or a space that answers noise everywhere.

use super::{Address, ConfigSpace};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Functions by address; everything else reads all-ones.
#[derive(Default)]
pub struct FakeConfig {
    functions: BTreeMap<Address, [u32; 64]>,
    /// Per function and register, the bits a write may change (BARs).
    writable: BTreeMap<(Address, u8), u32>,
    noise: Option<Vec<u32>>,
}

impl FakeConfig {
    /// A space where every read of any function returns words of `noise`.
    pub fn noise(noise: Vec<u32>) -> Self {
        Self {
            noise: Some(noise),
            ..Self::default()
        }
    }

    /// A function with its IDs, class (24 bits) and header type byte.
    pub fn add(&mut self, a: Address, vendor: u16, device: u16, class: u32, header: u8) {
        let mut regs = [0u32; 64];
        regs[0] = u32::from(device) << 16 | u32::from(vendor);
        regs[2] = class << 8;
        regs[3] = u32::from(header) << 16;
        self.functions.insert(a, regs);
    }

    /// Sets one byte of a function's space.
    pub fn set_byte(&mut self, a: Address, offset: u8, value: u8) {
        let regs = self.functions.get_mut(&a).expect("function added first");
        let shift = u32::from(offset & 3) * 8;
        let word = &mut regs[usize::from(offset / 4)];
        *word = (*word & !(0xff << shift)) | u32::from(value) << shift;
    }

    /// A BAR's value and the address bits a write may change.
    pub fn bar(&mut self, a: Address, index: u8, value: u32, writable: u32) {
        let reg = 0x10 + index * 4;
        self.functions.get_mut(&a).expect("function added first")[usize::from(reg / 4)] = value;
        self.writable.insert((a, reg), writable);
    }

    /// A capability at `at` with `id`, pointing to `next`; sets the status bit and the list
    /// head if this is the first.
    pub fn capability(&mut self, a: Address, at: u8, id: u8, next: u8) {
        self.set_byte(a, 0x06, 0x10);
        if self.read32(a, 0x34) & 0xff == 0 {
            self.set_byte(a, 0x34, at);
        }
        self.set_byte(a, at, id);
        self.set_byte(a, at + 1, next);
    }
}

impl ConfigSpace for FakeConfig {
    fn read32(&mut self, address: Address, offset: u8) -> u32 {
        if let Some(noise) = &self.noise {
            let key = usize::from(address.bus) * 7
                + usize::from(address.device) * 3
                + usize::from(address.function)
                + usize::from(offset / 4);
            return noise.get(key % noise.len().max(1)).copied().unwrap_or(!0);
        }
        self.functions
            .get(&address)
            .map_or(u32::MAX, |regs| regs[usize::from(offset / 4)])
    }

    fn write32(&mut self, address: Address, offset: u8, value: u32) {
        let mask = self.writable.get(&(address, offset)).copied();
        if let (Some(regs), Some(mask)) = (self.functions.get_mut(&address), mask) {
            let word = &mut regs[usize::from(offset / 4)];
            *word = (*word & !mask) | (value & mask);
        }
    }
}
