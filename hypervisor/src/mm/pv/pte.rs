//! Page-table entry bits and the per-level rules for entries a 64-bit PV guest installs, after
//! Xen (`xen/arch/x86/mm.c`: `base_disallow_mask`, `l1_disallow_mask`; `xen/arch/x86/pv/mm.h`:
//! `adjust_guest_l*e`).
//!
//! Allowed in every present entry: present, writable, user, accessed, dirty, the software bits
//! 9–11 and 52–62, and NX. Refused (`-EINVAL`): PWT, PCD, PAT/PSE and global, except that
//! - L1 entries may set global, and may set the cache bits (PWT, PCD, PAT) only when the domain
//!   has I/O access; bit 62 is refused in L1 entries (Xen keeps it for grant mappings);
//! - L2 entries may set PSE (a 2 MiB superpage) only when the domain asked for superpages.
//!
//! Address bits above the frame table are not refused as such: they name a frame outside RAM,
//! which is I/O memory (`-EPERM` without I/O access, Xen's rule).
//!
//! A 64-bit PV kernel runs in ring 3 like its user processes, so every mapping must carry the
//! user bit. As Xen does, the hypervisor adds it when it installs an entry and writes the adjusted
//! value into the guest's table: an L1 entry without the user bit is a kernel mapping and gets
//! `USER | GUEST_KERNEL` (bit 52, software-available, marks it as the kernel's); an L1 entry the
//! guest made user-accessible gets `GLOBAL` too, so user mappings survive the switch between the
//! vCPU's kernel and user L4s. L2/L3 entries get `USER`, L4 entries `USER | ACCESSED`.

use super::{Level, PvMmError};
use crate::mm::Mfn;
use crate::mm::layout::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START, l4_slot};

/// Present.
pub const PRESENT: u64 = 1 << 0;
/// Writable.
pub const RW: u64 = 1 << 1;
/// User-accessible.
pub const USER: u64 = 1 << 2;
/// Write-through caching.
pub const PWT: u64 = 1 << 3;
/// Caching disabled.
pub const PCD: u64 = 1 << 4;
/// Accessed (set by the CPU).
pub const ACCESSED: u64 = 1 << 5;
/// Dirty (set by the CPU).
pub const DIRTY: u64 = 1 << 6;
/// In L2/L3 entries: a superpage. In L1 entries the same bit is PAT.
pub const PSE: u64 = 1 << 7;
/// PAT index bit of an L1 entry.
pub const PAT: u64 = 1 << 7;
/// Global (survives CR3 loads).
pub const GLOBAL: u64 = 1 << 8;
/// Software-available bits 9–11.
pub const AVAIL: u64 = 0x7 << 9;
/// Software-available bits 52–62.
pub const AVAIL_HIGH: u64 = 0x7ff << 52;
/// Bit 52: the hypervisor's mark of a guest-kernel mapping (Xen's `_PAGE_GUEST_KERNEL`).
pub const GUEST_KERNEL: u64 = 1 << 52;
/// Bit 62: reserved for grant-table mappings (Xen's `_PAGE_GNTTAB`), refused in L1 entries.
pub const GNTTAB: u64 = 1 << 62;
/// No-execute.
pub const NX: u64 = 1 << 63;
/// Physical address bits 12–51.
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Every bit that is not address.
pub const FLAGS_MASK: u64 = !ADDR_MASK;

/// Flags any present entry may carry (Xen's complement of `base_disallow_mask`).
const BASE_ALLOWED: u64 = PRESENT | RW | USER | ACCESSED | DIRTY | AVAIL | AVAIL_HIGH | NX;
/// The cache-attribute bits of an L1 entry.
const CACHE_ATTRS: u64 = PWT | PCD | PAT;
/// Flags a guest may change in a present entry without the hypervisor re-checking what it maps
/// (Xen's `FASTPATH_FLAG_WHITELIST`).
const FASTPATH_WHITELIST: u64 = NX | AVAIL_HIGH | AVAIL | GLOBAL | DIRTY | ACCESSED | USER;

/// Entries in a 2 MiB superpage.
pub const SUPERPAGE_FRAMES: u64 = 512;

/// What a domain is allowed beyond the base rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Rules {
    /// PSE in L2 entries.
    pub superpages: bool,
    /// Cache attributes in L1 entries, and mappings of I/O memory.
    pub iomem: bool,
}

/// The frame an entry references.
pub const fn entry_mfn(entry: u64) -> Mfn {
    Mfn((entry & ADDR_MASK) >> 12)
}

/// Whether `entry` is present.
pub const fn is_present(entry: u64) -> bool {
    entry & PRESENT != 0
}

/// Refuses a present entry of `level` whose flags the rules do not allow.
pub(super) fn check_flags(level: Level, entry: u64, rules: Rules) -> Result<(), PvMmError> {
    let allowed = match level {
        Level::L1 => {
            let cache = if rules.iomem { CACHE_ATTRS } else { 0 };
            (BASE_ALLOWED & !GNTTAB) | GLOBAL | cache
        }
        Level::L2 if rules.superpages => BASE_ALLOWED | PSE,
        Level::L2 | Level::L3 | Level::L4 => BASE_ALLOWED,
    };
    let bad = entry & FLAGS_MASK & !allowed;
    if bad == 0 {
        Ok(())
    } else {
        Err(PvMmError::BadFlags {
            level: level.number(),
            flags: bad,
        })
    }
}

/// Whether a present L2 entry maps a superpage.
pub const fn is_superpage(level: Level, entry: u64) -> bool {
    matches!(level, Level::L2) && entry & PSE != 0
}

/// The value the hypervisor installs for a present guest entry (see the module comment).
pub const fn adjust(level: Level, entry: u64) -> u64 {
    if !is_present(entry) {
        return entry;
    }
    match level {
        Level::L1 => {
            let mut e = entry;
            if e & USER == 0 {
                e |= USER | GUEST_KERNEL;
            }
            if e & GUEST_KERNEL == 0 {
                e |= GLOBAL | USER;
            }
            e
        }
        Level::L2 | Level::L3 => entry | USER,
        Level::L4 => entry | USER | ACCESSED,
    }
}

/// Whether `new` differs from the present entry `old` only in flags that need no new check.
pub const fn only_whitelisted_change(old: u64, new: u64) -> bool {
    is_present(old) && (old ^ new) & !FASTPATH_WHITELIST == 0
}

/// First L4 slot that belongs to the hypervisor.
pub const HYPERVISOR_SLOT_FIRST: usize = l4_slot(HYPERVISOR_VIRT_START);
/// Last L4 slot that belongs to the hypervisor.
pub const HYPERVISOR_SLOT_LAST: usize = l4_slot(HYPERVISOR_VIRT_END - 1);

/// Whether an entry in `slot` of a table of `level` is the guest's (not the hypervisor's).
pub const fn is_guest_slot(level: Level, slot: usize) -> bool {
    !matches!(level, Level::L4) || slot < HYPERVISOR_SLOT_FIRST || slot > HYPERVISOR_SLOT_LAST
}

/// Whether a guest may name `va` (Xen's `__addr_ok`): canonical and outside the hypervisor range.
pub const fn guest_addr_ok(va: u64) -> bool {
    va < (1 << 47) || va >= HYPERVISOR_VIRT_END
}

/// Checks one segment descriptor of a GDT/LDT page for a 64-bit PV guest and returns the value to
/// install, or `None` if the guest may not have it.
///
/// Not-present descriptors are harmless. Code and data descriptors are allowed, with a DPL below 3
/// raised to 3 (the guest kernel runs in ring 3; Xen's `__fixup_guest_selector`). System
/// descriptors (TSS, LDT, gates) are refused: Xen also accepts call gates after checking their
/// target, which we do not offer.
pub const fn check_descriptor(desc: u64) -> Option<u64> {
    const DESC_PRESENT: u64 = 1 << 47;
    const DESC_CODE_DATA: u64 = 1 << 44;
    const DESC_DPL: u64 = 3 << 45;
    if desc & DESC_PRESENT == 0 {
        Some(desc)
    } else if desc & DESC_CODE_DATA == 0 {
        None
    } else {
        Some(desc | DESC_DPL)
    }
}

const _: () = assert!(HYPERVISOR_SLOT_FIRST == 256 && HYPERVISOR_SLOT_LAST == 271);
const _: () = assert!(AVAIL_HIGH & GUEST_KERNEL != 0 && AVAIL_HIGH & GNTTAB != 0);
