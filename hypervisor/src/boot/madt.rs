//! The ACPI MADT ("APIC" table): which CPUs the machine has (their local APIC ids), where its
//! I/O APICs are and which global system interrupts they serve, and how the legacy ISA IRQs
//! map onto those GSIs (interrupt source overrides). Bringing up the other CPUs and routing
//! device interrupts start from here.
//!
//! Parsed from firmware bytes like the rest of `acpi`: every entry's length is checked
//! against the table, an entry shorter than its type needs is skipped, and the lists are
//! capped (a table cannot make the hypervisor allocate without bound).

use alloc::vec::Vec;

use super::acpi::{AcpiError, PhysRead, RootTable, find_table, le_u32, le_u64};

/// Most CPUs recorded.
pub const MAX_CPUS: usize = 256;
/// Most I/O APICs recorded.
pub const MAX_IOAPICS: usize = 16;
/// Most interrupt source overrides recorded (there are 16 ISA IRQs).
pub const MAX_OVERRIDES: usize = 16;
/// Largest MADT read (a 4 KiB table describes over 400 CPUs).
const MADT_MAX: usize = 4096;
/// Offset of the first entry: the header, the local APIC address and the flags.
const ENTRIES: usize = 44;

/// A CPU the firmware lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// Its local APIC id (x2APIC ids above 255 come from type-9 entries).
    pub apic_id: u32,
    /// Usable now (`Enabled`), as opposed to only hot-pluggable later.
    pub enabled: bool,
}

/// An I/O APIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApic {
    /// Its APIC id.
    pub id: u8,
    /// Physical address of its registers.
    pub address: u64,
    /// The first global system interrupt its pins serve.
    pub gsi_base: u32,
}

/// An ISA IRQ delivered on another GSI, or with another polarity or trigger mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Override {
    /// The ISA IRQ.
    pub irq: u8,
    /// The GSI it arrives on.
    pub gsi: u32,
    /// MPS INTI flags: polarity in bits 0–1, trigger mode in bits 2–3.
    pub flags: u16,
}

/// What the MADT says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Madt {
    /// Physical address of the local APICs' registers.
    pub lapic_address: u64,
    /// The CPUs, in table order (the boot CPU is conventionally first).
    pub cpus: Vec<Cpu>,
    /// The I/O APICs.
    pub ioapics: Vec<IoApic>,
    /// The interrupt source overrides.
    pub overrides: Vec<Override>,
}

impl Madt {
    /// The GSI and INTI flags of ISA IRQ `irq`: its override, or the identity mapping with the
    /// bus's defaults (flags 0: edge-triggered, active high).
    pub fn isa_irq(&self, irq: u8) -> (u32, u16) {
        self.overrides
            .iter()
            .find(|o| o.irq == irq)
            .map_or((u32::from(irq), 0), |o| (o.gsi, o.flags))
    }
}

/// The machine's MADT, read once at boot (absent when the firmware has none).
pub static MACHINE_MADT: spin::Once<Madt> = spin::Once::new();

/// Reads the MADT reachable from `root`.
pub fn read(mem: &impl PhysRead, root: RootTable) -> Result<Madt, AcpiError> {
    let mut buf = [0u8; MADT_MAX];
    let len = find_table(mem, root, *b"APIC", &mut buf)?;
    parse(&buf[..len])
}

/// Parses a whole MADT (header included).
pub fn parse(table: &[u8]) -> Result<Madt, AcpiError> {
    if table.len() < ENTRIES {
        return Err(AcpiError::BadTable(*b"APIC"));
    }
    let mut madt = Madt {
        lapic_address: u64::from(le_u32(table, 36)),
        ..Madt::default()
    };
    let mut at = ENTRIES;
    while let Some(&[kind, len]) = table.get(at..at + 2) {
        let len = usize::from(len);
        let Some(entry) = table.get(at..at + len).filter(|_| len >= 2) else {
            break;
        };
        entry_into(&mut madt, kind, entry);
        at += len;
    }
    Ok(madt)
}

/// Records one entry, if it is a kind we use and long enough for it.
fn entry_into(madt: &mut Madt, kind: u8, e: &[u8]) {
    const LOCAL_APIC: u8 = 0;
    const IO_APIC: u8 = 1;
    const SOURCE_OVERRIDE: u8 = 2;
    const LAPIC_ADDRESS_OVERRIDE: u8 = 5;
    const LOCAL_X2APIC: u8 = 9;
    const ENABLED: u32 = 1;
    match kind {
        LOCAL_APIC if e.len() >= 8 && madt.cpus.len() < MAX_CPUS => madt.cpus.push(Cpu {
            apic_id: u32::from(e[3]),
            enabled: le_u32(e, 4) & ENABLED != 0,
        }),
        LOCAL_X2APIC if e.len() >= 16 && madt.cpus.len() < MAX_CPUS => madt.cpus.push(Cpu {
            apic_id: le_u32(e, 4),
            enabled: le_u32(e, 8) & ENABLED != 0,
        }),
        IO_APIC if e.len() >= 12 && madt.ioapics.len() < MAX_IOAPICS => madt.ioapics.push(IoApic {
            id: e[2],
            address: u64::from(le_u32(e, 4)),
            gsi_base: le_u32(e, 8),
        }),
        SOURCE_OVERRIDE if e.len() >= 10 && madt.overrides.len() < MAX_OVERRIDES => {
            madt.overrides.push(Override {
                irq: e[3],
                gsi: le_u32(e, 4),
                flags: u16::from_le_bytes([e[8], e[9]]),
            })
        }
        LAPIC_ADDRESS_OVERRIDE if e.len() >= 12 => madt.lapic_address = le_u64(e, 4),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::acpi::tests::{FakeMem, rsdp_v1, table};
    use super::*;
    use crate::boot::acpi::parse_rsdp;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// A MADT as QEMU's `pc` machine with two CPUs writes it: two local APICs, one I/O APIC
    /// at 0xfec00000, IRQ 0 overridden to GSI 2, IRQ 9 level-triggered active high.
    fn qemu_madt() -> Vec<u8> {
        let mut body = vec![];
        body.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]);
        body.extend_from_slice(&[0, 8, 1, 1, 1, 0, 0, 0]);
        body.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]);
        body.extend_from_slice(&[2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
        body.extend_from_slice(&[2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0]);
        body.extend_from_slice(&[4, 6, 0xff, 0, 0, 1]); // local APIC NMI: not used
        table(b"APIC", &body, 1)
    }

    #[test]
    fn qemu_tables_give_cpus_ioapic_and_overrides() {
        let mut mem = FakeMem::default();
        mem.put(0x7000, qemu_madt());
        mem.put(0x6000, table(b"RSDT", &0x7000u32.to_le_bytes(), 1));
        let root = parse_rsdp(&rsdp_v1(0x6000)).unwrap();
        let madt = read(&mem, root).unwrap();
        assert_eq!(madt.lapic_address, 0xfee0_0000);
        let ids: Vec<u32> = madt.cpus.iter().map(|c| c.apic_id).collect();
        assert_eq!(ids, [0, 1]);
        assert!(madt.cpus.iter().all(|c| c.enabled));
        assert_eq!(
            madt.ioapics,
            [IoApic {
                id: 0,
                address: 0xfec0_0000,
                gsi_base: 0
            }]
        );
        assert_eq!(madt.isa_irq(0), (2, 0));
        assert_eq!(madt.isa_irq(9), (9, 0x0d));
        assert_eq!(madt.isa_irq(4), (4, 0));
    }

    #[test]
    fn a_missing_table_or_short_entries_are_errors_or_skipped() {
        let mut mem = FakeMem::default();
        mem.put(0x6000, table(b"RSDT", &[], 1));
        let root = parse_rsdp(&rsdp_v1(0x6000)).unwrap();
        assert_eq!(read(&mem, root), Err(AcpiError::Missing(*b"APIC")));
        // An I/O APIC entry of 6 bytes is skipped; a zero length ends the walk.
        let mut t = qemu_madt()[..ENTRIES].to_vec();
        t.extend_from_slice(&[1, 6, 0, 0, 0, 0, 0, 0]);
        let madt = parse(&t).unwrap();
        assert!(madt.ioapics.is_empty() && madt.cpus.is_empty());
    }

    proptest! {
        #[test]
        fn any_bytes_parse_within_the_caps(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut t = vec![0u8; ENTRIES];
            t.extend_from_slice(&body);
            let madt = parse(&t).unwrap();
            prop_assert!(madt.cpus.len() <= MAX_CPUS);
            prop_assert!(madt.ioapics.len() <= MAX_IOAPICS);
            prop_assert!(madt.overrides.len() <= MAX_OVERRIDES);
        }
    }
}
