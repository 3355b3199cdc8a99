//! Watches: which changes a watch sees, and the `WATCH_EVENT` messages that tell it.
//!
//! A change at path P fires every watch on P or above it, with P as the event's path; the
//! removal of a subtree also fires the watches below its root, each with its own path
//! (xenstore.txt: the event path is always at or below the watch's). A watch fires only
//! for a domain that may read the changed node or its parent, before or after the
//! change. The special events `@introduceDomain` and `@releaseDomain` reach only dom0;
//! every watch fires once when it is set.

use alloc::string::String;
use alloc::vec::Vec;

use guest_abi::DomId;

use super::path::{self, is_child};
use super::perms::Perms;

/// A watch one domain set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    /// The watched path (resolved) or special name.
    pub path: String,
    /// The token the domain gave.
    pub token: String,
    /// Whether the domain named the path relative to its home (events are then relative
    /// too).
    pub relative: bool,
}

impl Watch {
    /// Bytes it is charged.
    pub fn cost(&self) -> usize {
        self.path.len() + self.token.len()
    }
}

/// One change, for watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The node changed (or the special event).
    pub path: String,
    /// A subtree was removed at `path`.
    pub subtree: bool,
    /// The node's permissions before the change (a watcher that could read it then is
    /// told, even if it cannot now).
    pub perms: Option<Perms>,
}

impl Change {
    /// A node created, written or given new permissions.
    pub fn node(path: &str, perms: Perms) -> Self {
        Self {
            path: String::from(path),
            subtree: false,
            perms: Some(perms),
        }
    }

    /// A subtree removed.
    pub fn subtree(path: &str, perms: Perms) -> Self {
        Self {
            path: String::from(path),
            subtree: true,
            perms: Some(perms),
        }
    }

    /// A special event (`@introduceDomain`, `@releaseDomain`).
    pub fn special(name: &str) -> Self {
        Self {
            path: String::from(name),
            subtree: false,
            perms: None,
        }
    }
}

/// The path a change fires `watch` with, if it fires it.
pub fn event_path(watch: &Watch, change: &Change) -> Option<String> {
    if path::is_special(&change.path) || path::is_special(&watch.path) {
        return (watch.path == change.path).then(|| watch.path.clone());
    }
    if is_child(&change.path, &watch.path) {
        Some(change.path.clone())
    } else if change.subtree && is_child(&watch.path, &change.path) {
        Some(watch.path.clone())
    } else {
        None
    }
}

/// The `WATCH_EVENT` message for `dom`'s watch: header (type 15, ids 0) and
/// `path\0token\0`.
pub fn event_message(dom: DomId, watch: &Watch, path: &str) -> Vec<u8> {
    let shown = path::as_named(dom, path, watch.relative);
    let mut payload = Vec::with_capacity(shown.len() + watch.token.len() + 2);
    payload.extend_from_slice(shown.as_bytes());
    payload.push(0);
    payload.extend_from_slice(watch.token.as_bytes());
    payload.push(0);
    super::wire::message(super::wire::msg::WATCH_EVENT, 0, 0, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::perms::Access;

    fn watch(path: &str) -> Watch {
        Watch {
            path: path.into(),
            token: "t".into(),
            relative: false,
        }
    }

    #[test]
    fn changes_fire_watches_at_or_above_them() {
        let perms = Perms::new(DomId(0), Access::None);
        let c = Change::node("/a/b/c", perms.clone());
        assert_eq!(event_path(&watch("/a/b"), &c).as_deref(), Some("/a/b/c"));
        assert_eq!(event_path(&watch("/a/b/c"), &c).as_deref(), Some("/a/b/c"));
        assert_eq!(event_path(&watch("/"), &c).as_deref(), Some("/a/b/c"));
        assert_eq!(event_path(&watch("/a/b/c/d"), &c), None);
        assert_eq!(event_path(&watch("/a/bc"), &c), None);
        let rm = Change::subtree("/a", perms);
        assert_eq!(
            event_path(&watch("/a/b/c/d"), &rm).as_deref(),
            Some("/a/b/c/d")
        );
        let special = Change::special("@releaseDomain");
        assert_eq!(event_path(&watch("/"), &special), None);
        assert_eq!(
            event_path(&watch("@releaseDomain"), &special).as_deref(),
            Some("@releaseDomain")
        );
    }

    #[test]
    fn relative_watches_get_relative_paths() {
        let w = Watch {
            path: "/local/domain/4/control/shutdown".into(),
            token: "tok".into(),
            relative: true,
        };
        let m = event_message(DomId(4), &w, "/local/domain/4/control/shutdown");
        assert_eq!(&m[16..], b"control/shutdown\0tok\0");
        assert_eq!(u32::from_le_bytes(m[12..16].try_into().unwrap()), 21);
    }
}
