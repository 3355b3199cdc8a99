//! Port I/O on a PV domain's behalf, after Xen's `guest_io_read`/`guest_io_write`
//! (`pv/emul-priv-op.c`): ports the domain was granted are accessed as asked; everything else is
//! taken apart into pieces, and the pieces that are PCI configuration mechanism #1 are emulated.
//!
//! PCI configuration: a dword write to `0xcf8` (CONFIG_ADDRESS) is latched in the domain (the
//! machine's register is never written with it), a dword read of `0xcf8` returns the latch, and an
//! access of any size to `0xcfc`–`0xcff` (CONFIG_DATA) makes the configuration access for the
//! latched address, the hypervisor writing the address and accessing the data together. Only the
//! hardware domain reaches configuration space, and only with the latch's enable bit (31) set;
//! otherwise data reads are all-ones and data writes are dropped. As in Xen, any domain with I/O
//! privilege has a latch (it is nothing but a per-domain variable). Byte and word accesses of
//! `0xcf8`–`0xcfb` and `0xcf9` (reset control) stay the hypervisor's: they read as all-ones.

/// The CONFIG_ADDRESS port.
pub const PCI_CONFIG_ADDRESS: u16 = 0xcf8;
/// The first CONFIG_DATA port (the data window is `0xcfc`–`0xcff`).
pub const PCI_CONFIG_DATA: u16 = 0xcfc;
/// CONFIG_ADDRESS's enable bit: without it no configuration cycle is made.
pub const CF8_ENABLE: u32 = 1 << 31;
/// The CONFIG_ADDRESS bits that reach the machine besides the enable bit: bus, device,
/// function and the dword register. Bits 24–30 (reserved; AMD's extended register number) and
/// the two low bits are dropped.
const CF8_ADDRESS_BITS: u32 = 0x00ff_fffc;

/// The machine's ports and PCI configuration space as the running domain may use them.
pub trait GuestPorts {
    /// Whether the domain may touch ports `[port, port + size)` for real.
    fn port_permitted(&self, port: u16, size: u8) -> bool;
    /// Reads a permitted port.
    fn port_in(&mut self, port: u16, size: u8) -> u32;
    /// Writes a permitted port.
    fn port_out(&mut self, port: u16, size: u8, value: u32);
    /// The domain's latched CONFIG_ADDRESS.
    fn pci_cf8(&self) -> u32;
    /// Latches a CONFIG_ADDRESS for the domain.
    fn set_pci_cf8(&mut self, value: u32);
    /// Whether the domain may reach PCI configuration space (the hardware domain).
    fn pci_config_permitted(&self) -> bool;
    /// Reads `size` bytes of configuration space at `address` (enable bit set, the byte offset
    /// in the two low bits; the access does not cross the dword).
    fn pci_config_read(&mut self, address: u32, size: u8) -> u32;
    /// Writes `size` bytes of configuration space at `address` (as for `pci_config_read`).
    fn pci_config_write(&mut self, address: u32, size: u8, value: u32);
}

/// The configuration address a data-port access at `port` makes, if the domain may make one.
fn config_address(host: &impl GuestPorts, port: u16) -> Option<u32> {
    let cf8 = host.pci_cf8();
    (host.pci_config_permitted() && cf8 & CF8_ENABLE != 0)
        .then(|| CF8_ENABLE | (cf8 & CF8_ADDRESS_BITS) | u32::from(port & 3))
}

/// How many of `left` bytes at data port `port` go in one configuration access: up to the end
/// of the dword, and never three.
fn data_piece(port: u16, left: u8) -> u8 {
    let piece = left.min(4 - (port & 3) as u8);
    if piece == 3 { 2 } else { piece }
}

fn is_data_port(port: u16) -> bool {
    port & !3 == PCI_CONFIG_DATA
}

fn low_bytes(value: u32, size: u8) -> u32 {
    match size {
        1 => value & 0xff,
        2 => value & 0xffff,
        _ => value,
    }
}

/// Reads `size` (1, 2 or 4) bytes from `port` for the running domain.
pub fn read(host: &mut impl GuestPorts, port: u16, size: u8) -> u32 {
    if host.port_permitted(port, size) {
        return host.port_in(port, size);
    }
    let (mut port, mut left) = (port, size);
    let mut value = 0u32;
    let mut shift = 0u32;
    while left > 0 {
        let (piece, data) = if port == PCI_CONFIG_ADDRESS && left == 4 {
            (4, host.pci_cf8())
        } else if is_data_port(port) {
            let piece = data_piece(port, left);
            let data = match config_address(host, port) {
                Some(address) => host.pci_config_read(address, piece),
                None => u32::MAX,
            };
            (piece, data)
        } else if host.port_permitted(port, 1) {
            (1, host.port_in(port, 1))
        } else {
            (1, u32::MAX)
        };
        if piece == 4 {
            return data;
        }
        value |= low_bytes(data, piece) << shift;
        shift += 8 * u32::from(piece);
        port = port.wrapping_add(u16::from(piece));
        left -= piece;
    }
    value
}

/// Writes the low `size` (1, 2 or 4) bytes of `value` to `port` for the running domain.
pub fn write(host: &mut impl GuestPorts, port: u16, size: u8, value: u32) {
    if host.port_permitted(port, size) {
        host.port_out(port, size, value);
        return;
    }
    let (mut port, mut left, mut value) = (port, size, value);
    while left > 0 {
        let piece = if port == PCI_CONFIG_ADDRESS && left == 4 {
            host.set_pci_cf8(value);
            4
        } else if is_data_port(port) {
            let piece = data_piece(port, left);
            if let Some(address) = config_address(host, port) {
                host.pci_config_write(address, piece, low_bytes(value, piece));
            }
            piece
        } else {
            if host.port_permitted(port, 1) {
                host.port_out(port, 1, value & 0xff);
            }
            1
        };
        port = port.wrapping_add(u16::from(piece));
        left -= piece;
        value = value.checked_shr(8 * u32::from(piece)).unwrap_or(0);
    }
}

#[cfg(test)]
pub mod fake {
    //! A machine with a few devices' configuration space and one granted port, for host tests.
    use super::GuestPorts;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// Configuration space as a byte map (absent bytes read as all-ones), and a log of
    /// everything that reached the machine.
    #[derive(Default)]
    pub struct FakePorts {
        /// Whether the domain is the hardware domain.
        pub hardware: bool,
        /// The domain's latch.
        pub cf8: u32,
        /// Configuration bytes by `(bus/device/function << 8) | register`.
        pub config: BTreeMap<u32, u8>,
        /// Configuration accesses made: `(address, size, Some(written) or None for a read)`.
        pub config_log: Vec<(u32, u8, Option<u32>)>,
        /// Writes to granted ports.
        pub outs: Vec<(u16, u8, u32)>,
    }

    /// The granted port: QEMU's POST-code port.
    pub const GRANTED: u16 = 0x80;

    fn byte_key(address: u32, i: u8) -> u32 {
        ((address & 0x00ff_ff00) | ((address & 0xff) + u32::from(i))) & 0x00ff_ffff
    }

    impl GuestPorts for FakePorts {
        fn port_permitted(&self, port: u16, size: u8) -> bool {
            port == GRANTED && size == 1
        }
        fn port_in(&mut self, _: u16, _: u8) -> u32 {
            0x5a
        }
        fn port_out(&mut self, port: u16, size: u8, value: u32) {
            self.outs.push((port, size, value));
        }
        fn pci_cf8(&self) -> u32 {
            self.cf8
        }
        fn set_pci_cf8(&mut self, value: u32) {
            self.cf8 = value;
        }
        fn pci_config_permitted(&self) -> bool {
            self.hardware
        }
        fn pci_config_read(&mut self, address: u32, size: u8) -> u32 {
            assert!(
                (address & 3) + u32::from(size) <= 4,
                "access crosses the dword"
            );
            self.config_log.push((address, size, None));
            (0..size).fold(0, |v, i| {
                let b = self.config.get(&byte_key(address, i)).copied();
                v | u32::from(b.unwrap_or(0xff)) << (8 * i)
            })
        }
        fn pci_config_write(&mut self, address: u32, size: u8, value: u32) {
            assert!(
                (address & 3) + u32::from(size) <= 4,
                "access crosses the dword"
            );
            self.config_log.push((address, size, Some(value)));
            for i in 0..size {
                self.config
                    .insert(byte_key(address, i), (value >> (8 * i)) as u8);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{FakePorts, GRANTED};
    use super::*;
    use proptest::prelude::*;

    /// Bus 0, device 3, function 0, register 0.
    const DEV3: u32 = CF8_ENABLE | (3 << 11);

    fn dom0() -> FakePorts {
        let mut m = FakePorts {
            hardware: true,
            ..FakePorts::default()
        };
        // Vendor 0x1af4, device 0x1001 at register 0; BAR0 at 0x10.
        for (i, b) in [0xf4, 0x1a, 0x01, 0x10].into_iter().enumerate() {
            m.config.insert((3 << 11) | i as u32, b);
        }
        m
    }

    #[test]
    fn latch_reads_back_and_data_reads_the_latched_device() {
        let mut m = dom0();
        write(&mut m, 0xcf8, 4, DEV3);
        assert_eq!(read(&mut m, 0xcf8, 4), DEV3);
        assert_eq!(read(&mut m, 0xcfc, 4), 0x1001_1af4);
        assert_eq!(read(&mut m, 0xcfe, 2), 0x1001);
        assert_eq!(read(&mut m, 0xcfd, 1), 0x1a);
        assert_eq!(m.config_log[0], (DEV3, 4, None));
        assert_eq!(m.config_log[1], (DEV3 | 2, 2, None));
        assert_eq!(m.config_log[2], (DEV3 | 1, 1, None));
    }

    #[test]
    fn data_writes_reach_the_latched_register() {
        let mut m = dom0();
        write(&mut m, 0xcf8, 4, DEV3 | 0x10);
        write(&mut m, 0xcfc, 4, 0xfebf_0000);
        assert_eq!(read(&mut m, 0xcfc, 4), 0xfebf_0000);
        write(&mut m, 0xcfe, 1, 0x12);
        assert_eq!(read(&mut m, 0xcfc, 4), 0xfe12_0000);
    }

    #[test]
    fn without_the_enable_bit_nothing_reaches_configuration_space() {
        let mut m = dom0();
        write(&mut m, 0xcf8, 4, 3 << 11);
        assert_eq!(read(&mut m, 0xcfc, 4), u32::MAX);
        write(&mut m, 0xcfc, 4, 0);
        assert!(m.config_log.is_empty());
    }

    #[test]
    fn a_domu_latches_but_never_reaches_configuration_space() {
        let mut m = dom0();
        m.hardware = false;
        write(&mut m, 0xcf8, 4, DEV3);
        assert_eq!(
            read(&mut m, 0xcf8, 4),
            DEV3,
            "the latch is per domain, as Xen's"
        );
        assert_eq!(read(&mut m, 0xcfc, 4), u32::MAX);
        assert_eq!(read(&mut m, 0xcfe, 2), 0xffff);
        write(&mut m, 0xcfc, 4, 0);
        assert!(m.config_log.is_empty());
    }

    #[test]
    fn narrow_accesses_of_the_address_port_and_reset_control_are_the_hypervisors() {
        let mut m = dom0();
        write(&mut m, 0xcf8, 4, DEV3);
        assert_eq!(read(&mut m, 0xcf8, 1), 0xff);
        assert_eq!(read(&mut m, 0xcf8, 2), 0xffff);
        write(&mut m, 0xcf9, 1, 0x06);
        write(&mut m, 0xcf8, 2, 0);
        assert_eq!(m.pci_cf8(), DEV3);
        assert!(m.config_log.is_empty() && m.outs.is_empty());
    }

    #[test]
    fn unaligned_data_accesses_split_as_xens() {
        let mut m = dom0();
        write(&mut m, 0xcf8, 4, DEV3);
        // Four bytes from 0xcfd: a word at 0xcfd, a byte at 0xcff, then port 0xd00 (not granted).
        assert_eq!(read(&mut m, 0xcfd, 4), 0xff10_011a);
        assert_eq!(m.config_log, [(DEV3 | 1, 2, None), (DEV3 | 3, 1, None)]);
    }

    #[test]
    fn granted_ports_go_straight_through() {
        let mut m = dom0();
        assert_eq!(read(&mut m, GRANTED, 1), 0x5a);
        write(&mut m, GRANTED, 1, 7);
        assert_eq!(m.outs, [(GRANTED, 1, 7)]);
    }

    #[test]
    fn reserved_address_bits_never_reach_the_machine() {
        let mut m = dom0();
        write(&mut m, 0xcf8, 4, DEV3 | 0x7f00_0003);
        assert_eq!(read(&mut m, 0xcf8, 4), DEV3 | 0x7f00_0003);
        read(&mut m, 0xcfc, 4);
        assert_eq!(m.config_log, [(DEV3, 4, None)]);
    }

    proptest! {
        /// Whatever a domain does with the ports, configuration accesses stay inside one dword
        /// (the fake asserts it), carry the enable bit and no reserved bits, and only the
        /// hardware domain makes any.
        #[test]
        fn configuration_accesses_are_well_formed(
            hardware: bool,
            ops in prop::collection::vec((0xcf4u16..0xd04, prop::sample::select(&[1u8, 2, 4][..]), any::<u32>(), any::<bool>()), 0..40),
        ) {
            let mut m = dom0();
            m.hardware = hardware;
            for (port, size, value, is_write) in ops {
                if is_write {
                    write(&mut m, port, size, value);
                } else {
                    let v = read(&mut m, port, size);
                    prop_assert!(size == 4 || v >> (8 * u32::from(size)) == 0);
                }
            }
            prop_assert!(hardware || m.config_log.is_empty());
            for (address, _, _) in &m.config_log {
                prop_assert_eq!(address & 0x7f00_0000, 0);
                prop_assert!(address & CF8_ENABLE != 0);
            }
            prop_assert!(m.outs.is_empty());
        }
    }
}
