//! xl's disk specifications (`xl-disk-configuration(5)`), as `disk = [ ... ]` and
//! `block-attach` take them, and guest device names to `DEVID`s (`xen-vbd-interface(7)`).
//!
//! A spec is comma-separated: `key=value` parameters, flags (`cdrom`, `discard`, …) and
//! positional parameters filling, in order, target, format, vdev and access (after a
//! deprecated `phy:`-style prefix on the target, the format is not positional). `target=`
//! takes the rest of the string. A target not starting with `/` gets `/dev/` in front.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// A disk as a spec describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    /// dom0's device (`/dev/vdb`).
    pub target: String,
    /// The guest's name for it (`xvda`).
    pub vdev: String,
    /// Its number in the store (`DEVID`), from `vdev`.
    pub devid: u32,
    /// Whether the guest may write.
    pub writable: bool,
    /// `devtype=cdrom`.
    pub cdrom: bool,
}

/// A bad spec; `Display` is one line naming the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpecError {
    /// The spec.
    pub spec: String,
    /// What is wrong.
    pub why: String,
}

impl fmt::Display for DiskSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad disk spec '{}': {}", self.spec, self.why)
    }
}

/// Prefixes xl still accepts in front of a target (deprecated there); all mean a raw
/// device here.
const PREFIXES: &[&str] = &["phy:", "file:", "raw:", "aio:", "tap:", "tap2:", "tapdisk:"];
/// Flags xl knows that change nothing for this backend.
const IGNORED_FLAGS: &[&str] = &[
    "direct-io-safe",
    "discard",
    "no-discard",
    "trusted",
    "untrusted",
];

#[derive(Default)]
struct Fields {
    target: Option<String>,
    format: Option<String>,
    vdev: Option<String>,
    access: Option<String>,
    cdrom: bool,
    prefixed: bool,
}

/// Parses one disk spec.
pub fn parse(spec: &str) -> Result<DiskSpec, DiskSpecError> {
    let err = |why: &str| DiskSpecError {
        spec: spec.to_string(),
        why: why.to_string(),
    };
    let mut f = Fields::default();
    let mut rest = spec;
    while !rest.is_empty() {
        rest = rest.trim_start();
        if let Some(t) = rest.strip_prefix("target=") {
            set(&mut f.target, t, "target").map_err(|e| err(&e.why))?;
            break;
        }
        let (item, tail) = rest.split_once(',').unwrap_or((rest, ""));
        rest = tail;
        if let Some((key, value)) = item.split_once('=') {
            let slot = match key {
                "format" => &mut f.format,
                "vdev" => &mut f.vdev,
                "access" => &mut f.access,
                "devtype" => {
                    f.cdrom = match value {
                        "cdrom" => true,
                        "disk" => false,
                        _ => return Err(err("devtype must be disk or cdrom")),
                    };
                    continue;
                }
                "backend" if value == "0" || value == super::DOM0_NAME => continue,
                "backend" => return Err(err("only dom0 serves disks")),
                "backendtype" if value == "phy" => continue,
                "backendtype" => return Err(err("only backendtype=phy is supported")),
                "specification" if value == "xen" => continue,
                "specification" => return Err(err("only specification=xen is supported")),
                _ => return Err(err("unknown parameter")),
            };
            set(slot, value, key).map_err(|e| err(&e.why))?;
        } else if item == "cdrom" {
            f.cdrom = true;
        } else if IGNORED_FLAGS.contains(&item) {
        } else {
            positional(&mut f, item).map_err(|e| err(&e.why))?;
        }
    }
    finish(f).map_err(|why| err(&why))
}

fn set(slot: &mut Option<String>, value: &str, what: &str) -> Result<(), DiskSpecError> {
    if slot.as_deref().is_some_and(|v| !v.is_empty()) && !value.is_empty() {
        return Err(DiskSpecError {
            spec: String::new(),
            why: alloc::format!("{what} given twice"),
        });
    }
    if slot.as_deref().is_none_or(str::is_empty) {
        *slot = Some(value.to_string());
    }
    Ok(())
}

fn positional(f: &mut Fields, item: &str) -> Result<(), DiskSpecError> {
    if f.target.is_none() {
        let mut target = item;
        if let Some(p) = PREFIXES.iter().find(|p| item.starts_with(**p)) {
            target = &item[p.len()..];
            f.prefixed = true;
        }
        return set(&mut f.target, target, "target");
    }
    if !f.prefixed && f.format.is_none() {
        return set(&mut f.format, item, "format");
    }
    if f.vdev.is_none() {
        let (vdev, devtype) = item.split_once(':').unwrap_or((item, ""));
        if devtype == "cdrom" {
            f.cdrom = true;
        }
        return set(&mut f.vdev, vdev, "vdev");
    }
    if f.access.is_none() {
        return set(&mut f.access, item, "access");
    }
    Err(DiskSpecError {
        spec: String::new(),
        why: "too many positional parameters".into(),
    })
}

fn finish(f: Fields) -> Result<DiskSpec, String> {
    match f.format.as_deref() {
        None | Some("") | Some("raw") => {}
        Some(other) => return Err(alloc::format!("format {other} is not supported (raw only)")),
    }
    let target = f.target.filter(|t| !t.is_empty()).ok_or("no target")?;
    let target = if target.starts_with('/') {
        target
    } else {
        alloc::format!("/dev/{target}")
    };
    let vdev = f.vdev.filter(|v| !v.is_empty()).ok_or("no vdev")?;
    let devid = devid(&vdev).ok_or_else(|| alloc::format!("{vdev} is not a disk name"))?;
    let writable = match f.access.as_deref() {
        None | Some("") => !f.cdrom,
        Some("w" | "rw") => true,
        Some("r" | "ro") => false,
        Some(_) => return Err("access must be r, ro, w or rw".into()),
    };
    Ok(DiskSpec {
        target,
        vdev,
        devid,
        writable,
        cdrom: f.cdrom,
    })
}

/// The `DEVID` of a guest device name: `xvdX` (`xvda` is 51712), `hdX`, `sdX`, `dNpM`, or
/// a number written as is. `None` for a name outside `xen-vbd-interface(7)`.
pub fn devid(vdev: &str) -> Option<u32> {
    if let Some(rest) = vdev.strip_prefix("xvd") {
        let (disk, part) = letters_then_number(rest)?;
        return xvd(disk, part);
    }
    if let Some(rest) = vdev
        .strip_prefix('d')
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    {
        let (disk, part) = rest.split_once('p').unwrap_or((rest, "0"));
        return xvd(disk.parse().ok()?, part.parse().ok()?);
    }
    for (prefix, is_sd) in [("sd", true), ("hd", false)] {
        if let Some(rest) = vdev.strip_prefix(prefix) {
            let (disk, part) = letters_then_number(rest)?;
            return match (is_sd, disk) {
                (true, 0..=15) if part <= 15 => Some(8 << 8 | disk << 4 | part),
                (false, 0..=1) if part <= 63 => Some(3 << 8 | disk << 6 | part),
                (false, 2..=3) if part <= 63 => Some(22 << 8 | (disk - 2) << 6 | part),
                _ => None,
            };
        }
    }
    let n = vdev.parse::<u32>().ok()?;
    (n > 0).then_some(n)
}

fn xvd(disk: u32, part: u32) -> Option<u32> {
    if disk <= 15 && part <= 15 {
        Some(202 << 8 | disk << 4 | part)
    } else if disk < 1 << 20 && part <= 255 {
        Some(1 << 28 | disk << 8 | part)
    } else {
        None
    }
}

/// `aa3` → (26, 3): the disk letters counted as xl does (`a`..`z`, then `aa`..), then an
/// optional partition number.
fn letters_then_number(s: &str) -> Option<(u32, u32)> {
    let split = s.find(|c: char| !c.is_ascii_lowercase()).unwrap_or(s.len());
    let (letters, digits) = s.split_at(split);
    if letters.is_empty() || letters.len() > 4 {
        return None;
    }
    let mut disk: u32 = 0;
    for (i, c) in letters.bytes().enumerate() {
        let v = u32::from(c - b'a');
        disk = if i == 0 { v } else { (disk + 1) * 26 + v };
    }
    let part = if digits.is_empty() {
        0
    } else if digits.starts_with('0') {
        return None;
    } else {
        digits.parse().ok()?
    };
    Some((disk, part))
}

/// The name `block-list` and the guest show for a `DEVID` built by [`devid`] (`xvda`,
/// `xvdb2`), or the number.
pub fn vdev_name(devid: u32) -> String {
    let (disk, part) = match devid {
        d if d >> 8 == 202 => ((d >> 4) & 0xf, d & 0xf),
        d if d >> 28 == 1 => ((d >> 8) & 0xf_ffff, d & 0xff),
        d => return d.to_string(),
    };
    let mut letters = Vec::new();
    let mut n = disk + 1;
    while n > 0 {
        n -= 1;
        letters.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    letters.reverse();
    let mut name = String::from("xvd");
    name.extend(letters.iter().map(|&b| char::from(b)));
    if part > 0 {
        name.push_str(&part.to_string());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(spec: &str) -> (String, String, u32, bool, bool) {
        let d = parse(spec).unwrap();
        (d.target, d.vdev, d.devid, d.writable, d.cdrom)
    }

    #[test]
    fn the_forms_of_the_manual_agree() {
        let want = ("/dev/vdb".into(), "xvda".into(), 51712, true, false);
        for spec in [
            "phy:/dev/vdb,xvda,w",
            "/dev/vdb,,xvda",
            "/dev/vdb,raw,xvda,rw",
            "format=raw, vdev=xvda, access=rw, target=/dev/vdb",
            "vdb,raw,xvda",
            "vdev=xvda,target=/dev/vdb",
        ] {
            assert_eq!(ok(spec), want, "{spec}");
        }
        assert_eq!(
            ok("/dev/vdc,,hdc,cdrom"),
            ("/dev/vdc".into(), "hdc".into(), 22 << 8, false, true)
        );
        assert!(!ok("phy:/dev/vdc,xvdb,r").3);
        assert!(ok("phy:/dev/vdc,hdc:cdrom,ro").4);
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, why) in [
            ("phy:/dev/vdb", "no vdev"),
            (",,xvda", "no target"),
            (
                "/dev/vdb,qcow2,xvda",
                "format qcow2 is not supported (raw only)",
            ),
            ("/dev/vdb,,xvda,x", "access must be r, ro, w or rw"),
            ("/dev/vdb,,floppy", "floppy is not a disk name"),
            ("/dev/vdb,,xvda,w,extra", "too many positional parameters"),
            ("colour=red,/dev/vdb,,xvda", "unknown parameter"),
            ("vdev=xvda,vdev=xvdb,/dev/vdb", "vdev given twice"),
        ] {
            assert_eq!(parse(spec).unwrap_err().why, why, "{spec}");
        }
        assert_eq!(
            parse("phy:/dev/vdb").unwrap_err().to_string(),
            "bad disk spec 'phy:/dev/vdb': no vdev"
        );
    }

    #[test]
    fn device_numbers_follow_the_vbd_interface() {
        assert_eq!(devid("xvda"), Some(51712));
        assert_eq!(devid("xvdb2"), Some(202 << 8 | 1 << 4 | 2));
        assert_eq!(devid("xvdq"), Some(1 << 28 | 16 << 8));
        assert_eq!(devid("xvdaa"), Some(1 << 28 | 26 << 8));
        assert_eq!(devid("xvdtq37"), Some(1 << 28 | 536 << 8 | 37));
        assert_eq!(devid("d536p37"), devid("xvdtq37"));
        assert_eq!(devid("sdb3"), Some(8 << 8 | 1 << 4 | 3));
        assert_eq!(devid("hda"), Some(3 << 8));
        assert_eq!(devid("hdd1"), Some(22 << 8 | 1 << 6 | 1));
        assert_eq!(devid("hde"), None);
        assert_eq!(devid("xvd"), None);
        assert_eq!(devid("xvda01"), None);
        assert_eq!(devid("51712"), Some(51712));
        for name in ["xvda", "xvdp", "xvdq", "xvdaa", "xvdtq37", "xvdb2"] {
            assert_eq!(vdev_name(devid(name).unwrap()), name);
        }
    }
}
