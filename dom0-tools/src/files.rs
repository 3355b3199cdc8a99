//! Where the toolstack reads files: the dom0 ramdisk.
//!
//! Paths on the command line (`create FILE`) are relative to the archive's root (dom0 has
//! no working directory). Paths in a configuration file (`kernel`, `ramdisk`) that start
//! with `/` are relative to the root too; other paths are looked up first in the
//! configuration file's directory, then from the root. So `kernel = "hello"` in
//! `/etc/xen/web.cfg` finds `/etc/xen/hello`, else `/hello`.

use alloc::string::String;

use crate::cpio::{self, Archive, LookupError};

/// A read-only file system.
pub trait Files {
    /// The contents of the regular file at `path` (a normalised path from the root).
    fn read(&self, path: &str) -> Result<&[u8], LookupError>;
}

impl Files for Archive<'_> {
    fn read(&self, path: &str) -> Result<&[u8], LookupError> {
        self.file(path)
    }
}

/// Finds `path`, named in the configuration file at `config_path`, by the rules above;
/// returns the normalised path found and the contents.
pub fn resolve<'f, F: Files + ?Sized>(
    files: &'f F,
    config_path: &str,
    path: &str,
) -> Result<(String, &'f [u8]), LookupError> {
    let from_root = cpio::normalize(path);
    if !path.starts_with('/') {
        let dir = cpio::normalize(cpio::parent(&cpio::normalize(config_path)));
        let beside = cpio::normalize(&alloc::format!("{dir}/{path}"));
        match files.read(&beside) {
            Ok(bytes) => return Ok((beside, bytes)),
            Err(LookupError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    files.read(&from_root).map(|bytes| (from_root, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::write_newc;

    #[test]
    fn config_relative_paths_then_root() {
        let bytes = write_newc(&[
            ("etc/xen/web.cfg", b"cfg"),
            ("etc/xen/hello", b"beside"),
            ("hello", b"root"),
            ("only-root", b"r"),
            ("boot/k", b"k"),
        ]);
        let a = Archive::parse(&bytes).unwrap();
        let r = |path| resolve(&a, "/etc/xen/web.cfg", path);
        assert_eq!(
            r("hello").unwrap(),
            ("etc/xen/hello".into(), &b"beside"[..])
        );
        assert_eq!(r("/hello").unwrap(), ("hello".into(), &b"root"[..]));
        assert_eq!(r("only-root").unwrap(), ("only-root".into(), &b"r"[..]));
        assert_eq!(r("../../boot/k").unwrap(), ("boot/k".into(), &b"k"[..]));
        assert_eq!(r("nope"), Err(LookupError::NotFound));
        assert_eq!(r("/etc"), Err(LookupError::IsDirectory));
        assert_eq!(resolve(&a, "top.cfg", "hello").unwrap().1, b"root");
    }
}
