//! x86-64 segment descriptors and the hypervisor's GDT layout.
//!
//! Xen's PV ABI fixes the selectors guests use: the guest owns GDT entries below
//! [`FIRST_RESERVED_GDT_ENTRY`] (its 14 frames given with `set_gdt`), and the hypervisor owns the
//! entries above, where the flat ring-3 segments `FLAT_RING3_CS64 = 0xe033` and
//! `FLAT_RING3_SS64 = 0xe02b` live. The ring-0 and ring-3 code/data entries are ordered so that
//! `syscall`/`sysret` can be used with one STAR value, as in Xen.

/// First GDT byte the hypervisor owns: guests may use the 14 pages below it.
pub const FIRST_RESERVED_GDT_BYTE: u16 = 14 * 4096;
/// First GDT entry the hypervisor owns.
pub const FIRST_RESERVED_GDT_ENTRY: usize = FIRST_RESERVED_GDT_BYTE as usize / 8;
/// Number of hypervisor-owned descriptor slots (one page).
pub const RESERVED_GDT_ENTRIES: usize = 512;

/// Hypervisor 64-bit code (ring 0).
pub const HYPERVISOR_CS: u16 = 0xe008;
/// Hypervisor data/stack (ring 0); `syscall` loads SS from `HYPERVISOR_CS + 8`.
pub const HYPERVISOR_DS: u16 = 0xe010;
/// Flat 32-bit ring-3 code (compat mode); also STAR's sysret base.
pub const FLAT_RING3_CS32: u16 = 0xe023;
/// Flat ring-3 data and stack.
pub const FLAT_RING3_DS: u16 = 0xe02b;
/// Flat 64-bit ring-3 code.
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// Hypervisor 32-bit code (ring 0), unused in 64-bit operation but kept where Xen has it.
pub const HYPERVISOR_CS32: u16 = 0xe038;
/// The TSS (a 16-byte system descriptor, two slots).
pub const TSS_SELECTOR: u16 = 0xe040;
/// The LDT (a 16-byte system descriptor, two slots).
pub const LDT_SELECTOR: u16 = 0xe050;

/// The GDT limit loaded into GDTR: guest pages plus the hypervisor's page.
pub const GDT_LIMIT: u16 = FIRST_RESERVED_GDT_BYTE + (RESERVED_GDT_ENTRIES * 8) as u16 - 1;

const ACCESSED: u64 = 1 << 40;
const WRITABLE: u64 = 1 << 41;
const EXECUTABLE: u64 = 1 << 43;
const USER_SEGMENT: u64 = 1 << 44;
const PRESENT: u64 = 1 << 47;
const LONG_MODE: u64 = 1 << 53;
const DEFAULT_SIZE: u64 = 1 << 54;
const GRANULARITY: u64 = 1 << 55;
const LIMIT_4G: u64 = 0xffff | (0xf << 48) | GRANULARITY;

const fn dpl(ring: u8) -> u64 {
    ((ring & 3) as u64) << 45
}

/// A flat 64-bit code segment at privilege `ring`.
pub const fn code64(ring: u8) -> u64 {
    LIMIT_4G | ACCESSED | WRITABLE | EXECUTABLE | USER_SEGMENT | PRESENT | LONG_MODE | dpl(ring)
}

/// A flat 32-bit code segment at privilege `ring`.
pub const fn code32(ring: u8) -> u64 {
    LIMIT_4G | ACCESSED | WRITABLE | EXECUTABLE | USER_SEGMENT | PRESENT | DEFAULT_SIZE | dpl(ring)
}

/// A flat writable data segment at privilege `ring`.
pub const fn data(ring: u8) -> u64 {
    LIMIT_4G | ACCESSED | WRITABLE | USER_SEGMENT | PRESENT | DEFAULT_SIZE | dpl(ring)
}

/// A 64-bit available-TSS descriptor (two slots) for a TSS at `base` with `limit`.
pub const fn tss(base: u64, limit: u32) -> [u64; 2] {
    let limit = limit as u64;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x9 << 40) // type: 64-bit TSS, available
        | PRESENT
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [low, base >> 32]
}

/// An LDT descriptor (two slots) for an LDT at `base` with `limit`.
pub const fn ldt(base: u64, limit: u32) -> [u64; 2] {
    let limit = limit as u64;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x2 << 40) // type: LDT
        | PRESENT
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [low, base >> 32]
}

/// A 64-bit interrupt gate (two slots) entering `handler` through code `selector`, on IST stack
/// `ist` (0 = none), callable by software `int` from privilege `dpl` and above.
pub const fn interrupt_gate(handler: u64, selector: u16, ist: u8, dpl_ring: u8) -> [u64; 2] {
    let low = (handler & 0xffff)
        | ((selector as u64) << 16)
        | (((ist & 7) as u64) << 32)
        | (0xe << 40) // type: 64-bit interrupt gate
        | dpl(dpl_ring)
        | PRESENT
        | (((handler >> 16) & 0xffff) << 48);
    [low, handler >> 32]
}

/// The hypervisor-owned descriptor page, indexed from [`FIRST_RESERVED_GDT_ENTRY`]. The TSS
/// slots are filled per CPU with [`tss`].
pub const fn reserved_gdt_page() -> [u64; RESERVED_GDT_ENTRIES] {
    let mut page = [0u64; RESERVED_GDT_ENTRIES];
    page[slot(HYPERVISOR_CS)] = code64(0);
    page[slot(HYPERVISOR_DS)] = data(0);
    page[slot(FLAT_RING3_CS32)] = code32(3);
    page[slot(FLAT_RING3_DS)] = data(3);
    page[slot(FLAT_RING3_CS64)] = code64(3);
    page[slot(HYPERVISOR_CS32)] = code32(0);
    page
}

/// Index of `selector` within the hypervisor-owned page.
pub const fn slot(selector: u16) -> usize {
    (selector as usize >> 3) - FIRST_RESERVED_GDT_ENTRY
}

/// The STAR MSR value: `syscall` enters at `HYPERVISOR_CS`/`HYPERVISOR_DS`, and 64-bit `sysret`
/// returns to `FLAT_RING3_CS32 + 16 = FLAT_RING3_CS64` with SS `FLAT_RING3_CS32 + 8`.
pub const fn star() -> u64 {
    ((FLAT_RING3_CS32 as u64) << 48) | ((HYPERVISOR_CS as u64) << 32)
}

/// What a descriptor says about itself, for checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Present bit.
    pub present: bool,
    /// Code (as opposed to data) segment.
    pub code: bool,
    /// 64-bit code (L bit).
    pub long: bool,
    /// Descriptor privilege level.
    pub dpl: u8,
    /// Code/data (as opposed to system) descriptor.
    pub user: bool,
}

/// The base of `desc` if ring 3 may load it into a data segment register (present, a code or
/// data segment, DPL 3, readable if code); `None` if loading it would fault.
pub const fn loadable_data_base(desc: u64) -> Option<u64> {
    const READABLE_CODE: u64 = 1 << 41;
    let info = decode(desc);
    if !info.present || !info.user || info.dpl != 3 || (info.code && desc & READABLE_CODE == 0) {
        return None;
    }
    Some(((desc >> 16) & 0xff_ffff) | (((desc >> 56) & 0xff) << 24))
}

/// Decodes the fields of a code/data descriptor.
pub const fn decode(desc: u64) -> SegmentInfo {
    SegmentInfo {
        present: desc & PRESENT != 0,
        code: desc & EXECUTABLE != 0,
        long: desc & LONG_MODE != 0,
        dpl: ((desc >> 45) & 3) as u8,
        user: desc & USER_SEGMENT != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xen_flat_selectors_resolve_to_ring3_64bit_segments() {
        let page = reserved_gdt_page();
        assert_eq!(FLAT_RING3_CS64 & 3, 3, "RPL 3");
        let cs = decode(page[slot(FLAT_RING3_CS64)]);
        assert_eq!(
            cs,
            SegmentInfo {
                present: true,
                code: true,
                long: true,
                dpl: 3,
                user: true
            }
        );
        let ss = decode(page[slot(FLAT_RING3_DS)]);
        assert_eq!(
            ss,
            SegmentInfo {
                present: true,
                code: false,
                long: false,
                dpl: 3,
                user: true
            }
        );
        assert!(decode(page[slot(HYPERVISOR_CS)]).long);
        assert_eq!(decode(page[slot(HYPERVISOR_CS)]).dpl, 0);
        assert_eq!(FIRST_RESERVED_GDT_ENTRY, 7168);
    }

    #[test]
    fn syscall_and_sysret_selectors_line_up() {
        let star = star();
        let syscall_cs = (star >> 32) as u16;
        let sysret_base = (star >> 48) as u16;
        assert_eq!(syscall_cs, HYPERVISOR_CS);
        assert_eq!(syscall_cs + 8, HYPERVISOR_DS);
        assert_eq!(sysret_base + 16, FLAT_RING3_CS64);
        assert_eq!((sysret_base + 8) | 3, FLAT_RING3_DS);
    }

    #[test]
    fn tss_descriptor_splits_base() {
        let [lo, hi] = tss(0xffff_8280_0012_3456, 0x67);
        assert_eq!(hi, 0xffff_8280);
        assert_eq!(lo & 0xffff, 0x67);
        assert_eq!((lo >> 16) & 0xff_ffff, 0x12_3456);
        assert_eq!((lo >> 56) & 0xff, 0x00);
        assert_eq!((lo >> 40) & 0xf, 0x9);
        assert!(!decode(lo).user);
    }

    #[test]
    fn loadable_data_base_reads_the_base_of_ring3_segments() {
        let with_base = data(3) | ((0x34_5000 & 0xff_ffff) << 16) | (0x12 << 56);
        assert_eq!(loadable_data_base(with_base), Some(0x1234_5000));
        assert_eq!(loadable_data_base(data(3)), Some(0));
        assert_eq!(loadable_data_base(data(0)), None, "DPL 0");
        assert_eq!(loadable_data_base(0), None, "not present");
        assert_eq!(
            loadable_data_base(tss(0x1000, 0x67)[0]),
            None,
            "system segment"
        );
    }

    #[test]
    fn ldt_descriptor_is_a_present_system_segment() {
        let [lo, hi] = ldt(0xffff_8280_01ab_c000, 0xffff);
        assert_eq!(hi, 0xffff_8280);
        assert_eq!(lo & 0xffff, 0xffff);
        assert_eq!((lo >> 16) & 0xff_ffff, 0xab_c000);
        assert_eq!((lo >> 56) & 0xff, 0x01);
        assert_eq!((lo >> 40) & 0xf, 0x2, "type LDT");
        assert_ne!(lo & (1 << 47), 0, "present");
        assert!(!decode(lo).user);
    }

    #[test]
    fn interrupt_gate_fields() {
        let [lo, hi] = interrupt_gate(0xffff_8280_0020_1234, HYPERVISOR_CS, 2, 0);
        assert_eq!(lo & 0xffff, 0x1234);
        assert_eq!((lo >> 48) & 0xffff, 0x0020);
        assert_eq!(hi, 0xffff_8280);
        assert_eq!((lo >> 16) & 0xffff, u64::from(HYPERVISOR_CS));
        assert_eq!((lo >> 32) & 7, 2);
        assert_eq!((lo >> 40) & 0xf, 0xe);
        assert_eq!(decode(lo).dpl, 0);
        assert!(decode(lo).present);
    }
}
