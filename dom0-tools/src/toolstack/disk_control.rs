//! Disks for domains: `disk = [ ... ]` at create, `block-attach`, `block-detach`,
//! `block-list`, the release at destroy, and serving the backends on every poll.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use guest_abi::DomId;

use super::{Reply, ToolError, Toolstack, fail};
use crate::blkback::disks::Attachment;
use crate::blkback::xenbus::{self, Attach, Backend, Next};
use crate::block_device::{BlockDevice, MemoryDisk, SECTOR_SIZE};
use crate::cli::DomRef;
use crate::config::disk::{self, DiskSpec};
use crate::files::Files;
use crate::hv::Hypervisor;

/// The largest file `mkdisk` copies into memory.
pub const MKDISK_MAX_BYTES: usize = 64 << 20;

impl<H: Hypervisor, F: Files> Toolstack<H, F> {
    /// Checks that a new domain may have `disks` (each exists and is free enough, and the
    /// list does not use one disk writable twice), before anything is built.
    pub(super) fn check_disks(&self, disks: &[DiskSpec]) -> Result<(), String> {
        for (i, d) in disks.iter().enumerate() {
            self.disks
                .check(&d.target, d.writable)
                .map_err(|e| e.to_string())?;
            let shared = disks[..i]
                .iter()
                .any(|o| o.target == d.target && (o.writable || d.writable));
            if shared {
                return Err(alloc::format!(
                    "{} is given twice and attached writable: it would be in use twice",
                    d.target
                ));
            }
        }
        Ok(())
    }

    /// Attaches a disk to `id`: the registry's record and the store nodes.
    pub(super) fn attach_disk(&mut self, id: DomId, d: &DiskSpec) -> Result<(), String> {
        if self
            .vbds
            .iter()
            .any(|b| b.attach.dom == id && b.attach.devid == d.devid)
        {
            return Err(alloc::format!(
                "domain {} already has a disk {}",
                id.0,
                d.vdev
            ));
        }
        let attachment = Attachment {
            dom: id,
            devid: d.devid,
            writable: d.writable,
        };
        self.disks
            .attach(&d.target, attachment)
            .map_err(|e| e.to_string())?;
        let attach = Attach {
            dom: id,
            devid: d.devid,
            vdev: d.vdev.clone(),
            disk: d.target.clone(),
            writable: d.writable,
            cdrom: d.cdrom,
        };
        match Backend::create(&mut self.store, attach) {
            Ok(b) => {
                self.vbds.push(b);
                Ok(())
            }
            Err(e) => {
                self.disks.detach(id, d.devid);
                let _ = self.store.rm(&xenbus::backend_path(id, d.devid));
                let _ = self.store.rm(&xenbus::frontend_path(id, d.devid));
                Err(alloc::format!(
                    "cannot write the store nodes of {}: {e}",
                    d.vdev
                ))
            }
        }
    }

    /// Drops every disk of a domain that is gone or going: backends, nodes and records.
    pub(super) fn release_disks(&mut self, id: DomId) {
        let mut kept = Vec::new();
        for mut b in core::mem::take(&mut self.vbds) {
            if b.attach.dom == id {
                b.disconnect(&mut self.hv);
                b.remove_nodes(&mut self.store);
            } else {
                kept.push(b);
            }
        }
        self.vbds = kept;
        self.disks.release(id);
    }

    /// `mkdisk NAME FILE` (ours): a disk in dom0's memory holding a copy of FILE from the
    /// dom0 archive, for guests when dom0 has no disk device (its writes are lost at
    /// power-off).
    pub(super) fn mkdisk(&mut self, name: &str, file: &str) -> Result<Reply, ToolError> {
        if !name.starts_with("/dev/") || name.len() <= "/dev/".len() {
            return Err(fail!("mkdisk: name the disk /dev/SOMETHING, not {name}"));
        }
        if self.disks.iter().any(|(n, _)| n == name) {
            return Err(fail!("mkdisk: {name} exists"));
        }
        let path = crate::cpio::normalize(file);
        let bytes = self.files.read(&path).map_err(|e| fail!("{file}: {e}"))?;
        if bytes.len() > MKDISK_MAX_BYTES {
            return Err(fail!(
                "mkdisk: {file} is larger than the {} MiB a memory disk may hold",
                MKDISK_MAX_BYTES >> 20
            ));
        }
        let sectors = bytes.len().div_ceil(SECTOR_SIZE);
        let mut disk = MemoryDisk::new(sectors as u64, false);
        let whole = bytes.len() / SECTOR_SIZE * SECTOR_SIZE;
        let mut tail = [0u8; SECTOR_SIZE];
        tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
        let written = disk.write(0, &bytes[..whole]).and_then(|()| {
            if whole < bytes.len() {
                disk.write((whole / SECTOR_SIZE) as u64, &tail)
            } else {
                Ok(())
            }
        });
        written.map_err(|e| fail!("mkdisk: {e}"))?;
        self.disks.add(name.to_string(), Box::new(disk));
        Ok(Reply::text(alloc::format!(
            "{name}: {sectors} sectors in memory, from {file}\n"
        )))
    }

    /// `block-attach DOM SPEC`.
    pub(super) fn block_attach(&mut self, dom: &DomRef, spec: &str) -> Result<Reply, ToolError> {
        let id = self.existing(dom)?;
        if id.0 == 0 {
            return Err(fail!(
                "block-attach: dom0 serves the disks; attach them to a guest"
            ));
        }
        let d = disk::parse(spec).map_err(|e| fail!("{e}"))?;
        self.check_disks(core::slice::from_ref(&d))
            .map_err(|e| fail!("{e}"))?;
        self.attach_disk(id, &d).map_err(|e| fail!("{e}"))?;
        Ok(Reply::default())
    }

    /// `block-detach DOM VDEV`: the frontend is asked to close; the disk is free once it did.
    pub(super) fn block_detach(&mut self, dom: &DomRef, vdev: &str) -> Result<Reply, ToolError> {
        let id = self.existing(dom)?;
        let devid = disk::devid(vdev).ok_or_else(|| fail!("{vdev} is not a disk name"))?;
        let Some(b) = self
            .vbds
            .iter_mut()
            .find(|b| b.attach.dom == id && b.attach.devid == devid)
        else {
            return Err(fail!("Error: Device {vdev} not connected."));
        };
        b.detach(&mut self.store, &mut self.hv);
        Ok(Reply::default())
    }

    /// `block-list DOM`, with xl's columns.
    pub(super) fn block_list(&mut self, dom: &DomRef) -> Result<Reply, ToolError> {
        let id = self.existing(dom)?;
        let mut out = alloc::format!(
            "{:<5} {:<3} {:<6} {:<5} {:<6} {:<8} {:<30}\n",
            "Vdev",
            "BE",
            "handle",
            "state",
            "evt-ch",
            "ring-ref",
            "BE-path"
        );
        for b in self.vbds.iter().filter(|b| b.attach.dom == id) {
            let front = xenbus::frontend_path(id, b.attach.devid);
            let mut node = |name: &str| -> i64 {
                self.store
                    .read(&alloc::format!("{front}/{name}"))
                    .ok()
                    .and_then(|v| core::str::from_utf8(&v).ok()?.trim().parse().ok())
                    .unwrap_or(-1)
            };
            let (state, evtch) = (node("state"), node("event-channel"));
            let rref = match node("ring-ref") {
                -1 => node("ring-ref0"),
                r => r,
            };
            out.push_str(&alloc::format!(
                "{:<5} {:<3} {:<6} {:<5} {:<6} {:<8} {:<30}\n",
                b.attach.devid,
                0,
                id.0,
                state,
                evtch,
                rref,
                xenbus::backend_path(id, b.attach.devid)
            ));
        }
        Ok(Reply::text(out))
    }

    /// Follows each device's handshake and serves its ring; returns lines to print and
    /// whether requests remain (poll again soon instead of sleeping).
    pub(super) fn service_disks(&mut self) -> (Vec<String>, bool) {
        let mut log = Vec::new();
        let mut more = false;
        let mut gone = Vec::new();
        for (i, b) in self.vbds.iter_mut().enumerate() {
            let Some(device) = self.disks.device(&b.attach.disk) else {
                continue;
            };
            if b.poll(&mut self.store, &mut self.hv, &*device, &mut log) == Next::Remove {
                gone.push(i);
                continue;
            }
            more |= b
                .service(&mut self.store, &mut self.hv, device, &mut log)
                .more;
        }
        for i in gone.into_iter().rev() {
            let b = self.vbds.remove(i);
            b.remove_nodes(&mut self.store);
            self.disks.detach(b.attach.dom, b.attach.devid);
        }
        (log, more)
    }

    /// The dom0 ports of the connected disks' event channels (the loop wakes on them).
    pub fn disk_ports(&self) -> Vec<guest_abi::EvtchnPort> {
        self.vbds.iter().filter_map(|b| b.port()).collect()
    }
}
