//! One virtual block device's life in the store: the nodes the toolstack writes at attach,
//! the xenbus handshake with the frontend, and the teardown.
//!
//! Nodes, as libxl writes them: the backend directory
//! `/local/domain/0/backend/vbd/DOMID/DEVID` (owned by dom0, readable by the guest) holds
//! `frontend`, `frontend-id`, `online`, `removable`, `bootable`, `dev`, `type`, `mode`,
//! `device-type`, `params`, `state`, and what the backend offers (`feature-flush-cache`,
//! `feature-barrier`, `feature-persistent` = 0, `max-ring-page-order`; no discard, no
//! indirect descriptors); the frontend directory `/local/domain/DOMID/device/vbd/DEVID`
//! (owned by the guest, readable by dom0) holds `backend`, `backend-id`, `state`,
//! `virtual-device`, `device-type`.
//!
//! Handshake (Linux's blkfront and blkback): the backend waits in InitWait; the frontend
//! writes `ring-ref` (or `ring-page-order` and `ring-ref0..`), `event-channel`, `protocol`
//! and goes Initialised; the backend maps the ring, binds the channel, writes `sectors`,
//! `info`, `sector-size` and goes Connected. A frontend going Closing makes the backend
//! disconnect and go Closing, then Closed when the frontend is Closed; a frontend
//! Initialising again after that gets InitWait (it reconnects). Detach sets `online` = 0
//! and the backend Closing; the device goes once the frontend closed, or when it is gone.
//!
//! Nothing the guest writes is trusted: every node it owns is parsed with bounds, a ring it
//! describes wrongly is refused (backend Closing, one log line).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use guest_abi::io::blkif::{VDISK_CDROM, VDISK_READONLY};
use guest_abi::{DomId, EvtchnPort};

use super::ring::BackRing;
use super::vbd::{Vbd, Work};
use crate::block_device::BlockDevice;
use crate::hv::Hypervisor;
use crate::store::perms::{Access, Perms};
use crate::store::{Store, StoreError};

/// `max-ring-page-order` offered: rings of up to 16 pages.
pub const MAX_RING_PAGE_ORDER: u32 = 4;

/// `XenbusState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum XenbusState {
    /// 0.
    Unknown = 0,
    /// 1.
    Initialising = 1,
    /// 2: the backend waits for the frontend's ring details.
    InitWait = 2,
    /// 3: the frontend published its ring.
    Initialised = 3,
    /// 4.
    Connected = 4,
    /// 5.
    Closing = 5,
    /// 6.
    Closed = 6,
}

impl XenbusState {
    fn from_node(value: &[u8]) -> Option<Self> {
        Some(match parse_u32(value)? {
            1 => Self::Initialising,
            2 => Self::InitWait,
            3 => Self::Initialised,
            4 => Self::Connected,
            5 => Self::Closing,
            6 => Self::Closed,
            _ => Self::Unknown,
        })
    }
}

fn parse_u32(value: &[u8]) -> Option<u32> {
    core::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The backend directory of a device.
pub fn backend_path(dom: DomId, devid: u32) -> String {
    alloc::format!("/local/domain/0/backend/vbd/{}/{devid}", dom.0)
}

/// The frontend directory of a device.
pub fn frontend_path(dom: DomId, devid: u32) -> String {
    alloc::format!("/local/domain/{}/device/vbd/{devid}", dom.0)
}

/// What the toolstack attaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attach {
    /// The guest.
    pub dom: DomId,
    /// `DEVID`.
    pub devid: u32,
    /// The guest's name for it (`xvda`).
    pub vdev: String,
    /// dom0's disk.
    pub disk: String,
    /// Whether the guest may write.
    pub writable: bool,
    /// A CD-ROM.
    pub cdrom: bool,
}

/// What a poll decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The device stays.
    Keep,
    /// The device is gone (detached and closed, or its frontend gone): forget it.
    Remove,
}

struct Connection<P: crate::shared_page::SharedPage> {
    vbd: Vbd<P>,
    port: EvtchnPort,
}

/// A device's backend.
pub struct Backend<H: Hypervisor> {
    /// What was attached.
    pub attach: Attach,
    state: XenbusState,
    conn: Option<Connection<H::GrantPage>>,
    detaching: bool,
}

impl<H: Hypervisor> core::fmt::Debug for Backend<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Backend")
            .field("attach", &self.attach)
            .field("state", &self.state)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl<H: Hypervisor> Backend<H> {
    /// Writes both directories and waits for the frontend (InitWait).
    pub fn create(store: &mut Store, attach: Attach) -> Result<Self, StoreError> {
        let (dom, devid) = (attach.dom, attach.devid);
        let back = backend_path(dom, devid);
        let front = frontend_path(dom, devid);
        let devtype = if attach.cdrom { "cdrom" } else { "disk" };
        let back_nodes: [(&str, String); 16] = [
            ("frontend", front.clone()),
            ("frontend-id", dom.0.to_string()),
            ("online", "1".into()),
            ("removable", "0".into()),
            ("bootable", "1".into()),
            ("dev", attach.vdev.clone()),
            ("type", "phy".into()),
            ("mode", (if attach.writable { "w" } else { "r" }).into()),
            ("device-type", devtype.into()),
            ("params", attach.disk.clone()),
            ("feature-flush-cache", "1".into()),
            ("feature-barrier", "1".into()),
            ("feature-persistent", "0".into()),
            ("feature-discard", "0".into()),
            ("max-ring-page-order", MAX_RING_PAGE_ORDER.to_string()),
            ("state", (XenbusState::InitWait as u32).to_string()),
        ];
        let front_nodes: [(&str, String); 5] = [
            ("backend", back.clone()),
            ("backend-id", "0".into()),
            ("virtual-device", devid.to_string()),
            ("device-type", devtype.into()),
            ("state", (XenbusState::Initialising as u32).to_string()),
        ];
        let ro_for_guest = Perms::new(DomId(0), Access::None).with(dom, Access::Read);
        let guest_owned = Perms::new(dom, Access::None).with(DomId(0), Access::Read);
        for (dir, nodes, perms) in [
            (&back, &back_nodes[..], &ro_for_guest),
            (&front, &front_nodes[..], &guest_owned),
        ] {
            store.write(dir, b"")?;
            store.set_perms(dir, perms.clone())?;
            for (name, value) in nodes {
                let p = alloc::format!("{dir}/{name}");
                store.write(&p, value.as_bytes())?;
                store.set_perms(&p, perms.clone())?;
            }
        }
        Ok(Self {
            attach,
            state: XenbusState::InitWait,
            conn: None,
            detaching: false,
        })
    }

    /// The backend's state.
    pub fn state(&self) -> XenbusState {
        self.state
    }

    /// The frontend's state as the store holds it (`None`: gone).
    pub fn frontend_state(&self, store: &mut Store) -> Option<XenbusState> {
        let p = alloc::format!(
            "{}/state",
            frontend_path(self.attach.dom, self.attach.devid)
        );
        XenbusState::from_node(&store.read(&p).ok()?)
    }

    /// The dom0 port of the device's event channel, while connected.
    pub fn port(&self) -> Option<EvtchnPort> {
        self.conn.as_ref().map(|c| c.port)
    }

    fn switch(&mut self, store: &mut Store, state: XenbusState) {
        self.state = state;
        let p = alloc::format!("{}/state", backend_path(self.attach.dom, self.attach.devid));
        let _ = store.write(&p, (state as u32).to_string().as_bytes());
    }

    /// `block-detach`: `online` = 0 and Closing; the device goes once the frontend closed.
    pub fn detach(&mut self, store: &mut Store, hv: &mut H) {
        self.detaching = true;
        let p = alloc::format!(
            "{}/online",
            backend_path(self.attach.dom, self.attach.devid)
        );
        let _ = store.write(&p, b"0");
        self.disconnect(hv);
        self.switch(store, XenbusState::Closing);
    }

    /// Whether `block-detach` was asked for.
    pub fn detaching(&self) -> bool {
        self.detaching
    }

    /// Follows the frontend's state; appends a line to `log` for what the user should know.
    pub fn poll(
        &mut self,
        store: &mut Store,
        hv: &mut H,
        disk: &dyn BlockDevice,
        log: &mut Vec<String>,
    ) -> Next {
        let Some(front) = self.frontend_state(store) else {
            self.disconnect(hv);
            return Next::Remove;
        };
        match (self.state, front) {
            (XenbusState::InitWait, XenbusState::Initialised | XenbusState::Connected)
                if !self.detaching =>
            {
                match self.connect(store, hv) {
                    Ok(()) => {
                        self.publish_disk(store, disk);
                        self.switch(store, XenbusState::Connected);
                    }
                    Err(why) => {
                        log.push(self.line(&alloc::format!("cannot connect: {why}")));
                        self.switch(store, XenbusState::Closing);
                    }
                }
            }
            (XenbusState::Connected | XenbusState::InitWait, XenbusState::Closing) => {
                self.disconnect(hv);
                self.switch(store, XenbusState::Closing);
            }
            (s, XenbusState::Closed) if s != XenbusState::Closed => {
                self.disconnect(hv);
                self.switch(store, XenbusState::Closed);
            }
            (XenbusState::Closed, XenbusState::Initialising) if !self.detaching => {
                self.switch(store, XenbusState::InitWait);
            }
            _ => {}
        }
        if self.detaching && self.state == XenbusState::Closed {
            return Next::Remove;
        }
        Next::Keep
    }

    fn line(&self, what: &str) -> String {
        alloc::format!(
            "vbd {}/{} ({}): {what}",
            self.attach.dom.0,
            self.attach.vdev,
            self.attach.disk
        )
    }

    fn connect(&mut self, store: &mut Store, hv: &mut H) -> Result<(), String> {
        let front = frontend_path(self.attach.dom, self.attach.devid);
        if let Ok(p) = store.read(&alloc::format!("{front}/protocol"))
            && !p.is_empty()
            && p != b"x86_64-abi"
        {
            return Err("protocol is not x86_64-abi".into());
        }
        let mut read = |name: &str| -> Option<u32> {
            parse_u32(&store.read(&alloc::format!("{front}/{name}")).ok()?)
        };
        let order = read("ring-page-order").unwrap_or(0);
        if order > MAX_RING_PAGE_ORDER {
            return Err(alloc::format!(
                "ring-page-order {order} is more than {MAX_RING_PAGE_ORDER}"
            ));
        }
        let mut grefs = Vec::new();
        if order == 0 && read("ring-page-order").is_none() {
            grefs.push(read("ring-ref").ok_or("no ring-ref")?);
        } else {
            for i in 0..1u32 << order {
                let name = alloc::format!("ring-ref{i}");
                grefs.push(read(&name).ok_or_else(|| alloc::format!("no {name}"))?);
            }
        }
        let remote_port = read("event-channel").ok_or("no event-channel")?;
        let mut pages = Vec::new();
        for gref in grefs {
            match hv.map_grant(self.attach.dom, gref) {
                Ok(p) => pages.push(p),
                Err(e) => {
                    for p in pages {
                        hv.unmap_grant(p);
                    }
                    return Err(alloc::format!("map ring-ref {gref}: {e}"));
                }
            }
        }
        let port = match hv.evtchn_bind_interdomain(self.attach.dom, EvtchnPort(remote_port)) {
            Ok(port) => port,
            Err(e) => {
                for p in pages {
                    hv.unmap_grant(p);
                }
                return Err(alloc::format!("bind event channel {remote_port}: {e}"));
            }
        };
        let vbd = Vbd::new(self.attach.dom, self.attach.writable, BackRing::new(pages));
        self.conn = Some(Connection { vbd, port });
        Ok(())
    }

    /// Writes what the frontend reads when the backend is Connected.
    fn publish_disk(&self, store: &mut Store, disk: &dyn BlockDevice) {
        let back = backend_path(self.attach.dom, self.attach.devid);
        let mut info = 0;
        if !self.attach.writable {
            info |= VDISK_READONLY;
        }
        if self.attach.cdrom {
            info |= VDISK_CDROM;
        }
        let ro = Perms::new(DomId(0), Access::None).with(self.attach.dom, Access::Read);
        for (name, value) in [
            ("sectors", disk.sectors().to_string()),
            ("info", info.to_string()),
            ("sector-size", "512".to_string()),
            ("physical-sector-size", "512".to_string()),
        ] {
            let p = alloc::format!("{back}/{name}");
            let _ = store.write(&p, value.as_bytes());
            let _ = store.set_perms(&p, ro.clone());
        }
    }

    /// Unmaps the ring and closes the channel, if connected.
    pub fn disconnect(&mut self, hv: &mut H) {
        if let Some(c) = self.conn.take() {
            let _ = hv.evtchn_close(c.port);
            for p in c.vbd.into_ring().into_pages() {
                hv.unmap_grant(p);
            }
        }
    }

    /// Serves the ring from `disk`; notifies the frontend when it asked. A frontend that
    /// broke the ring is disconnected (Closing) with one log line.
    pub fn service(
        &mut self,
        store: &mut Store,
        hv: &mut H,
        disk: &mut dyn BlockDevice,
        log: &mut Vec<String>,
    ) -> Work {
        let Some(c) = self.conn.as_mut() else {
            return Work::default();
        };
        let work = c.vbd.service(disk, hv);
        if work.notify {
            let _ = hv.evtchn_send(c.port);
        }
        if work.broken {
            log.push(self.line("the frontend's ring indexes are corrupt: disconnected"));
            self.disconnect(hv);
            self.switch(store, XenbusState::Closing);
        }
        work
    }

    /// Removes both directories (the device is gone), and the domain's directory under
    /// `backend/vbd` once it holds no device.
    pub fn remove_nodes(&self, store: &mut Store) {
        let _ = store.rm(&backend_path(self.attach.dom, self.attach.devid));
        let _ = store.rm(&frontend_path(self.attach.dom, self.attach.devid));
        let dom_dir = alloc::format!("/local/domain/0/backend/vbd/{}", self.attach.dom.0);
        if store.directory(&dom_dir).is_ok_and(|d| d.is_empty()) {
            let _ = store.rm(&dom_dir);
        }
    }
}
