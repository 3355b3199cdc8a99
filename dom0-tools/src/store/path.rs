//! Store paths: which strings are paths, how a domain's relative path is resolved, and
//! the parent/child relation watches use (`docs/misc/xenstore.txt`).
//!
//! A path is `/` or `/`-separated names of the characters `A-Z a-z 0-9 - _ @`, with no
//! empty name (no `//`, no trailing `/`). An absolute path is at most
//! [`ABS_PATH_MAX`] bytes. A path without the leading `/` is relative to the caller's
//! home, `/local/domain/N`, and is at most [`REL_PATH_MAX`] bytes as sent. Watches may also
//! name a special event, `@` followed by any name ([`INTRODUCE_DOMAIN`],
//! [`RELEASE_DOMAIN`]).

use alloc::string::String;
use core::fmt;

use guest_abi::DomId;

/// `XENSTORE_ABS_PATH_MAX`.
pub const ABS_PATH_MAX: usize = guest_abi::xenstore::XENSTORE_ABS_PATH_MAX as usize;
/// `XENSTORE_REL_PATH_MAX`.
pub const REL_PATH_MAX: usize = guest_abi::xenstore::XENSTORE_REL_PATH_MAX as usize;
/// The special watch fired when a domain is introduced.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// The special watch fired when a domain goes (released or destroyed).
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

/// Why a string is not a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// Empty, a character outside the allowed set, `//`, or a trailing `/`.
    Invalid,
    /// Longer than [`ABS_PATH_MAX`] (absolute) or [`REL_PATH_MAX`] (relative).
    TooLong,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Invalid => "not a valid store path",
            Self::TooLong => "store path too long",
        })
    }
}

impl core::error::Error for PathError {}

/// `/local/domain/N`: a domain's home, against which its relative paths resolve.
pub fn home(dom: DomId) -> String {
    alloc::format!("/local/domain/{}", dom.0)
}

/// Whether `c` may appear in a path.
fn allowed(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'/' | b'_' | b'@')
}

/// Whether `path` (absolute) is well formed.
fn well_formed(path: &str) -> bool {
    let b = path.as_bytes();
    if path == "/" {
        return true;
    }
    b.first() == Some(&b'/')
        && b.last() != Some(&b'/')
        && !path.contains("//")
        && b.iter().all(|&c| allowed(c))
}

/// Resolves a path a domain sent: absolute as it is, relative against `dom`'s home.
pub fn resolve(dom: DomId, raw: &str) -> Result<String, PathError> {
    if raw.is_empty() {
        return Err(PathError::Invalid);
    }
    let path = if raw.starts_with('/') {
        String::from(raw)
    } else {
        if raw.len() > REL_PATH_MAX {
            return Err(PathError::TooLong);
        }
        alloc::format!("{}/{raw}", home(dom))
    };
    if path.len() > ABS_PATH_MAX {
        return Err(PathError::TooLong);
    }
    if !well_formed(&path) {
        return Err(PathError::Invalid);
    }
    Ok(path)
}

/// Whether `raw` names a special watch (`@...`).
pub fn is_special(raw: &str) -> bool {
    raw.starts_with('@')
}

/// A watch's path: a special name (`@` and allowed characters) as it is, or a resolved
/// path.
pub fn resolve_watch(dom: DomId, raw: &str) -> Result<String, PathError> {
    if is_special(raw) {
        if raw.len() > ABS_PATH_MAX {
            return Err(PathError::TooLong);
        }
        if raw.len() < 2 || !raw.bytes().all(|c| allowed(c) && c != b'/') {
            return Err(PathError::Invalid);
        }
        return Ok(String::from(raw));
    }
    resolve(dom, raw)
}

/// The parent of an absolute path other than `/`.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => path.get(..i),
        None => None,
    }
}

/// The last name of an absolute path (empty for `/`).
pub fn leaf(path: &str) -> &str {
    path.rfind('/')
        .and_then(|i| path.get(i + 1..))
        .unwrap_or("")
}

/// `parent/name`.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        alloc::format!("/{name}")
    } else {
        alloc::format!("{parent}/{name}")
    }
}

/// Whether `child` is `parent` or below it (xenstore.txt's "child"; everything is below
/// `/`).
pub fn is_child(child: &str, parent: &str) -> bool {
    if parent == "/" {
        return child.starts_with('/');
    }
    match child.strip_prefix(parent) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// `path` as `dom` named it: relative to its home if it named it relatively.
pub fn as_named(dom: DomId, path: &str, relative: bool) -> String {
    if !relative {
        return String::from(path);
    }
    let home = home(dom);
    match path.strip_prefix(home.as_str()) {
        Some(rest) => String::from(rest.strip_prefix('/').unwrap_or(rest)),
        None => String::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_as_xenstore_txt_says() {
        let d = DomId(3);
        assert_eq!(resolve(d, "/a/b").unwrap(), "/a/b");
        assert_eq!(resolve(d, "x/y").unwrap(), "/local/domain/3/x/y");
        assert_eq!(resolve(d, "/").unwrap(), "/");
        for bad in ["", "/a//b", "/a/", "a b", "/a/\u{e9}", "/a.b", "x/"] {
            assert_eq!(resolve(d, bad), Err(PathError::Invalid), "{bad:?}");
        }
        let long = "a".repeat(REL_PATH_MAX + 1);
        assert_eq!(resolve(d, &long), Err(PathError::TooLong));
        let abs = alloc::format!("/{}", "a".repeat(ABS_PATH_MAX));
        assert_eq!(resolve(d, &abs), Err(PathError::TooLong));
        assert_eq!(
            resolve_watch(d, "@releaseDomain").unwrap(),
            "@releaseDomain"
        );
        assert_eq!(resolve_watch(d, "@"), Err(PathError::Invalid));
        assert_eq!(resolve_watch(d, "@a/b"), Err(PathError::Invalid));
    }

    #[test]
    fn parents_children_and_names() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(leaf("/a/bc"), "bc");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_child("/a/b", "/a"));
        assert!(is_child("/a", "/a"));
        assert!(is_child("/a", "/"));
        assert!(!is_child("/ab", "/a"));
        assert!(!is_child("@releaseDomain", "/"));
        assert_eq!(as_named(DomId(3), "/local/domain/3/x", true), "x");
        assert_eq!(
            as_named(DomId(3), "/local/domain/3/x", false),
            "/local/domain/3/x"
        );
    }
}
