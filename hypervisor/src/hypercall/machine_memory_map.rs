//! `XENMEM_machine_memory_map` (the hardware domain only): the machine's E820 map as the boot
//! loader gave it, with Xen's additions (`arch_memory_op` in xen/arch/x86/mm.c). Every stretch
//! of a gap between entries that dom0 may not map (the hypervisor's devices, and nothing beyond
//! the physical address width) is reported as an `E820_RESERVED` entry, so that dom0 never
//! places a BAR or a mapping there; the rest of each gap is left a gap.
//!
//! Checks in Xen's order: not the hardware domain, `-EPERM`; an unreadable argument, `-EFAULT`;
//! a buffer (non-null) with fewer than the map's entries plus one, `-EINVAL`; a buffer outside
//! guest memory, `-EFAULT`; running out of room as entries are added, `-EINVAL`. A null buffer
//! counts the entries without writing them.

use super::HcResult;
use crate::mm::device_frames::DeniedFrames;
use crate::pv::guest_mem::{GuestMemory, access_ok};
use guest_abi::XenError;
use guest_abi::memory::{E820_RESERVED, E820Entry, XenMemoryMap};

/// Bytes of one entry in the guest's buffer.
const ENTRY_BYTES: u64 = size_of::<E820Entry>() as u64;

/// The map as it is written out: the entries so far, and the first frame not yet described.
struct Writer<'a, M> {
    mem: &'a mut M,
    map: XenMemoryMap,
    written: u32,
    next_frame: u64,
    denied: &'a DeniedFrames,
}

impl<M: GuestMemory> Writer<'_, M> {
    fn store(&self) -> bool {
        self.map.buffer != 0
    }

    fn put(&mut self, entry: &E820Entry) -> Result<(), XenError> {
        let at = self
            .map
            .buffer
            .wrapping_add(u64::from(self.written) * ENTRY_BYTES);
        self.mem.write_obj(at, entry).map_err(|_| XenError::Fault)
    }

    /// Reports the frames from `next_frame` up to (not including) `frame` as reserved, if
    /// there are any and `frame` is within the address width; then continues after `last`
    /// (Xen's `_handle_iomem_range`).
    fn reserve_before(&mut self, frame: u64, last: u64) -> Result<(), XenError> {
        if frame > self.next_frame && frame < self.denied.limit() {
            if self.store() {
                if self.written + 1 >= self.map.nr_entries {
                    return Err(XenError::Inval);
                }
                self.put(&E820Entry {
                    addr: self.next_frame << 12,
                    size: (frame - self.next_frame) << 12,
                    type_: E820_RESERVED,
                })?;
            }
            self.written += 1;
        }
        self.next_frame = last.wrapping_add(1);
        Ok(())
    }

    /// Walks the gap `[next_frame, last]`: each range dom0 may map there closes a reserved
    /// stretch before it.
    fn gap(&mut self, last: u64) -> Result<(), XenError> {
        let denied = self.denied;
        denied.permitted_within(self.next_frame, last, |s, e| self.reserve_before(s, e))
    }
}

/// `XENMEM_machine_memory_map` with its argument at `arg`: the machine's sorted `e820`, the
/// frames dom0 may not map `denied`; `hardware`: the caller is the hardware domain.
pub fn machine_memory_map(
    mem: &mut impl GuestMemory,
    arg: u64,
    hardware: bool,
    e820: &[E820Entry],
    denied: &DeniedFrames,
) -> HcResult {
    if !hardware {
        return Err(XenError::Perm);
    }
    let map: XenMemoryMap = mem.read_obj(arg).map_err(|_| XenError::Fault)?;
    let entries = e820.len() as u64;
    let store = map.buffer != 0;
    if store && u64::from(map.nr_entries) < entries + 1 {
        return Err(XenError::Inval);
    }
    let bytes = u64::from(map.nr_entries).checked_mul(ENTRY_BYTES);
    if store && !access_ok(map.buffer, bytes) {
        return Err(XenError::Fault);
    }
    let mut w = Writer {
        mem,
        map,
        written: 0,
        next_frame: 0,
        denied,
    };
    for (i, entry) in e820.iter().enumerate() {
        let first = entry.addr >> 12;
        if first > w.next_frame {
            w.gap(first - 1)?;
            w.reserve_before(first, first)?;
        }
        if store {
            let left = entries - i as u64;
            if u64::from(w.map.nr_entries) <= u64::from(w.written) + left {
                return Err(XenError::Inval);
            }
            w.put(entry)?;
        }
        let end = entry.addr.saturating_add(entry.size);
        w.next_frame = end.div_ceil(4096);
        w.written += 1;
    }
    if w.next_frame != 0 {
        w.gap(u64::MAX)?;
        if w.next_frame != 0 {
            w.reserve_before(u64::MAX, u64::MAX)?;
        }
    }
    let mut map = w.map;
    map.nr_entries = w.written;
    w.mem.write_obj(arg, &map).map_err(|_| XenError::Fault)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pv::guest_mem::fake::FakeGuest;
    use guest_abi::arch::HYPERVISOR_VIRT_END;
    use guest_abi::memory::E820_RAM;
    use std::vec::Vec;

    const ARG: u64 = 0x1000;
    const BUF: u64 = 0x2000;

    fn e(addr: u64, size: u64, type_: u32) -> E820Entry {
        E820Entry { addr, size, type_ }
    }

    /// QEMU's map for 512 MiB.
    fn qemu() -> [E820Entry; 5] {
        [
            e(0, 0x9fc00, E820_RAM),
            e(0x9fc00, 0x400, E820_RESERVED),
            e(0xf0000, 0x10000, E820_RESERVED),
            e(0x10_0000, 0x1ff0_0000, E820_RAM),
            e(0xfffc_0000, 0x4_0000, E820_RESERVED),
        ]
    }

    fn call(nr_entries: u32, buffer: u64, hardware: bool) -> (HcResult, Vec<E820Entry>, u32) {
        let mut mem = FakeGuest::default();
        mem.map(ARG, 16);
        mem.map(BUF, 20 * 16);
        let map = XenMemoryMap {
            nr_entries,
            _hole: 0,
            buffer,
        };
        mem.write_obj(ARG, &map).unwrap();
        let denied = DeniedFrames::new(None, 1 << 28);
        let r = machine_memory_map(&mut mem, ARG, hardware, &qemu(), &denied);
        let back: XenMemoryMap = mem.read_obj(ARG).unwrap();
        let got = (0..back.nr_entries.min(16))
            .map(|i| mem.read_obj(BUF + 20 * u64::from(i)).unwrap())
            .collect();
        (r, got, back.nr_entries)
    }

    #[test]
    fn the_hypervisors_devices_in_the_pci_hole_are_reserved() {
        let (r, got, n) = call(16, BUF, true);
        assert_eq!((r, n), (Ok(0), 8));
        let q = qemu();
        let want = [
            q[0],
            q[1],
            q[2],
            q[3],
            e(0xfec0_0000, 0x1000, E820_RESERVED),
            e(0xfed0_0000, 0x1000, E820_RESERVED),
            e(0xfee0_0000, 0x10_0000, E820_RESERVED),
            q[4],
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_null_buffer_counts_and_a_short_one_is_einval() {
        let (r, _, n) = call(0, 0, true);
        assert_eq!((r, n), (Ok(0), 8));
        assert_eq!(
            call(5, BUF, true).0,
            Err(XenError::Inval),
            "fewer than the map plus one"
        );
        assert_eq!(
            call(6, BUF, true).0,
            Err(XenError::Inval),
            "no room for the additions"
        );
    }

    #[test]
    fn only_the_hardware_domain_and_only_guest_memory() {
        assert_eq!(call(16, BUF, false).0, Err(XenError::Perm));
        assert_eq!(
            call(16, HYPERVISOR_VIRT_END - 0x100, true).0,
            Err(XenError::Fault)
        );
        let mut mem = FakeGuest::default();
        let denied = DeniedFrames::new(None, 1 << 28);
        assert_eq!(
            machine_memory_map(&mut mem, ARG, true, &qemu(), &denied),
            Err(XenError::Fault)
        );
    }
}
