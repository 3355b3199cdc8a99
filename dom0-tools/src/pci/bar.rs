//! Base address registers: where a function's memory and I/O windows are and how large.
//!
//! A BAR's size is found by writing all-ones and reading back which address bits stick; the
//! original value is written back before anything else is read. A 64-bit memory BAR spans two
//! registers. Decoding is bounded by the header type (six BARs for a type-0 header, two for a
//! bridge) so a device cannot make the walk read past the header.

use super::{Address, ConfigSpace, offset};
use alloc::vec::Vec;

/// What a BAR decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    /// Port I/O.
    Io,
    /// Memory below 4 GiB.
    Memory32 {
        /// Whether reads have no side effects.
        prefetchable: bool,
    },
    /// Memory anywhere in 64 bits (the BAR and the next register).
    Memory64 {
        /// Whether reads have no side effects.
        prefetchable: bool,
    },
}

/// One implemented BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    /// The BAR's index, 0..=5.
    pub index: u8,
    /// What it decodes.
    pub kind: BarKind,
    /// The base address (a port for I/O).
    pub base: u64,
    /// The window's size in bytes, a power of two.
    pub size: u64,
}

/// The number of BARs a header type has.
fn bar_count(header_type: u8) -> u8 {
    match header_type & 0x7f {
        0 => 6,
        1 => 2,
        _ => 0,
    }
}

/// Writes all-ones to the register at `reg`, reads what sticks and restores the value.
fn probe(config: &mut dyn ConfigSpace, address: Address, reg: u8) -> (u32, u32) {
    let original = config.read32(address, reg);
    config.write32(address, reg, u32::MAX);
    let mask = config.read32(address, reg);
    config.write32(address, reg, original);
    (original, mask)
}

/// Decodes a function's implemented BARs, in index order. Decoding should be off while BARs
/// are sized (the caller enables it afterwards), as the window moves during the probe.
pub fn bars(config: &mut dyn ConfigSpace, address: Address) -> Vec<Bar> {
    let count = bar_count(config.read8(address, offset::HEADER_TYPE));
    let mut found = Vec::new();
    let mut index = 0u8;
    while index < count {
        let reg = offset::BAR0 + index * 4;
        let (value, mask) = probe(config, address, reg);
        let this = index;
        index += 1;
        if value & 1 == 1 {
            let size_mask = mask & !0x3 & 0xffff;
            if size_mask != 0 {
                found.push(Bar {
                    index: this,
                    kind: BarKind::Io,
                    base: u64::from(value & !0x3),
                    size: u64::from(size_mask & size_mask.wrapping_neg()),
                });
            }
            continue;
        }
        let prefetchable = value & 0x8 != 0;
        let (kind, base, mask64) = match (value >> 1) & 0x3 {
            2 if index < count => {
                let (high, high_mask) = probe(config, address, reg + 4);
                index += 1;
                (
                    BarKind::Memory64 { prefetchable },
                    u64::from(high) << 32 | u64::from(value & !0xf),
                    u64::from(high_mask) << 32 | u64::from(mask & !0xf),
                )
            }
            0 if mask & !0xf != 0 => (
                BarKind::Memory32 { prefetchable },
                u64::from(value & !0xf),
                u64::from(mask & !0xf) | 0xffff_ffff_0000_0000,
            ),
            // Unimplemented, a 64-bit BAR in the last slot or a reserved type.
            _ => continue,
        };
        let size = mask64 & mask64.wrapping_neg();
        if mask64 != 0 && size != 0 {
            found.push(Bar {
                index: this,
                kind,
                base,
                size,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakeConfig;
    use super::*;

    #[test]
    fn decodes_io_32_and_64_bit_bars() {
        let a = Address::new(0, 3, 0).unwrap();
        let mut c = FakeConfig::default();
        c.add(a, 0x1af4, 0x1001, 0x01_00_00, 0);
        c.bar(a, 0, 0xc041, !0x3f); // I/O, 64 ports
        c.bar(a, 1, 0xfebf_0000, !0xfff); // 32-bit memory, 4 KiB
        c.bar(a, 4, 0xfe00_000c, !0x3fff); // 64-bit prefetchable, 16 KiB
        c.bar(a, 5, 0x0000_0001, !0);
        let found = bars(&mut c, a);
        assert_eq!(
            found,
            [
                Bar {
                    index: 0,
                    kind: BarKind::Io,
                    base: 0xc040,
                    size: 64
                },
                Bar {
                    index: 1,
                    kind: BarKind::Memory32 {
                        prefetchable: false
                    },
                    base: 0xfebf_0000,
                    size: 0x1000
                },
                Bar {
                    index: 4,
                    kind: BarKind::Memory64 { prefetchable: true },
                    base: 0x1_fe00_0000,
                    size: 0x4000
                },
            ]
        );
        // The probe restored every register.
        assert_eq!(c.read32(a, 0x10), 0xc041);
        assert_eq!(c.read32(a, 0x24), 1);
    }

    #[test]
    fn a_64_bit_bar_in_the_last_slot_is_skipped() {
        let a = Address::new(0, 4, 0).unwrap();
        let mut c = FakeConfig::default();
        c.add(a, 0x8086, 0x100e, 0x02_00_00, 0);
        c.bar(a, 5, 0xfe00_0004, !0xfff);
        assert!(bars(&mut c, a).is_empty());
    }
}
