//! The little of ACPI the hypervisor needs: find the FADT, read the PM1 control ports and the
//! reset register, and pull the S5 (soft-off) sleep type out of the DSDT's `\_S5` package.
//!
//! Everything here reads physical memory through [`PhysRead`], so the parsing is tested on the
//! host with synthetic tables. Every length and offset comes from firmware and is bounds-checked.

/// Reads physical memory. Returns `false` when the range cannot be read.
pub trait PhysRead {
    /// Fills `buf` from physical address `addr`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
}

/// Why ACPI power control is unavailable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// No RSDP signature where one was expected.
    NoRsdp,
    /// A table could not be read or is too short for its declared contents.
    BadTable([u8; 4]),
    /// A table's checksum does not add up to zero.
    Checksum([u8; 4]),
    /// The root table lists no FADT.
    NoFadt,
    /// The root table lists no table with this signature.
    Missing([u8; 4]),
    /// The DSDT has no `\_S5` package.
    NoS5,
}

/// A register in I/O port space (the only space we drive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetRegister {
    /// I/O port.
    pub port: u16,
    /// Value to write.
    pub value: u8,
}

/// What power off and reboot need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerControl {
    /// PM1a control block port.
    pub pm1a_cnt: u16,
    /// PM1b control block port, when the platform has one.
    pub pm1b_cnt: Option<u16>,
    /// `SLP_TYPa`/`SLP_TYPb` values for S5.
    pub s5_sleep_type: (u8, u8),
    /// The FADT reset register, when present and in I/O space.
    pub reset: Option<ResetRegister>,
}

impl PowerControl {
    /// The value to write to PM1x_CNT to enter S5: `SLP_TYP` in bits 10–12, `SLP_EN` bit 13.
    pub fn s5_command(sleep_type: u8) -> u16 {
        (u16::from(sleep_type & 7) << 10) | (1 << 13)
    }
}

/// The root table the RSDP points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootTable {
    /// ACPI 1.0 RSDT, 32-bit entries.
    Rsdt(u64),
    /// ACPI 2.0+ XSDT, 64-bit entries.
    Xsdt(u64),
}

const SDT_HEADER_LEN: usize = 36;

/// Parses an RSDP (as copied into a multiboot2 ACPI tag, or found in the BIOS area).
pub fn parse_rsdp(rsdp: &[u8]) -> Result<RootTable, AcpiError> {
    if rsdp.len() < 20 || &rsdp[..8] != b"RSD PTR " {
        return Err(AcpiError::NoRsdp);
    }
    if checksum(&rsdp[..20]) != 0 {
        return Err(AcpiError::Checksum(*b"RSDP"));
    }
    let revision = rsdp[15];
    if revision >= 2 && rsdp.len() >= 36 {
        let xsdt = le_u64(rsdp, 24);
        if xsdt != 0 {
            return Ok(RootTable::Xsdt(xsdt));
        }
    }
    Ok(RootTable::Rsdt(u64::from(le_u32(rsdp, 16))))
}

/// Finds the RSDP signature on a 16-byte boundary in a BIOS memory area.
pub fn scan_for_rsdp(area: &[u8]) -> Option<usize> {
    (0..area.len().saturating_sub(20))
        .step_by(16)
        .find(|&i| &area[i..i + 8] == b"RSD PTR " && checksum(&area[i..i + 20]) == 0)
}

/// Reads the tables reachable from `root` and extracts the power controls.
pub fn power_control(mem: &impl PhysRead, root: RootTable) -> Result<PowerControl, AcpiError> {
    let mut fadt = [0u8; 276];
    let fadt_len = find_table(mem, root, *b"FACP", &mut fadt).map_err(|e| match e {
        AcpiError::Missing(_) => AcpiError::NoFadt,
        other => other,
    })?;
    let fadt = &fadt[..fadt_len];
    if fadt.len() < 76 {
        return Err(AcpiError::BadTable(*b"FACP"));
    }
    let x_dsdt = if fadt.len() >= 148 {
        le_u64(fadt, 140)
    } else {
        0
    };
    let dsdt_addr = if x_dsdt != 0 {
        x_dsdt
    } else {
        u64::from(le_u32(fadt, 40))
    };
    let pm1a_cnt = le_u32(fadt, 64) as u16;
    let pm1b = le_u32(fadt, 68) as u16;
    let reset_supported = fadt.len() >= 129 && le_u32(fadt, 112) & (1 << 10) != 0;
    // Generic address structure at 116: space id 1 is system I/O.
    let reset = (reset_supported && fadt[116] == 1).then(|| ResetRegister {
        port: le_u64(fadt, 120) as u16,
        value: fadt[128],
    });
    let s5_sleep_type = s5_from_dsdt(mem, dsdt_addr)?;
    Ok(PowerControl {
        pm1a_cnt,
        pm1b_cnt: (pm1b != 0).then_some(pm1b),
        s5_sleep_type,
        reset,
    })
}

/// Copies the table with `signature` into `buf` (truncated to its size) and returns its
/// length.
pub(super) fn find_table(
    mem: &impl PhysRead,
    root: RootTable,
    signature: [u8; 4],
    buf: &mut [u8],
) -> Result<usize, AcpiError> {
    let (addr, entry_size, root_sig) = match root {
        RootTable::Rsdt(a) => (a, 4, *b"RSDT"),
        RootTable::Xsdt(a) => (a, 8, *b"XSDT"),
    };
    let header = read_header(mem, addr, root_sig)?;
    let entries = (header.length as usize).saturating_sub(SDT_HEADER_LEN) / entry_size;
    for i in 0..entries.min(256) {
        let mut e = [0u8; 8];
        let at = addr + (SDT_HEADER_LEN + i * entry_size) as u64;
        if !mem.read(at, &mut e[..entry_size]) {
            return Err(AcpiError::BadTable(root_sig));
        }
        let table = u64::from_le_bytes(e);
        let mut sig = [0u8; 4];
        if !mem.read(table, &mut sig) || sig != signature {
            continue;
        }
        let header = read_header(mem, table, signature)?;
        let len = (header.length as usize).min(buf.len());
        if !mem.read(table, &mut buf[..len]) {
            return Err(AcpiError::BadTable(signature));
        }
        if header.length as usize <= buf.len() && checksum(&buf[..len]) != 0 {
            return Err(AcpiError::Checksum(signature));
        }
        return Ok(len);
    }
    Err(AcpiError::Missing(signature))
}

struct SdtHeader {
    length: u32,
}

fn read_header(mem: &impl PhysRead, addr: u64, sig: [u8; 4]) -> Result<SdtHeader, AcpiError> {
    let mut h = [0u8; SDT_HEADER_LEN];
    if addr == 0 || !mem.read(addr, &mut h) || h[..4] != sig {
        return Err(AcpiError::BadTable(sig));
    }
    let length = le_u32(&h, 4);
    if (length as usize) < SDT_HEADER_LEN {
        return Err(AcpiError::BadTable(sig));
    }
    Ok(SdtHeader { length })
}

/// Reads the DSDT in chunks and finds `\_S5`.
fn s5_from_dsdt(mem: &impl PhysRead, dsdt: u64) -> Result<(u8, u8), AcpiError> {
    let header = read_header(mem, dsdt, *b"DSDT")?;
    // Scan in overlapping windows so a pattern split across a boundary is still seen.
    const WINDOW: usize = 4096;
    const OVERLAP: usize = 32;
    let mut buf = [0u8; WINDOW];
    let total = header.length as usize;
    let mut offset = SDT_HEADER_LEN;
    while offset < total {
        let len = (total - offset).min(WINDOW);
        if !mem.read(dsdt + offset as u64, &mut buf[..len]) {
            return Err(AcpiError::BadTable(*b"DSDT"));
        }
        if let Some(t) = find_s5_package(&buf[..len]) {
            return Ok(t);
        }
        if offset + len >= total {
            break;
        }
        offset += len - OVERLAP;
    }
    Err(AcpiError::NoS5)
}

/// Finds `Name(_S5_, Package(){a, b, ...})` in AML bytes and returns `(a, b)`.
pub fn find_s5_package(aml: &[u8]) -> Option<(u8, u8)> {
    const NAME_OP: u8 = 0x08;
    const PACKAGE_OP: u8 = 0x12;
    let mut i = 0;
    while let Some(pos) = aml.get(i..)?.windows(4).position(|w| w == b"_S5_") {
        let at = i + pos;
        i = at + 4;
        let named = match at {
            0 => false,
            1 => aml[0] == NAME_OP,
            _ => aml[at - 1] == NAME_OP || (aml[at - 1] == b'\\' && aml[at - 2] == NAME_OP),
        };
        if !named || aml.get(at + 4) != Some(&PACKAGE_OP) {
            continue;
        }
        // PkgLength: the top two bits of the lead byte give the number of extra bytes.
        let lead = *aml.get(at + 5)?;
        let mut p = at + 6 + (lead >> 6) as usize;
        p += 1; // NumElements
        let a = aml_integer(aml, &mut p)?;
        let b = aml_integer(aml, &mut p)?;
        return Some((a, b));
    }
    None
}

/// Decodes a small AML integer constant (`Zero`, `One`, `BytePrefix n`, `WordPrefix`,...).
fn aml_integer(aml: &[u8], p: &mut usize) -> Option<u8> {
    let op = *aml.get(*p)?;
    let (value, len) = match op {
        0x00 => (0, 1),
        0x01 => (1, 1),
        0x0a => (*aml.get(*p + 1)?, 2),
        0x0b => (*aml.get(*p + 1)?, 3),
        0x0c => (*aml.get(*p + 1)?, 5),
        _ => return None,
    };
    *p += len;
    Some(value)
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

pub(super) fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

pub(super) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::vec;
    use std::vec::Vec;

    /// A sparse fake of physical memory.
    #[derive(Default)]
    pub(in crate::boot) struct FakeMem(BTreeMap<u64, Vec<u8>>);

    impl FakeMem {
        pub(in crate::boot) fn put(&mut self, addr: u64, bytes: Vec<u8>) {
            self.0.insert(addr, bytes);
        }
    }

    impl PhysRead for FakeMem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            for (&base, bytes) in &self.0 {
                if addr >= base && addr + buf.len() as u64 <= base + bytes.len() as u64 {
                    let off = (addr - base) as usize;
                    buf.copy_from_slice(&bytes[off..off + buf.len()]);
                    return true;
                }
            }
            false
        }
    }

    pub(in crate::boot) fn table(sig: &[u8; 4], body: &[u8], revision: u8) -> Vec<u8> {
        let mut t = vec![0u8; SDT_HEADER_LEN];
        t[..4].copy_from_slice(sig);
        t[8] = revision;
        t.extend_from_slice(body);
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        let sum = checksum(&t);
        t[9] = 0u8.wrapping_sub(sum);
        t
    }

    pub(in crate::boot) fn rsdp_v1(rsdt: u32) -> Vec<u8> {
        let mut r = vec![0u8; 20];
        r[..8].copy_from_slice(b"RSD PTR ");
        r[16..20].copy_from_slice(&rsdt.to_le_bytes());
        let sum = checksum(&r);
        r[8] = 0u8.wrapping_sub(sum);
        r
    }

    /// QEMU-like tables: RSDT → FADT (rev 1) → DSDT with `Name(\_S5, Package(4){0,0,0,0})`
    /// preceded by an `_S5_` that is not a name (must be skipped).
    fn qemu_like(s5: &[u8]) -> FakeMem {
        let mut mem = FakeMem::default();
        let mut dsdt_body = vec![0x10, 0x20, b'_', b'S', b'5', b'_', 0x70];
        dsdt_body.extend_from_slice(&[0u8; 5000]);
        dsdt_body.extend_from_slice(s5);
        mem.put(0x9000, table(b"DSDT", &dsdt_body, 1));
        let mut fadt_body = vec![0u8; 116 - SDT_HEADER_LEN];
        fadt_body[40 - SDT_HEADER_LEN..44 - SDT_HEADER_LEN]
            .copy_from_slice(&0x9000u32.to_le_bytes());
        fadt_body[64 - SDT_HEADER_LEN..68 - SDT_HEADER_LEN]
            .copy_from_slice(&0x604u32.to_le_bytes());
        mem.put(0x8000, table(b"FACP", &fadt_body, 1));
        let mut rsdt_body = Vec::new();
        rsdt_body.extend_from_slice(&0x7000u32.to_le_bytes()); // an APIC table, say
        rsdt_body.extend_from_slice(&0x8000u32.to_le_bytes());
        mem.put(0x7000, table(b"APIC", &[0; 8], 1));
        mem.put(0x6000, table(b"RSDT", &rsdt_body, 1));
        mem
    }

    #[test]
    fn finds_pm1a_and_s5_in_qemu_like_tables() {
        let s5 = [
            0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x0a, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0, 0,
        ];
        let mem = qemu_like(&s5);
        let root = parse_rsdp(&rsdp_v1(0x6000)).unwrap();
        assert_eq!(root, RootTable::Rsdt(0x6000));
        let pc = power_control(&mem, root).unwrap();
        assert_eq!(pc.pm1a_cnt, 0x604);
        assert_eq!(pc.pm1b_cnt, None);
        assert_eq!(pc.s5_sleep_type, (5, 5));
        assert_eq!(pc.reset, None);
        assert_eq!(PowerControl::s5_command(5), 0x3400);
    }

    #[test]
    fn missing_s5_and_bad_checksums_are_errors() {
        let mem = qemu_like(&[]);
        assert_eq!(
            power_control(&mem, RootTable::Rsdt(0x6000)),
            Err(AcpiError::NoS5)
        );
        let mut bad = rsdp_v1(0x6000);
        bad[8] ^= 1;
        assert_eq!(parse_rsdp(&bad), Err(AcpiError::Checksum(*b"RSDP")));
        assert_eq!(parse_rsdp(b"nothing here at all!"), Err(AcpiError::NoRsdp));
        assert_eq!(
            power_control(&FakeMem::default(), RootTable::Xsdt(0x1000)),
            Err(AcpiError::BadTable(*b"XSDT"))
        );
    }

    #[test]
    fn rsdp_scan_finds_aligned_signature() {
        let mut area = vec![0u8; 256];
        area[64..84].copy_from_slice(&rsdp_v1(0x1234));
        assert_eq!(scan_for_rsdp(&area), Some(64));
        assert_eq!(scan_for_rsdp(&area[..60]), None);
    }

    proptest! {
        #[test]
        fn s5_search_never_panics(aml in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = find_s5_package(&aml);
            let mut with_name = aml.clone();
            with_name.splice(0..0, [0x08, b'_', b'S', b'5', b'_', 0x12]);
            let _ = find_s5_package(&with_name);
        }

        #[test]
        fn table_walk_never_panics(blob in proptest::collection::vec(any::<u8>(), 0..512), root in 0u64..512) {
            let mut mem = FakeMem::default();
            mem.put(0, blob);
            let _ = power_control(&mem, RootTable::Rsdt(root));
            let _ = power_control(&mem, RootTable::Xsdt(root));
        }
    }
}
