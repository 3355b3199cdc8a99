//! The ACPI parsers (`hypervisor::boot::acpi`, `hypervisor::boot::madt`): the RSDP, the
//! RSDT/XSDT walk, the FADT and the DSDT's `\_S5` package, the MADT's CPUs, I/O APICs and
//! interrupt overrides, over a fuzzed 64 KiB "physical memory" whose table checksums the harness
//! fixes up (so that the fuzzer gets past them). Firmware input never panics the hypervisor.
#![no_main]

use hypervisor::boot::acpi::{
    PhysRead, RootTable, find_s5_package, parse_rsdp, power_control, scan_for_rsdp,
};
use hypervisor::boot::madt;
use libfuzzer_sys::fuzz_target;

struct Mem(Vec<u8>);

impl PhysRead for Mem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Ok(start) = usize::try_from(addr) else {
            return false;
        };
        match start
            .checked_add(buf.len())
            .and_then(|end| self.0.get(start..end))
        {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

/// Makes the byte sum of every table with a known signature (at a 4-byte boundary) zero.
fn fix_checksums(mem: &mut [u8]) {
    let mut at = 0;
    while at + 36 <= mem.len() {
        let sig = &mem[at..at + 4];
        if [&b"RSDT"[..], b"XSDT", b"FACP", b"DSDT", b"APIC"].contains(&sig) {
            let len = u32::from_le_bytes(mem[at + 4..at + 8].try_into().unwrap()) as usize;
            let end = at.saturating_add(len).min(mem.len());
            if end >= at + 10 {
                mem[at + 9] = 0;
                let sum = mem[at..end].iter().fold(0u8, |s, &b| s.wrapping_add(b));
                mem[at + 9] = sum.wrapping_neg();
            }
        }
        at += 4;
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let _ = find_s5_package(data);
    let _ = scan_for_rsdp(data);
    let _ = parse_rsdp(data);
    let mut mem = data[1..].to_vec();
    mem.truncate(1 << 16);
    fix_checksums(&mut mem);
    // The root table at an offset the first byte picks (scaled), of either kind.
    let addr = u64::from(data[0] & 0x7f) * 16;
    let root = if data[0] & 0x80 != 0 {
        RootTable::Xsdt(addr)
    } else {
        RootTable::Rsdt(addr)
    };
    let mem = Mem(mem);
    if let Ok(pc) = power_control(&mem, root) {
        assert!(pc.pm1b_cnt != Some(0));
    }
    if let Ok(m) = madt::read(&mem, root) {
        assert!(m.cpus.len() <= madt::MAX_CPUS && m.ioapics.len() <= madt::MAX_IOAPICS);
        let _ = m.isa_irq(data[0]);
    }
});
