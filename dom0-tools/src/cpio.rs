//! Reading the dom0 ramdisk: a `newc` cpio archive (the format of Linux initramfs, written
//! by `cpio -H newc -o`).
//!
//! Each member is a 110-byte ASCII header (`070701`, or `070702` with a checksum, then 13
//! eight-digit hex fields: ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
//! rdevmajor, rdevminor, namesize, check), the NUL-terminated name, padding to 4 bytes,
//! the data, padding to 4 bytes. `TRAILER!!!` ends an archive; NUL padding and further
//! archives may follow, as the kernel's initramfs unpacker allows. Hard links store their
//! data with the last link only; the others are resolved to it.
//!
//! [`Archive::parse`] checks the whole archive once and never panics; lookups then
//! normalise paths (`/a/./b/../c` is `a/c`) and follow symbolic links.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

const HEADER_LEN: usize = 110;
const TRAILER: &str = "TRAILER!!!";
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
/// Symbolic links followed in one lookup before giving up.
pub const MAX_SYMLINKS: usize = 8;
/// Longest member name accepted (Linux's `PATH_MAX`).
pub const MAX_NAME_LEN: usize = 4096;

/// Why an archive was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpioError {
    /// The archive ends inside the member that starts at `offset`.
    Truncated {
        /// Offset of the member's header.
        offset: usize,
    },
    /// No `070701`/`070702` magic at `offset`.
    BadMagic {
        /// Where a header should start.
        offset: usize,
    },
    /// A header field is not eight hex digits.
    BadField {
        /// Offset of the header.
        offset: usize,
        /// The field's name.
        field: &'static str,
    },
    /// The member name is empty, too long, not NUL-terminated or not UTF-8.
    BadName {
        /// Offset of the header.
        offset: usize,
    },
    /// The data ends without a `TRAILER!!!` member.
    MissingTrailer,
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { offset } => {
                write!(f, "cpio archive truncated in the member at offset {offset}")
            }
            Self::BadMagic { offset } => {
                write!(f, "not a newc cpio header at offset {offset}")
            }
            Self::BadField { offset, field } => {
                write!(f, "bad {field} field in the cpio header at offset {offset}")
            }
            Self::BadName { offset } => {
                write!(f, "bad member name in the cpio header at offset {offset}")
            }
            Self::MissingTrailer => write!(f, "cpio archive has no TRAILER!!! member"),
        }
    }
}

impl core::error::Error for CpioError {}

/// Why a path could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// Nothing at that path.
    NotFound,
    /// The path is a directory.
    IsDirectory,
    /// The path is a device, FIFO or socket.
    NotAFile,
    /// More than [`MAX_SYMLINKS`] symbolic links.
    SymlinkLoop,
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "no such file in the dom0 archive",
            Self::IsDirectory => "is a directory",
            Self::NotAFile => "is not a regular file",
            Self::SymlinkLoop => "too many levels of symbolic links",
        })
    }
}

impl core::error::Error for LookupError {}

/// What a member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link; its data is the target.
    Symlink,
    /// A device node, FIFO or socket.
    Other,
}

/// One member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Its kind.
    pub kind: Kind,
    /// Its mode bits (type and permissions).
    pub mode: u32,
    /// Its contents.
    pub data: &'a [u8],
}

/// A parsed archive: normalised path to member. Later members replace earlier ones with
/// the same path, as when the kernel unpacks them.
#[derive(Clone, Debug, Default)]
pub struct Archive<'a> {
    entries: BTreeMap<String, Entry<'a>>,
}

/// `path` with `.`, `..` and repeated slashes resolved, without a leading slash; the root
/// is the empty string. `..` at the root stays at the root.
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// The directory part of a normalised path (`a/b/c` gives `a/b`, `c` gives the root).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn hex_field(header: &[u8], index: usize, offset: usize) -> Result<u32, CpioError> {
    const NAMES: [&str; 13] = [
        "ino",
        "mode",
        "uid",
        "gid",
        "nlink",
        "mtime",
        "filesize",
        "devmajor",
        "devminor",
        "rdevmajor",
        "rdevminor",
        "namesize",
        "check",
    ];
    let field = NAMES.get(index).copied().unwrap_or("unknown");
    let bad = CpioError::BadField { offset, field };
    let start = 6 + index * 8;
    let digits = header.get(start..start + 8).ok_or(bad.clone())?;
    let text = core::str::from_utf8(digits).map_err(|_| bad.clone())?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad);
    }
    u32::from_str_radix(text, 16).map_err(|_| bad)
}

/// A file's identity for hard links: (devmajor, devminor) and inode.
type InodeKey = ((u32, u32), u32);

/// One member as read from the archive.
struct Raw<'a> {
    name: &'a str,
    ino: u32,
    dev: (u32, u32),
    nlink: u32,
    mode: u32,
    data: &'a [u8],
    next: usize,
}

fn read_member(bytes: &[u8], offset: usize) -> Result<Raw<'_>, CpioError> {
    let truncated = CpioError::Truncated { offset };
    let rest = bytes.get(offset..).unwrap_or(&[]);
    let magic = &rest[..rest.len().min(6)];
    if !b"070701".starts_with(magic) && !b"070702".starts_with(magic) {
        return Err(CpioError::BadMagic { offset });
    }
    let header = bytes
        .get(offset..offset + HEADER_LEN)
        .ok_or(truncated.clone())?;
    let field = |i| hex_field(header, i, offset);
    let (ino, mode, nlink, filesize) = (field(0)?, field(1)?, field(4)?, field(6)?);
    let dev = (field(7)?, field(8)?);
    let namesize = field(11)? as usize;
    if !(2..=MAX_NAME_LEN + 1).contains(&namesize) {
        return Err(CpioError::BadName { offset });
    }
    let name_start = offset + HEADER_LEN;
    let raw_name = bytes
        .get(name_start..name_start + namesize)
        .ok_or(truncated.clone())?;
    let (last, name) = raw_name.split_last().ok_or(CpioError::BadName { offset })?;
    if *last != 0 || name.contains(&0) {
        return Err(CpioError::BadName { offset });
    }
    let name = core::str::from_utf8(name).map_err(|_| CpioError::BadName { offset })?;
    let data_start = (name_start + namesize).next_multiple_of(4);
    let data_end = data_start
        .checked_add(filesize as usize)
        .ok_or(truncated.clone())?;
    let data = bytes.get(data_start..data_end).ok_or(truncated)?;
    Ok(Raw {
        name,
        ino,
        dev,
        nlink,
        mode,
        data,
        next: data_end.next_multiple_of(4),
    })
}

impl<'a> Archive<'a> {
    /// Parses and checks a whole archive.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CpioError> {
        let mut archive = Self::default();
        // Hard links: the data of (dev, ino), and the paths still waiting for it.
        let mut link_data: BTreeMap<InodeKey, &'a [u8]> = BTreeMap::new();
        let mut link_waiting: Vec<(String, InodeKey)> = Vec::new();
        let mut offset = 0;
        let mut in_archive = false;
        loop {
            if !in_archive {
                // Between archives: NUL padding, then another archive or the end.
                while bytes.get(offset) == Some(&0) {
                    offset += 1;
                }
                if offset >= bytes.len() {
                    break;
                }
                in_archive = true;
            }
            if offset >= bytes.len() {
                return Err(CpioError::MissingTrailer);
            }
            let m = read_member(bytes, offset)?;
            offset = m.next;
            if m.name == TRAILER {
                in_archive = false;
                continue;
            }
            let kind = match m.mode & S_IFMT {
                S_IFREG => Kind::File,
                S_IFDIR => Kind::Dir,
                S_IFLNK => Kind::Symlink,
                _ => Kind::Other,
            };
            let path = normalize(m.name);
            if kind == Kind::File && m.nlink > 1 {
                let key = (m.dev, m.ino);
                if m.data.is_empty() {
                    link_waiting.push((path.clone(), key));
                } else {
                    link_data.insert(key, m.data);
                }
            }
            archive.entries.insert(
                path,
                Entry {
                    kind,
                    mode: m.mode,
                    data: m.data,
                },
            );
        }
        for (path, key) in link_waiting {
            let entry = archive.entries.get_mut(&path).filter(|e| e.data.is_empty());
            if let (Some(data), Some(entry)) = (link_data.get(&key), entry) {
                entry.data = data;
            }
        }
        Ok(archive)
    }

    /// Number of members (the root `.` counts if the archive has it).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the archive has no members.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every member, by normalised path.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry<'a>)> {
        self.entries.iter().map(|(p, e)| (p.as_str(), e))
    }

    /// The member at `path` with symbolic links followed (also the last one).
    pub fn lookup(&self, path: &str) -> Result<Entry<'a>, LookupError> {
        let mut path = normalize(path);
        let mut links = 0;
        'restart: loop {
            let mut done = String::new();
            let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            for (i, part) in parts.iter().enumerate() {
                let here = if done.is_empty() {
                    part.to_string()
                } else {
                    alloc::format!("{done}/{part}")
                };
                let entry = self.entries.get(&here);
                if let Some(e) = entry.filter(|e| e.kind == Kind::Symlink) {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(LookupError::SymlinkLoop);
                    }
                    let target = core::str::from_utf8(e.data).map_err(|_| LookupError::NotFound)?;
                    let rest = parts[i + 1..].join("/");
                    let base = if target.starts_with('/') {
                        ""
                    } else {
                        done.as_str()
                    };
                    path = normalize(&alloc::format!("{base}/{target}/{rest}"));
                    continue 'restart;
                }
                // A directory the archive does not list explicitly is fine.
                if entry.is_none() && i + 1 < parts.len() && !self.has_children(&here) {
                    return Err(LookupError::NotFound);
                }
                done = here;
            }
            return match self.entries.get(&done) {
                Some(e) => Ok(*e),
                None if done.is_empty() || self.has_children(&done) => {
                    Err(LookupError::IsDirectory)
                }
                None => Err(LookupError::NotFound),
            };
        }
    }

    /// Whether some member lies below `dir`.
    fn has_children(&self, dir: &str) -> bool {
        let prefix = alloc::format!("{dir}/");
        self.entries
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// The contents of the regular file at `path`.
    pub fn file(&self, path: &str) -> Result<&'a [u8], LookupError> {
        let e = self.lookup(path)?;
        match e.kind {
            Kind::File => Ok(e.data),
            Kind::Dir => Err(LookupError::IsDirectory),
            Kind::Symlink | Kind::Other => Err(LookupError::NotAFile),
        }
    }
}

/// Appends one member to a newc archive being written.
fn put_member(out: &mut Vec<u8>, name: &str, mode: u32, nlink: u32, ino: u32, data: &[u8]) {
    let (size, namesize) = (data.len() as u32, name.len() as u32 + 1);
    let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, namesize, 0];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(alloc::format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    for part in [&[][..], data] {
        out.extend_from_slice(part);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
}

/// Writes a newc archive of regular files (and directories for names ending in `/`):
/// for tests and tools that build a dom0 ramdisk.
pub fn write_newc(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (name, data)) in members.iter().enumerate() {
        let ino = i as u32 + 1;
        match name.strip_suffix('/') {
            Some(dir) => put_member(&mut out, dir, S_IFDIR | 0o755, 2, ino, &[]),
            None => put_member(&mut out, name, S_IFREG | 0o644, 1, ino, data),
        }
    }
    put_member(&mut out, TRAILER, 0, 1, 0, &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    /// A member with explicit fields, for the cases `write_newc` does not make.
    fn member(name: &str, mode: u32, nlink: u32, ino: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_member(&mut out, name, mode, nlink, ino, data);
        out
    }

    fn trailer() -> Vec<u8> {
        member(TRAILER, 0, 1, 0, &[])
    }

    #[test]
    fn reads_files_and_directories() {
        let bytes = write_newc(&[
            ("etc/", b""),
            ("etc/web.cfg", b"name='web'\n"),
            ("./boot/hello", b"\x7fELF"),
        ]);
        let a = Archive::parse(&bytes).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a.file("/etc/web.cfg").unwrap(), b"name='web'\n");
        assert_eq!(a.file("etc//./web.cfg").unwrap(), b"name='web'\n");
        assert_eq!(a.file("/boot/../boot/hello").unwrap(), b"\x7fELF");
        assert_eq!(a.file("etc"), Err(LookupError::IsDirectory));
        assert_eq!(a.file("/"), Err(LookupError::IsDirectory));
        assert_eq!(a.file("nope"), Err(LookupError::NotFound));
        assert_eq!(a.file("nope/x"), Err(LookupError::NotFound));
    }

    #[test]
    fn follows_symlinks_and_hard_links() {
        let mut bytes = member("boot", S_IFDIR | 0o755, 2, 1, &[]);
        bytes.extend(member("boot/vmlinuz-1", S_IFREG | 0o644, 1, 2, b"kernel"));
        bytes.extend(member("boot/vmlinuz", S_IFLNK | 0o777, 1, 3, b"vmlinuz-1"));
        bytes.extend(member("kernel", S_IFLNK | 0o777, 1, 4, b"/boot/vmlinuz"));
        bytes.extend(member("k", S_IFLNK | 0o777, 1, 5, b"boot"));
        bytes.extend(member("loop", S_IFLNK | 0o777, 1, 6, b"loop"));
        bytes.extend(member("a", S_IFREG | 0o644, 2, 7, b""));
        bytes.extend(member("b", S_IFREG | 0o644, 2, 7, b"shared"));
        bytes.extend(member("dev/console", 0o020_600, 1, 8, b""));
        bytes.extend(trailer());
        let a = Archive::parse(&bytes).unwrap();
        assert_eq!(a.file("boot/vmlinuz").unwrap(), b"kernel");
        assert_eq!(a.file("/kernel").unwrap(), b"kernel");
        assert_eq!(a.file("k/vmlinuz-1").unwrap(), b"kernel");
        assert_eq!(a.file("loop"), Err(LookupError::SymlinkLoop));
        assert_eq!(a.file("a").unwrap(), b"shared");
        assert_eq!(a.file("dev/console"), Err(LookupError::NotAFile));
    }

    #[test]
    fn concatenated_archives_and_padding() {
        let mut bytes = write_newc(&[("a", b"1")]);
        bytes.extend([0u8; 512]);
        bytes.extend(write_newc(&[("a", b"2"), ("b", b"3")]));
        bytes.extend([0u8; 3]);
        let a = Archive::parse(&bytes).unwrap();
        assert_eq!(a.file("a").unwrap(), b"2");
        assert_eq!(a.file("b").unwrap(), b"3");
        assert!(Archive::parse(&[]).unwrap().is_empty());
    }

    #[test]
    fn refuses_malformed_archives() {
        let good = write_newc(&[("a", b"hello")]);
        let cases: Vec<(Vec<u8>, CpioError)> = vec![
            (b"070707".to_vec(), CpioError::BadMagic { offset: 0 }),
            (good[..50].to_vec(), CpioError::Truncated { offset: 0 }),
            (
                good[..HEADER_LEN + 4].to_vec(),
                CpioError::Truncated { offset: 0 },
            ),
            (good[..120].to_vec(), CpioError::MissingTrailer),
            (
                {
                    let mut b = good.clone();
                    b[6 + 8] = b'g'; // mode
                    b
                },
                CpioError::BadField {
                    offset: 0,
                    field: "mode",
                },
            ),
            (
                member("", S_IFREG, 1, 1, b""),
                CpioError::BadName { offset: 0 },
            ),
            (
                {
                    let mut b = member("ab", S_IFREG, 1, 1, b"");
                    b[HEADER_LEN + 2] = b'x'; // no NUL
                    b
                },
                CpioError::BadName { offset: 0 },
            ),
            (
                {
                    let mut b = member("ab", S_IFREG, 1, 1, b"");
                    b[HEADER_LEN] = 0xff;
                    b
                },
                CpioError::BadName { offset: 0 },
            ),
            (
                {
                    let mut b = write_newc(&[("a", b"x")]);
                    b.extend(b"junk");
                    b
                },
                CpioError::BadMagic {
                    offset: write_newc(&[("a", b"x")]).len(),
                },
            ),
        ];
        for (bytes, want) in cases {
            let got = Archive::parse(&bytes).unwrap_err();
            assert_eq!(got, want);
            assert!(!got.to_string().contains('\n'));
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Archive::parse(&bytes);
        }

        #[test]
        fn never_panics_on_damaged_archives(
            cut in 0usize..400, flip in 0usize..400, value in any::<u8>(),
        ) {
            let mut bytes = write_newc(&[("etc/", b""), ("etc/a.cfg", b"name='a'"), ("boot/k", &[7u8; 50])]);
            if flip < bytes.len() {
                bytes[flip] = value;
            }
            bytes.truncate(cut.max(1));
            if let Ok(a) = Archive::parse(&bytes) {
                let _ = a.file("etc/a.cfg");
            }
        }

        #[test]
        fn round_trips(files in proptest::collection::btree_map("[a-z]{1,6}(/[a-z]{1,6})?", proptest::collection::vec(any::<u8>(), 0..40), 0..6)) {
            let members: Vec<(&str, &[u8])> = files.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
            let bytes = write_newc(&members);
            let a = Archive::parse(&bytes).unwrap();
            for (k, v) in &files {
                // A name may also be used as a directory by another member: then it is a
                // file whose children still read through the path.
                prop_assert_eq!(a.file(k).unwrap(), v.as_slice());
            }
        }

        #[test]
        fn lookups_never_panic(path in "[a-z./]{0,20}") {
            let mut bytes = member("x", S_IFLNK | 0o777, 1, 1, b"../y/./x");
            bytes.extend(member("y", S_IFLNK | 0o777, 1, 2, b"/x"));
            bytes.extend(write_newc(&[("a/b", b"1")]));
            let a = Archive::parse(&bytes).unwrap();
            let _ = a.file(&path);
        }
    }
}
