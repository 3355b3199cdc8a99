//! How the victim publishes its facts, shared with the attacker (`guests/attack`, words
//! `domu victim`).
//!
//! A test script cannot pass facts known only at run time (machine frames, ports) from one
//! domain's console to another's command line: dom0's script is fixed before boot. So the
//! victim publishes them where every PV guest can read: the read-only M2P table. A domain may
//! set the M2P entry of any frame it owns to any value (`MMU_MACHPHYS_UPDATE`), so the victim
//! writes a tag into the entry of each of its fact pages: [`MAGIC`] in the high half, a
//! [`Kind`] and a value in the low half. The attacker scans the M2P for the magic. Pattern
//! pages carry their index; each other kind is carried by a page of its own whose tag holds the
//! fact (a frame number, a port, a grant reference), so the attacker learns the console and
//! xenstore frames, the L4, the grant-table frame, the ports and the grant reference without
//! being told.
#![cfg_attr(not(test), no_std)]

/// The high half of every tag: "VICT".
pub const MAGIC: u64 = 0x5649_4354;

/// Pages of the victim's fact area (all filled with the pattern, all tagged).
pub const PAGES: usize = 16;

/// What a tagged page says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A pattern page; the value is its index (page 0 is the one granted to dom0).
    Pattern = 1,
    /// The value is the machine frame of the victim's console ring.
    Console = 2,
    /// The value is the machine frame of its xenstore ring.
    Store = 3,
    /// The value is the machine frame of its running L4.
    L4 = 4,
    /// The value is the machine frame of its grant table.
    GrantFrame = 5,
    /// The value is the grant reference of pattern page 0, granted to dom0.
    GrantRef = 6,
    /// The value is a port unbound for dom0 (`EVTCHNOP_alloc_unbound`).
    UnboundPort = 7,
    /// The value is one end of a loopback interdomain channel.
    LoopPortA = 8,
    /// The value is the other end of the loopback channel.
    LoopPortB = 9,
    /// The value is an IPI port.
    IpiPort = 10,
}

impl Kind {
    /// Every kind, in the order of the fact pages after the pattern pages.
    pub const FACTS: [Kind; 9] = [
        Kind::Console,
        Kind::Store,
        Kind::L4,
        Kind::GrantFrame,
        Kind::GrantRef,
        Kind::UnboundPort,
        Kind::LoopPortA,
        Kind::LoopPortB,
        Kind::IpiPort,
    ];

    fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            1 => Kind::Pattern,
            2 => Kind::Console,
            3 => Kind::Store,
            4 => Kind::L4,
            5 => Kind::GrantFrame,
            6 => Kind::GrantRef,
            7 => Kind::UnboundPort,
            8 => Kind::LoopPortA,
            9 => Kind::LoopPortB,
            10 => Kind::IpiPort,
            _ => return None,
        })
    }
}

/// Pattern pages (the first of the fact area); the fact pages follow.
pub const PATTERN_PAGES: usize = PAGES - Kind::FACTS.len();

/// The M2P tag of a page saying `value` of `kind` (value below 2^24).
pub const fn tag(kind: Kind, value: u64) -> u64 {
    (MAGIC << 32) | ((kind as u64) << 24) | (value & 0xff_ffff)
}

/// The kind and value an M2P entry says, if it is a tag.
pub fn untag(entry: u64) -> Option<(Kind, u64)> {
    if entry >> 32 != MAGIC {
        return None;
    }
    Some((Kind::from_raw((entry >> 24) & 0xff)?, entry & 0xff_ffff))
}

/// Word `word` of pattern page `page`.
pub const fn pattern(page: usize, word: usize) -> u64 {
    0xa5c3_0000_0000_0000 ^ ((page as u64) << 40) ^ (word as u64).wrapping_mul(0x9e37_79b9)
}

/// The grant reference the victim uses (the first one after those reserved for the
/// toolstack).
pub const GRANT_REF: u32 = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for kind in Kind::FACTS {
            assert_eq!(untag(tag(kind, 0x1234)), Some((kind, 0x1234)));
        }
        assert_eq!(untag(tag(Kind::Pattern, 3)), Some((Kind::Pattern, 3)));
        assert_eq!(untag(0x1234), None);
        assert_eq!(untag(u64::MAX), None);
        assert_eq!(untag(MAGIC << 32), None);
    }
}
