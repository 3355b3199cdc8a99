//! dom0's disks and who uses them: the registry `block-attach`, `disk = [...]` and `destroy`
//! go through.
//!
//! Rule, as xl's: a disk attached writable to a domain is in use and cannot be attached to
//! any other domain (nor again to the same one); a disk attached read-only may be attached
//! read-only to any number of domains, but then not writable. The registry owns the devices;
//! the block backend borrows one by name while it serves a request.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use guest_abi::DomId;

use crate::block_device::BlockDevice;

/// One use of a disk by a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The domain.
    pub dom: DomId,
    /// The guest's device number (`DEVID`, from the vdev name).
    pub devid: u32,
    /// Whether the guest may write.
    pub writable: bool,
}

/// A disk dom0 has: the device and its attachments.
pub struct Disk {
    /// The device.
    pub device: Box<dyn BlockDevice>,
    /// Who uses it.
    pub attachments: Vec<Attachment>,
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disk")
            .field("sectors", &self.device.sectors())
            .field("attachments", &self.attachments)
            .finish()
    }
}

/// Why an attach is refused. `Display` is one line, as xl prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// dom0 has no disk of that name.
    NoSuchDisk(String),
    /// The disk is attached writable to a domain.
    InUseWritable {
        /// The disk.
        disk: String,
        /// The domain using it.
        dom: DomId,
    },
    /// A writable attach of a disk attached read-only elsewhere.
    InUseReadOnly {
        /// The disk.
        disk: String,
        /// A domain using it.
        dom: DomId,
    },
    /// A writable attach of a device that refuses writes.
    ReadOnlyDevice(String),
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchDisk(d) => write!(f, "{d}: no such disk in dom0"),
            Self::InUseWritable { disk, dom } => write!(
                f,
                "{disk} is already in use: attached writable to domain {}",
                dom.0
            ),
            Self::InUseReadOnly { disk, dom } => write!(
                f,
                "{disk} is already in use: attached read-only to domain {}, cannot attach it writable",
                dom.0
            ),
            Self::ReadOnlyDevice(d) => write!(f, "{d} is read-only: attach it with access=r"),
        }
    }
}

/// dom0's disks by name (`/dev/vda`, …).
#[derive(Default, Debug)]
pub struct DiskRegistry {
    disks: BTreeMap<String, Disk>,
}

impl DiskRegistry {
    /// Adds (or replaces, if not in use) a disk.
    pub fn add(&mut self, name: String, device: Box<dyn BlockDevice>) {
        if self
            .disks
            .get(&name)
            .is_some_and(|d| !d.attachments.is_empty())
        {
            return;
        }
        self.disks.insert(
            name,
            Disk {
                device,
                attachments: Vec::new(),
            },
        );
    }

    /// The disks, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Disk)> {
        self.disks.iter()
    }

    /// A disk's device, to serve a request.
    pub fn device(&mut self, name: &str) -> Option<&mut dyn BlockDevice> {
        self.disks.get_mut(name).map(|d| &mut *d.device as _)
    }

    /// Checks whether `dom` may attach `name` (writable or not), without attaching.
    pub fn check(&self, name: &str, writable: bool) -> Result<(), AttachError> {
        let disk = self
            .disks
            .get(name)
            .ok_or_else(|| AttachError::NoSuchDisk(name.into()))?;
        if let Some(a) = disk.attachments.iter().find(|a| a.writable) {
            return Err(AttachError::InUseWritable {
                disk: name.into(),
                dom: a.dom,
            });
        }
        if writable {
            if let Some(a) = disk.attachments.first() {
                return Err(AttachError::InUseReadOnly {
                    disk: name.into(),
                    dom: a.dom,
                });
            }
            if disk.device.read_only() {
                return Err(AttachError::ReadOnlyDevice(name.into()));
            }
        }
        Ok(())
    }

    /// Records that `attachment.dom` uses `name`, if the rule allows it.
    pub fn attach(&mut self, name: &str, attachment: Attachment) -> Result<(), AttachError> {
        self.check(name, attachment.writable)?;
        if let Some(d) = self.disks.get_mut(name) {
            d.attachments.push(attachment);
        }
        Ok(())
    }

    /// Releases `dom`'s use of the disk it has as `devid`; returns the disk's name.
    pub fn detach(&mut self, dom: DomId, devid: u32) -> Option<String> {
        self.disks.iter_mut().find_map(|(name, d)| {
            let before = d.attachments.len();
            d.attachments
                .retain(|a| !(a.dom == dom && a.devid == devid));
            (d.attachments.len() != before).then(|| name.clone())
        })
    }

    /// Releases every disk `dom` uses (the domain is gone).
    pub fn release(&mut self, dom: DomId) {
        for d in self.disks.values_mut() {
            d.attachments.retain(|a| a.dom != dom);
        }
    }

    /// The disk `dom` has as `devid`, if any.
    pub fn attached_as(&self, dom: DomId, devid: u32) -> Option<&str> {
        self.disks.iter().find_map(|(name, d)| {
            d.attachments
                .iter()
                .any(|a| a.dom == dom && a.devid == devid)
                .then_some(name.as_str())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_device::MemoryDisk;

    fn registry() -> DiskRegistry {
        let mut r = DiskRegistry::default();
        r.add("/dev/vda".into(), Box::new(MemoryDisk::new(8, false)));
        r.add("/dev/vdb".into(), Box::new(MemoryDisk::new(8, true)));
        r
    }

    fn att(dom: u16, devid: u32, writable: bool) -> Attachment {
        Attachment {
            dom: DomId(dom),
            devid,
            writable,
        }
    }

    #[test]
    fn writable_excludes_every_other_attach() {
        let mut r = registry();
        r.attach("/dev/vda", att(1, 51712, true)).unwrap();
        assert_eq!(
            r.attach("/dev/vda", att(2, 51712, false)),
            Err(AttachError::InUseWritable {
                disk: "/dev/vda".into(),
                dom: DomId(1)
            })
        );
        assert!(r.attach("/dev/vda", att(1, 51728, true)).is_err());
        r.release(DomId(1));
        r.attach("/dev/vda", att(2, 51712, true)).unwrap();
        assert_eq!(r.attached_as(DomId(2), 51712), Some("/dev/vda"));
    }

    #[test]
    fn read_only_is_shared_but_not_with_a_writer() {
        let mut r = registry();
        r.attach("/dev/vda", att(1, 51712, false)).unwrap();
        r.attach("/dev/vda", att(2, 51712, false)).unwrap();
        assert!(matches!(
            r.attach("/dev/vda", att(3, 51712, true)),
            Err(AttachError::InUseReadOnly { .. })
        ));
        assert_eq!(r.detach(DomId(1), 51712).as_deref(), Some("/dev/vda"));
        assert_eq!(r.detach(DomId(1), 51712), None);
    }

    #[test]
    fn missing_and_read_only_devices_are_refused() {
        let mut r = registry();
        assert_eq!(
            r.attach("/dev/vdz", att(1, 51712, false)),
            Err(AttachError::NoSuchDisk("/dev/vdz".into()))
        );
        assert_eq!(
            r.attach("/dev/vdb", att(1, 51712, true)),
            Err(AttachError::ReadOnlyDevice("/dev/vdb".into()))
        );
        r.attach("/dev/vdb", att(1, 51712, false)).unwrap();
    }
}
