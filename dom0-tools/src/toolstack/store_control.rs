//! The toolstack's side of the store: each domain's ring and nodes, graceful shutdown
//! and reboot through `control/shutdown`, `mem-set`, and the `xenstore-*` commands.
//!
//! A domain acts on `control/shutdown` if it says so (`control/feature-poweroff` or
//! `control/feature-reboot` = `1`, which Linux writes when its xenbus connects). Then
//! `shutdown` and `reboot` write the request there as xl does, and the hypervisor's
//! forced shutdown follows only if the domain is still running
//! [`SHUTDOWN_TIMEOUT_MS`] later. A domain that does not say so (our test guests), or
//! `-F`, gets the forced shutdown (`SCHEDOP_remote_shutdown`) at once.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use guest_abi::domctl::DominfFlags;
use guest_abi::sched::ShutdownReason;
use guest_abi::{DomId, EvtchnPort, Mfn, XenError};

use super::{Reply, ToolError, Toolstack, Wait};
use crate::builder::Built;
use crate::cli::{DomRef, ShutdownArgs};
use crate::config::DomainConfig;
use crate::domain_nodes::{self, DomainNodes};
use crate::files::Files;
use crate::hv::{DomainInfo, Hypervisor};
use crate::store::path;
use crate::xenstore::StoreServer;

/// How long a domain asked to shut down or reboot through the store has before the
/// hypervisor shuts it down.
pub const SHUTDOWN_TIMEOUT_MS: u64 = 30_000;

/// A domain's xenstore connection.
#[derive(Debug)]
pub(super) struct DomainStore {
    /// Its ring's frame (mapped while it is serviced).
    frame: Option<Mfn>,
    /// dom0's end of its store event channel.
    pub(super) port: Option<EvtchnPort>,
    /// The ring server.
    server: StoreServer,
    /// Its handle (`/vm/UUID`).
    handle: [u8; 16],
}

/// A graceful shutdown asked for: when the forced one follows, and with what reason.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    at_ms: u64,
    reason: ShutdownReason,
}

/// Whether a domain has shut down or is dying.
fn stopped(info: &DomainInfo) -> bool {
    info.shutdown().is_some() || info.flags.contains(DominfFlags::DYING)
}

/// Shows a value, not obeys it: printable ASCII other than `\` as it is, the rest `\xHH`.
fn escape(value: &[u8]) -> String {
    let mut s = String::new();
    for &b in value {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            s.push(char::from(b));
        } else {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

impl<H: Hypervisor, F: Files> Toolstack<H, F> {
    /// Connects a new domain to the store: binds its store event channel, writes its
    /// nodes and introduces it. On failure nothing is left behind.
    pub(super) fn connect_store(
        &mut self,
        config: &DomainConfig,
        built: &Built,
        handle: [u8; 16],
    ) -> Result<(), (&'static str, XenError)> {
        let id = built.domid;
        let port = match built.store_frame {
            Some(_) => Some(
                self.hv
                    .evtchn_bind_interdomain(id, built.store_port)
                    .map_err(|e| ("evtchn_bind_interdomain for the store", e))?,
            ),
            None => None,
        };
        let nodes = DomainNodes {
            dom: id,
            name: &config.name,
            handle,
            vcpus: config.vcpus,
            target_kib: config.memory_mib * 1024,
            static_max_kib: config.maxmem_mib * 1024,
            console: (built.console_frame, built.console_port),
            store: built.store_frame.map(|f| (f, built.store_port)),
        };
        if domain_nodes::write(&mut self.store, &nodes).is_err() {
            domain_nodes::remove(&mut self.store, id, &handle);
            if let Some(p) = port {
                let _ = self.hv.evtchn_close(p);
            }
            return Err(("write the domain's xenstore nodes", XenError::NoMem));
        }
        self.store.introduce(id);
        let ds = DomainStore {
            frame: built.store_frame,
            port,
            server: StoreServer::default(),
            handle,
        };
        self.stores.insert(id.0, ds);
        Ok(())
    }

    /// Drops a domain's store connection and nodes (`@releaseDomain` fires).
    pub(super) fn disconnect_store(&mut self, id: DomId) {
        self.pending.remove(&id.0);
        if let Some(ds) = self.stores.remove(&id.0) {
            if let Some(p) = ds.port {
                let _ = self.hv.evtchn_close(p);
            }
            domain_nodes::remove(&mut self.store, id, &ds.handle);
        }
        self.store.release(id);
    }

    /// Services every domain's store ring, then those that have events from the others'
    /// changes; notifies each domain whose ring moved.
    pub(super) fn service_stores(&mut self) {
        let ids: Vec<u16> = self.stores.keys().copied().collect();
        for pass in 0..2 {
            for &id in &ids {
                let dom = DomId(id);
                if pass == 1 && !self.store.has_events(dom) {
                    continue;
                }
                let Some(ds) = self.stores.get_mut(&id) else {
                    continue;
                };
                let Some(frame) = ds.frame else {
                    continue;
                };
                let Ok(page) = self.hv.map_console(dom, frame) else {
                    continue;
                };
                let moved = ds.server.service(&page, &mut self.store, dom);
                self.hv.unmap_console(page);
                if let (true, Some(port)) = (moved, ds.port) {
                    let _ = self.hv.evtchn_send(port);
                }
            }
        }
    }

    /// dom0's ends of the domains' store event channels.
    pub(super) fn store_ports(&self) -> impl Iterator<Item = EvtchnPort> + '_ {
        self.stores.values().filter_map(|ds| ds.port)
    }

    /// Whether the domain says it acts on `control/shutdown` with `reason`.
    fn has_pv_control(&mut self, id: DomId, reboot: bool) -> bool {
        let feature = if reboot { "reboot" } else { "poweroff" };
        let p = alloc::format!("{}/control/feature-{feature}", path::home(id));
        self.store.read(&p).is_ok_and(|v| v == b"1")
    }

    /// `shutdown` / `reboot`.
    pub(super) fn shutdown(&mut self, args: &ShutdownArgs) -> Result<Reply, ToolError> {
        let id = self.existing(&args.dom)?;
        let (verb, word, reason) = if args.reboot {
            ("reboot", "Rebooting", ShutdownReason::Reboot)
        } else {
            ("shut down", "Shutting down", ShutdownReason::Poweroff)
        };
        self.refuse_dom0(id, verb)?;
        let mut output = alloc::format!("{word} domain {}\n", id.0);
        if !args.force && self.has_pv_control(id, args.reboot) {
            let value: &[u8] = if args.reboot { b"reboot" } else { b"poweroff" };
            let p = alloc::format!("{}/control/shutdown", path::home(id));
            self.store
                .write(&p, value)
                .map_err(|e| super::fail!("{verb} {}: writing {p}: {e}", args.dom))?;
            let at_ms = self.now_ms + SHUTDOWN_TIMEOUT_MS;
            self.pending.insert(id.0, Pending { at_ms, reason });
        } else {
            if !args.force {
                let _ = writeln!(
                    output,
                    "Domain {} does not act on control/shutdown: shut down by the hypervisor",
                    id.0
                );
            }
            self.hv
                .remote_shutdown(id, reason)
                .map_err(|e| super::fail!("{verb} {}: {e}", args.dom))?;
        }
        Ok(Reply {
            output,
            wait: args.wait.then_some(Wait::Gone(id)),
        })
    }

    /// Forced shutdowns whose time has come: one line each.
    pub(super) fn run_forced_shutdowns(&mut self) -> Vec<String> {
        let now = self.now_ms;
        let due: Vec<(u16, Pending)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.at_ms <= now)
            .map(|(&id, &p)| (id, p))
            .collect();
        let mut lines = Vec::new();
        for (id, p) in due {
            self.pending.remove(&id);
            let dom = DomId(id);
            if !self.hv.domain_info(dom).is_ok_and(|i| !stopped(&i)) {
                continue;
            }
            let name = self.table.name_of(dom);
            let mut line = alloc::format!(
                "Domain {id} ({name}) did not act on control/shutdown within {} s; shutting it down",
                SHUTDOWN_TIMEOUT_MS / 1000
            );
            if let Err(e) = self.hv.remote_shutdown(dom, p.reason) {
                let _ = write!(line, ": failed: {e}");
            }
            lines.push(line);
        }
        lines
    }

    /// Whether `dom` has shut down or is gone (for `-w`).
    pub(super) fn gone(&mut self, dom: DomId) -> bool {
        !self.hv.domain_info(dom).is_ok_and(|i| !stopped(&i))
    }

    /// `mem-set DOM SIZE`: writes `memory/target` for the guest's balloon driver.
    pub(super) fn mem_set(&mut self, dom: &DomRef, kib: u64) -> Result<Reply, ToolError> {
        let id = self.existing(dom)?;
        self.refuse_dom0(id, "mem-set")?;
        let home = path::home(id);
        let max = self
            .store
            .read(&alloc::format!("{home}/memory/static-max"))
            .ok()
            .and_then(|v| core::str::from_utf8(&v).ok()?.parse::<u64>().ok());
        if let Some(max) = max
            && kib > max
        {
            return Err(super::fail!(
                "mem-set {dom}: {kib} KiB is above the domain's maximum of {max} KiB (maxmem)"
            ));
        }
        let p = alloc::format!("{home}/memory/target");
        self.store
            .write(&p, alloc::format!("{kib}").as_bytes())
            .map_err(|e| super::fail!("mem-set {dom}: writing {p}: {e}"))?;
        Ok(Reply::default())
    }

    /// `xenstore-read PATH`.
    pub(super) fn xenstore_read(&mut self, p: &str) -> Result<Reply, ToolError> {
        let v = self
            .store
            .read(p)
            .map_err(|e| super::fail!("xenstore-read {p}: {e}"))?;
        Ok(Reply::text(alloc::format!("{}\n", escape(&v))))
    }

    /// `xenstore-write PATH VALUE`.
    pub(super) fn xenstore_write(&mut self, p: &str, value: &str) -> Result<Reply, ToolError> {
        self.store
            .write(p, value.as_bytes())
            .map_err(|e| super::fail!("xenstore-write {p}: {e}"))?;
        Ok(Reply::default())
    }

    /// `xenstore-rm PATH`.
    pub(super) fn xenstore_rm(&mut self, p: &str) -> Result<Reply, ToolError> {
        self.store
            .rm(p)
            .map_err(|e| super::fail!("xenstore-rm {p}: {e}"))?;
        Ok(Reply::default())
    }

    /// `xenstore-ls [PATH]`: every node below PATH as `name = "value"`, indented one
    /// blank per level, as xenstore-ls prints it.
    pub(super) fn xenstore_ls(&mut self, p: Option<&str>) -> Result<Reply, ToolError> {
        let root = p.unwrap_or("/");
        let top = self
            .store
            .directory(root)
            .map_err(|e| super::fail!("xenstore-ls {root}: {e}"))?;
        let base =
            path::resolve(DomId(0), root).map_err(|e| super::fail!("xenstore-ls {root}: {e}"))?;
        let mut out = String::new();
        // Depth-first, children in order: (path, name, depth).
        let mut stack: Vec<(String, String, usize)> = top
            .into_iter()
            .rev()
            .map(|n| (path::join(&base, &n), n, 0))
            .collect();
        while let Some((full, name, depth)) = stack.pop() {
            let value = self.store.read(&full).unwrap_or_default();
            let _ = writeln!(out, "{:depth$}{name} = \"{}\"", "", escape(&value));
            let children = self.store.directory(&full).unwrap_or_default();
            for c in children.into_iter().rev() {
                stack.push((path::join(&full, &c), c, depth + 1));
            }
        }
        Ok(Reply::text(out))
    }
}
