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
const MSI_WINDOW: (u64, u64) = (0xfee00, 0xfeeff);
/// The HPET's usual frame (the hypervisor does not read the HPET table; it refuses this one).
const HPET_FRAME: u64 = 0xfed00;
/// Where the local APIC and the first I/O APIC sit when the firmware has no MADT.
const DEFAULT_DEVICE_FRAMES: [u64; 2] = [0xfee00, 0xfec00];
/// Room for the refused ranges: the MSI window, the HPET, the local APIC, the I/O APICs the
/// MADT may list, and everything beyond the address width.
const MAX_DENIED: usize = 4 + crate::boot::madt::MAX_IOAPICS;

/// The frames outside RAM the hardware domain may not map, as sorted, disjoint, inclusive
/// ranges of frame numbers.
#[derive(Clone, Copy, Debug)]
pub struct DeniedFrames {
    ranges: [(u64, u64); MAX_DENIED],
    len: usize,
    limit: u64,
}

impl DeniedFrames {
    /// The hypervisor's devices by the firmware's `madt` (or the usual addresses without one),
    /// and every frame from `limit` (the physical address width's first frame) on.
    pub fn new(madt: Option<&Madt>, limit: u64) -> Self {
        let mut d = DeniedFrames {
            ranges: [(0, 0); MAX_DENIED],
            len: 0,
            limit,
        };
        d.push(MSI_WINDOW);
        d.push((HPET_FRAME, HPET_FRAME));
        match madt {
            Some(m) => {
                d.push((m.lapic_address >> 12, m.lapic_address >> 12));
                for io in &m.ioapics {
                    d.push((io.address >> 12, io.address >> 12));
                }
            }
            None => {
                for f in DEFAULT_DEVICE_FRAMES {
                    d.push((f, f));
                }
            }
        }
        d.push((limit, u64::MAX));
        d.normalise();
        d
    }

    fn push(&mut self, range: (u64, u64)) {
        if let Some(slot) = self.ranges.get_mut(self.len) {
            *slot = range;
            self.len += 1;
        }
    }

    /// Sorts the ranges and merges those that overlap or touch.
    fn normalise(&mut self) {
        let ranges = &mut self.ranges[..self.len];
        ranges.sort_unstable();
        let mut out = 0;
        for i in 0..ranges.len() {
            let (s, e) = ranges[i];
            if out > 0 && s <= ranges[out - 1].1.saturating_add(1) {
                ranges[out - 1].1 = ranges[out - 1].1.max(e);
            } else {
                ranges[out] = (s, e);
                out += 1;
            }
        }
        self.len = out;
    }

    /// The first frame beyond the physical address width.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges[..self.len]
    }

    /// Whether `frame` is refused.
    pub fn contains(&self, frame: u64) -> bool {
        self.ranges().iter().any(|&(s, e)| s <= frame && frame <= e)
    }

    /// Calls `each` with every maximal permitted range inside `[first, last]`, in order.
    pub fn permitted_within<E>(
        &self,
        first: u64,
        last: u64,
        mut each: impl FnMut(u64, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut at = first;
        for &(s, e) in self.ranges() {
            if at > last {
                return Ok(());
            }
            if e < at {
                continue;
            }
            if s > at {
                each(at, (s - 1).min(last))?;
            }
            match e.checked_add(1) {
                Some(next) => at = at.max(next),
                None => return Ok(()),
            }
        }
        if at <= last {
            each(at, last)?;
        }
        Ok(())
    }
}

/// Whether a domain with I/O memory access may map `mfn` (outside RAM): below `limit` (the
/// physical address width's first frame) and not the hypervisor's device.
pub fn mappable(mfn: Mfn, limit: u64, madt: Option<&Madt>) -> bool {
    !DeniedFrames::new(madt, limit).contains(mfn.0)
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
    fn permitted_ranges_are_the_gaps_between_the_refused_ones() {
        let d = DeniedFrames::new(Some(&madt()), LIMIT);
        let mut got = vec![];
        d.permitted_within(0xfe000, u64::MAX, |s, e| {
            got.push((s, e));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(
            got,
            [
                (0xfe000, 0xfebff),
                (0xfec01, 0xfec3f),
                (0xfec41, 0xfecff),
                (0xfed01, 0xfedff),
                (0xfef00, LIMIT - 1)
            ]
        );
        let mut inside = vec![];
        d.permitted_within(0xfec00, 0xfec00, |s, e| {
            inside.push((s, e));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert!(inside.is_empty());
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
