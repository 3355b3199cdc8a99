//! Which machine frames outside RAM the hardware domain may map, after the I/O memory
//! permissions Xen gives dom0 (`dom0_setup_permissions`): everything below the CPU's physical
//! address width except the devices the hypervisor drives itself. Those are the local APIC
//! (where the MADT puts it), the MSI window `0xfee00000`–`0xfeefffff` (a write there is an
//! interrupt message), every I/O APIC the MADT lists, and the HPET at its usual address.
//!
//! Differences from Xen: Xen lets dom0 map the I/O APICs and the HPET read-only; here they
//! are refused whatever the mapping's rights (the hypervisor owns them; dom0 has no reason to
//! look).

use super::Mfn;
use crate::boot::madt::Madt;

/// The MSI address window, frames `0xfee00`–`0xfeeff`.
const MSI_WINDOW: core::ops::RangeInclusive<u64> = 0xfee00..=0xfeeff;
/// The HPET's usual frame (the hypervisor does not read the HPET table; it refuses this one).
const HPET_FRAME: u64 = 0xfed00;
/// Where the local APIC and the first I/O APIC sit when the firmware has no MADT.
const DEFAULT_DEVICE_FRAMES: [u64; 2] = [0xfee00, 0xfec00];

/// Whether `mfn` (outside RAM) is a device the hypervisor drives itself, by the firmware's
/// `madt` (or the usual addresses without one).
pub fn hypervisor_device(mfn: Mfn, madt: Option<&Madt>) -> bool {
    let frame = mfn.0;
    if MSI_WINDOW.contains(&frame) || frame == HPET_FRAME {
        return true;
    }
    match madt {
        Some(m) => {
            m.lapic_address >> 12 == frame || m.ioapics.iter().any(|io| io.address >> 12 == frame)
        }
        None => DEFAULT_DEVICE_FRAMES.contains(&frame),
    }
}

/// Whether a domain with I/O memory access may map `mfn` (outside RAM): below `limit` (the
/// physical address width's first frame) and not the hypervisor's device.
pub fn mappable(mfn: Mfn, limit: u64, madt: Option<&Madt>) -> bool {
    mfn.0 < limit && !hypervisor_device(mfn, madt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::madt::IoApic;
    use std::vec;

    fn madt() -> Madt {
        Madt {
            lapic_address: 0xfee0_0000,
            ioapics: vec![
                IoApic {
                    id: 0,
                    address: 0xfec0_0000,
                    gsi_base: 0,
                },
                IoApic {
                    id: 1,
                    address: 0xfec4_0000,
                    gsi_base: 24,
                },
            ],
            ..Madt::default()
        }
    }

    const LIMIT: u64 = 1 << 28;

    #[test]
    fn pci_bars_low_and_high_are_mappable() {
        let m = madt();
        for bar in [0xfebf_0000u64, 0xfe00_0000, 0x80_0000_0000, 0xa_0000] {
            assert!(mappable(Mfn(bar >> 12), LIMIT, Some(&m)), "{bar:#x}");
        }
    }

    #[test]
    fn the_hypervisors_devices_are_not() {
        let m = madt();
        for frame in [0xfee00, 0xfeeff, 0xfec00, 0xfec40, 0xfed00] {
            assert!(!mappable(Mfn(frame), LIMIT, Some(&m)), "{frame:#x}");
        }
        assert!(mappable(Mfn(0xfec01), LIMIT, Some(&m)));
        assert!(!mappable(Mfn(0xfec00), LIMIT, None));
        assert!(
            !mappable(Mfn(LIMIT), LIMIT, Some(&m)),
            "beyond the address width"
        );
    }

    #[test]
    fn a_local_apic_moved_by_the_madt_is_refused_where_it_is() {
        let m = Madt {
            lapic_address: 0xfe80_0000,
            ..madt()
        };
        assert!(!mappable(Mfn(0xfe800), LIMIT, Some(&m)));
    }
}
