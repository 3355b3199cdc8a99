//! The CPUID view of a PV guest: the host's leaves with what a ring-3 guest kernel must not
//! use (or cannot use without the hypervisor) taken out, and Xen's hypervisor leaves at
//! `0x40000000`.

use crate::{XEN_MAJOR, XEN_MINOR};

/// Base of the hypervisor CPUID leaves.
pub const XEN_CPUID_BASE: u32 = 0x4000_0000;
const XEN_CPUID_MAX: u32 = XEN_CPUID_BASE + 2;

const fn bits(list: &[u32]) -> u32 {
    let mut m = 0;
    let mut i = 0;
    while i < list.len() {
        m |= 1 << list[i];
        i += 1;
    }
    m
}

/// Leaf 1 ECX: DTES64, MONITOR, DS-CPL, VMX, SMX, EST, TM2, SDBG, PDCM, PCID, DCA, x2APIC,
/// TSC-deadline.
const L1_ECX_HIDDEN: u32 = bits(&[2, 3, 4, 5, 6, 7, 8, 11, 15, 17, 18, 21, 24]);
/// Leaf 1 ECX bit 31: running under a hypervisor.
const L1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 EDX: VME, DE, PSE, MCE, MTRR, PGE, MCA, PSE36, PSN, DS, ACPI, TM, PBE.
const L1_EDX_HIDDEN: u32 = bits(&[1, 2, 3, 7, 12, 13, 14, 17, 18, 21, 22, 29, 31]);
/// Leaf 7 EBX: FSGSBASE, SGX, HLE, SMEP, INVPCID, RTM, PQM, MPX, PQE, SMAP, PT.
const L7_EBX_HIDDEN: u32 = bits(&[0, 2, 4, 7, 10, 11, 12, 14, 15, 20, 25]);
/// Leaf 7 ECX: UMIP, PKU, OSPKE, WAITPKG, LA57, RDPID, SGX-LC.
const L7_ECX_HIDDEN: u32 = bits(&[2, 3, 4, 5, 16, 22, 30]);
/// Leaf 0x80000001 ECX: SVM, SKINIT, WDT.
const EXT1_ECX_HIDDEN: u32 = bits(&[2, 12, 13]);
/// Leaf 0x80000001 EDX: 1 GiB pages (no superpages for PV).
const EXT1_EDX_HIDDEN: u32 = bits(&[26]);

/// The guest's view of `leaf`/`subleaf`, given the host's answer `raw` as `[eax, ebx, ecx, edx]`.
pub fn guest_cpuid(leaf: u32, subleaf: u32, raw: [u32; 4]) -> [u32; 4] {
    let [mut a, mut b, mut c, mut d] = raw;
    match leaf {
        1 => {
            c = (c & !L1_ECX_HIDDEN) | L1_ECX_HYPERVISOR;
            d &= !L1_EDX_HIDDEN;
            // APIC id 0, one logical processor, keep the CLFLUSH line size and brand index.
            b &= 0x0000_ffff;
        }
        7 if subleaf == 0 => {
            b &= !L7_EBX_HIDDEN;
            c &= !L7_ECX_HIDDEN;
        }
        0x8000_0001 => {
            c &= !EXT1_ECX_HIDDEN;
            d &= !EXT1_EDX_HIDDEN;
        }
        XEN_CPUID_BASE => {
            a = XEN_CPUID_MAX;
            (b, c, d) = (
                u32::from_le_bytes(*b"XenV"),
                u32::from_le_bytes(*b"MMXe"),
                u32::from_le_bytes(*b"nVMM"),
            );
        }
        l if l == XEN_CPUID_BASE + 1 => {
            a = ((XEN_MAJOR as u32) << 16) | XEN_MINOR as u32;
            (b, c, d) = (0, 0, 0);
        }
        l if l == XEN_CPUID_BASE + 2 => {
            // One hypercall page, set up through MSR 0x40000000.
            (a, b, c, d) = (1, XEN_CPUID_BASE, 0, 0);
        }
        l if (XEN_CPUID_BASE..XEN_CPUID_BASE + 0x1_0000).contains(&l) => {
            (a, b, c, d) = (0, 0, 0, 0)
        }
        _ => {}
    }
    [a, b, c, d]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_what_pv_guests_must_not_use() {
        let all = [u32::MAX; 4];
        let [_, _, c, d] = guest_cpuid(1, 0, all);
        assert_eq!(c & (1 << 5), 0, "VMX");
        assert_eq!(c & (1 << 21), 0, "x2APIC");
        assert_eq!(c & (1 << 17), 0, "PCID");
        assert_ne!(c & (1 << 31), 0, "hypervisor bit");
        assert_ne!(c & (1 << 26), 0, "XSAVE stays");
        assert_eq!(d & (1 << 7), 0, "MCE");
        assert_eq!(d & (1 << 12), 0, "MTRR");
        assert_ne!(d & (1 << 25), 0, "SSE stays");
        let [_, b, c, _] = guest_cpuid(7, 0, all);
        assert_eq!(b & (1 << 20), 0, "SMAP");
        assert_eq!(c & (1 << 3), 0, "PKU");
        assert_eq!(c & (1 << 16), 0, "LA57");
        assert_eq!(guest_cpuid(7, 1, all), all, "only subleaf 0 is filtered");
        let [_, _, c, d] = guest_cpuid(0x8000_0001, 0, all);
        assert_eq!(c & (1 << 2), 0, "SVM");
        assert_ne!(d & (1 << 20), 0, "NX stays");
        assert_ne!(d & (1 << 29), 0, "LM stays");
    }

    #[test]
    fn xen_leaves() {
        let [a, b, c, d] = guest_cpuid(XEN_CPUID_BASE, 0, [0; 4]);
        assert_eq!(a, XEN_CPUID_BASE + 2);
        let sig: std::vec::Vec<u8> = [b, c, d].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(&sig, b"XenVMMXenVMM");
        assert_eq!(guest_cpuid(XEN_CPUID_BASE + 1, 0, [0; 4])[0], 0x4_0011);
        assert_eq!(guest_cpuid(XEN_CPUID_BASE + 0x100, 0, [7; 4]), [0; 4]);
    }
}
