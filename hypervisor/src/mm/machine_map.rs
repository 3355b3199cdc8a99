//! The machine's memory map as the boot loader gave it (E820 types), kept sorted for
//! `XENMEM_machine_memory_map`.

use guest_abi::memory::E820Entry;

/// Most entries kept; a longer map loses its last entries (and says so at boot).
pub const MAX_ENTRIES: usize = 128;

/// A sorted E820 map of at most [`MAX_ENTRIES`] entries.
#[derive(Clone, Copy)]
pub struct MachineMap {
    entries: [E820Entry; MAX_ENTRIES],
    len: usize,
}

impl Default for MachineMap {
    fn default() -> Self {
        Self::new()
    }
}

impl MachineMap {
    /// An empty map.
    pub const fn new() -> Self {
        Self {
            entries: [E820Entry {
                addr: 0,
                size: 0,
                type_: 0,
            }; MAX_ENTRIES],
            len: 0,
        }
    }

    /// Adds an entry, keeping the map sorted by address; `false` when the map is full.
    pub fn push(&mut self, addr: u64, size: u64, type_: u32) -> bool {
        if self.len == MAX_ENTRIES {
            return false;
        }
        self.entries[self.len] = E820Entry { addr, size, type_ };
        self.len += 1;
        self.entries[..self.len].sort_by_key(|e| e.addr);
        true
    }

    /// The entries, by address.
    pub fn entries(&self) -> &[E820Entry] {
        &self.entries[..self.len]
    }

    /// The gaps between entries inside `[from, below)`, as `[start, end)` byte ranges.
    pub fn holes(&self, from: u64, below: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut covered = from;
        self.entries().iter().filter_map(move |e| {
            let (start, end) = (e.addr, e.addr.saturating_add(e.size));
            let hole = (start > covered).then_some((covered, start.min(below)));
            covered = covered.max(end);
            hole.filter(|&(s, e)| s < e)
        })
    }
}

/// The machine's map, recorded once at boot.
pub static MACHINE_MAP: spin::Once<MachineMap> = spin::Once::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_between_entries_within_bounds() {
        let mut m = MachineMap::new();
        m.push(0, 0x9fc00, 1);
        m.push(0xf0000, 0x10000, 2);
        m.push(0x10_0000, 0xbff0_0000, 1);
        m.push(0x1_0000_0000, 0x4000_0000, 1);
        m.push(0xfffc_0000, 0x4_0000, 2);
        let holes: std::vec::Vec<_> = m.holes(0x10_0000, 0x1_4000_0000).collect();
        assert_eq!(holes, [(0xc000_0000, 0xfffc_0000)]);
        let low: std::vec::Vec<_> = m.holes(0, 0x10_0000).collect();
        assert_eq!(low, [(0x9fc00, 0xf0000)]);
    }

    #[test]
    fn entries_come_out_sorted_and_the_map_has_a_bound() {
        let mut m = MachineMap::new();
        assert!(m.push(0x10_0000, 0x100, 1));
        assert!(m.push(0, 0x9fc00, 1));
        let addrs: std::vec::Vec<u64> = m.entries().iter().map(|e| e.addr).collect();
        assert_eq!(addrs, [0, 0x10_0000]);
        for i in 2..MAX_ENTRIES {
            assert!(m.push(i as u64 * 0x1000_0000, 1, 2));
        }
        assert!(!m.push(1, 1, 1));
        assert_eq!(m.entries().len(), MAX_ENTRIES);
    }
}
