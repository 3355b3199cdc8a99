//! Node permissions, as xenstored keeps them: a list whose first entry names the node's
//! owner and, with its letter, what every domain not listed may do; each later entry
//! gives one domain its own access. The owner and dom0 may do everything. Letters:
//! `n` none, `r` read, `w` write, `b` both (`GET_PERMS` / `SET_PERMS` strings such as
//! `n0`, `r5`).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use guest_abi::DomId;

/// What a permission entry grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// `n`: nothing.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    fn letter(self) -> char {
        match self {
            Self::None => 'n',
            Self::Read => 'r',
            Self::Write => 'w',
            Self::Both => 'b',
        }
    }

    fn from_letter(c: u8) -> Option<Self> {
        Some(match c {
            b'n' => Self::None,
            b'r' => Self::Read,
            b'w' => Self::Write,
            b'b' => Self::Both,
            _ => return None,
        })
    }

    /// Whether it allows reading.
    pub fn can_read(self) -> bool {
        matches!(self, Self::Read | Self::Both)
    }

    /// Whether it allows writing.
    pub fn can_write(self) -> bool {
        matches!(self, Self::Write | Self::Both)
    }
}

/// A list of permissions that is not a list of permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PermsError;

impl fmt::Display for PermsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a list of permissions (n|r|w|b followed by a domain id)")
    }
}

impl core::error::Error for PermsError {}

/// One entry: a domain and its access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The domain.
    pub dom: DomId,
    /// What it may do.
    pub access: Access,
}

/// A node's permissions: never empty; the first entry is the owner's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Perms(Vec<Entry>);

impl Perms {
    /// Owned by `owner`; every other domain gets `others`.
    pub fn new(owner: DomId, others: Access) -> Self {
        Self(alloc::vec![Entry {
            dom: owner,
            access: others
        }])
    }

    /// With `dom` given `access` of its own.
    pub fn with(mut self, dom: DomId, access: Access) -> Self {
        self.0.push(Entry { dom, access });
        self
    }

    /// The owner.
    pub fn owner(&self) -> DomId {
        self.0.first().map_or(DomId(0), |e| e.dom)
    }

    /// Sets the owner (keeping what others get).
    pub fn set_owner(&mut self, owner: DomId) {
        if let Some(first) = self.0.first_mut() {
            first.dom = owner;
        }
    }

    /// The entries, owner first.
    pub fn entries(&self) -> &[Entry] {
        &self.0
    }

    /// What `dom` may do (dom0 and the owner everything).
    pub fn access(&self, dom: DomId) -> Access {
        if dom.0 == 0 || dom == self.owner() {
            return Access::Both;
        }
        let listed = self.0.iter().skip(1).find(|e| e.dom == dom);
        listed.or(self.0.first()).map_or(Access::None, |e| e.access)
    }

    /// Parses `SET_PERMS` strings (one or more, each NUL-terminated on the wire).
    pub fn parse<'a>(words: impl IntoIterator<Item = &'a [u8]>) -> Result<Self, PermsError> {
        let mut list = Vec::new();
        for w in words {
            let (&letter, digits) = w.split_first().ok_or(PermsError)?;
            let access = Access::from_letter(letter).ok_or(PermsError)?;
            let digits = core::str::from_utf8(digits).map_err(|_| PermsError)?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PermsError);
            }
            let dom = digits.parse::<u16>().map_err(|_| PermsError)?;
            list.push(Entry {
                dom: DomId(dom),
                access,
            });
        }
        if list.is_empty() {
            return Err(PermsError);
        }
        Ok(Self(list))
    }

    /// Each entry as its string (`b0`, `r5`).
    pub fn strings(&self) -> impl Iterator<Item = String> + '_ {
        self.0
            .iter()
            .map(|e| alloc::format!("{}{}", e.access.letter(), e.dom.0))
    }

    /// Bytes they take when accounted (the strings with their NULs).
    pub fn cost(&self) -> usize {
        self.0.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_dom0_and_listed_domains() {
        let p = Perms::new(DomId(3), Access::None).with(DomId(5), Access::Read);
        assert_eq!(p.access(DomId(3)), Access::Both);
        assert_eq!(p.access(DomId(0)), Access::Both);
        assert_eq!(p.access(DomId(5)), Access::Read);
        assert_eq!(p.access(DomId(6)), Access::None);
        let open = Perms::new(DomId(0), Access::Read);
        assert_eq!(open.access(DomId(9)), Access::Read);
    }

    #[test]
    fn strings_round_trip_and_bad_ones_are_refused() {
        let words: [&[u8]; 3] = [b"n0", b"r3", b"b12"];
        let p = Perms::parse(words).unwrap();
        let s: Vec<String> = p.strings().collect();
        assert_eq!(s, ["n0", "r3", "b12"]);
        for bad in [&b""[..], b"x1", b"r", b"r-1", b"r70000", b"r1a"] {
            assert_eq!(Perms::parse([bad]), Err(PermsError), "{bad:?}");
        }
        assert_eq!(Perms::parse(core::iter::empty()), Err(PermsError));
    }
}
