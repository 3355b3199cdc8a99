//! The toolstack: commands, domain lifecycle, consoles and the shutdown policy, over a
//! [`Hypervisor`] and the dom0 [`Files`].
//!
//! The dom0 kernel's main loop drives it:
//! - a line typed on the console (or read from a script) goes to [`Toolstack::execute`],
//!   which returns the text to print and, for `sleep`, `wait-for` and `console`, a
//!   [`Wait`] for the loop to honour;
//! - when a domain's console event channel fires (or on a timer), the loop calls
//!   [`Toolstack::poll_consoles`] and prints what it returns;
//! - while attached to a console ([`Toolstack::attached`]), typed bytes go to
//!   [`Toolstack::console_input`] instead of `execute`; Ctrl-] detaches;
//! - when `VIRQ_DOM_EXC` fires, [`Toolstack::on_dom_exc`] applies each stopped domain's
//!   `on_poweroff` / `on_reboot` / `on_crash` / `on_watchdog` action and returns one line
//!   per domain;
//! - on every wake, [`Toolstack::set_time`] gives it the time and
//!   [`Toolstack::run_restarts`] restarts the domains whose restart is due.
//!
//! # Restarts
//!
//! As xl, a restart waits [`RESTART_DELAY_MS`] (the stopped domain stays, shut down, until
//! then; `destroy` cancels the restart), and nothing blocks meanwhile: the restart is
//! scheduled and done by a later [`Toolstack::run_restarts`]. A domain that crashes within
//! [`FAST_CRASH_MS`] of being (re)started [`FAST_CRASH_LIMIT`] times in a row is not
//! restarted again: it is left crashed, as `preserve` leaves it, with one line saying so.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use guest_abi::sched::ShutdownReason;
use guest_abi::{DomId, EvtchnPort, Mfn, XenError};

use crate::blkback::disks::DiskRegistry;
use crate::block_device::BlockDevice;
use crate::builder::{self, BuildError};
use crate::cli::{self, Command, DomRef};
use crate::config::{self, ConfigError, DomainConfig, Effect};
use crate::console::{Console, ESCAPE};
use crate::cpio::{self, LookupError};
use crate::domains::{self, DomainTable, Record, State};
use crate::files::{self, Files};
use crate::hv::Hypervisor;
use crate::store::Store;

mod disk_control;
mod store_control;
pub use store_control::SHUTDOWN_TIMEOUT_MS;

/// What the caller must do before the next command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Sleep this long (keep polling consoles meanwhile).
    Sleep {
        /// Milliseconds.
        millis: u64,
    },
    /// Poll consoles until [`Toolstack::wait_done`] says the domain exists (and has
    /// printed the text).
    Domain {
        /// The domain.
        dom: DomRef,
        /// The text, if any.
        text: Option<String>,
    },
    /// The console is attached to this domain: send typed bytes to
    /// [`Toolstack::console_input`] until it reports a detach.
    Attached(DomId),
    /// `shutdown -w` / `reboot -w`: poll until [`Toolstack::wait_done`] says the domain
    /// has shut down or is gone.
    Gone(DomId),
    /// `poweroff`: the caller powers the machine off (the domains go with it).
    PowerOff,
}

/// The result of a command that worked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// Text to print (whole lines).
    pub output: String,
    /// What to wait for, if anything.
    pub wait: Option<Wait>,
}

impl Reply {
    fn text(output: String) -> Self {
        Self { output, wait: None }
    }
}

/// A command that failed: one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolError(pub String);

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for ToolError {}

impl From<cli::CliError> for ToolError {
    fn from(e: cli::CliError) -> Self {
        Self(e.0)
    }
}

impl From<config::ConfigError> for ToolError {
    fn from(e: config::ConfigError) -> Self {
        Self(e.to_string())
    }
}

macro_rules! fail {
    ($($arg:tt)*) => { ToolError(alloc::format!($($arg)*)) };
}
use fail;

/// A domain `create` started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// Its id.
    pub id: DomId,
    /// Warnings from its configuration file, one line each.
    pub warnings: Vec<String>,
    /// With `evtchn_peer`: the peer and its port offered to the new domain.
    pub peer: Option<(DomId, EvtchnPort)>,
}

/// Why `create` failed. `Display` is one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateError {
    /// A file cannot be read from the dom0 archive.
    File {
        /// The path.
        path: String,
        /// Why.
        error: LookupError,
    },
    /// The configuration file is not UTF-8.
    NotText {
        /// The path.
        path: String,
        /// The line with the first bad byte.
        line: usize,
    },
    /// The configuration is wrong.
    Config(ConfigError),
    /// The kernel or ramdisk the configuration names is not there.
    Missing {
        /// The configuration file.
        config: String,
        /// `kernel` or `ramdisk`.
        what: &'static str,
        /// The path as written.
        path: String,
        /// Why.
        error: LookupError,
    },
    /// The `evtchn_peer` the configuration names is not a running domain.
    Peer {
        /// The domain's name.
        name: String,
        /// The peer as written.
        peer: String,
        /// Why.
        why: String,
    },
    /// A disk of the configuration cannot be attached.
    Disk {
        /// The domain's name.
        name: String,
        /// Why, one line.
        why: String,
    },
    /// A domain with that name exists.
    DuplicateName {
        /// The name.
        name: String,
        /// The domain that has it.
        id: DomId,
    },
    /// The hypervisor refused `createdomain` with `ENOSPC`: it has no room for another
    /// domain or for this one's vCPUs.
    NoRoom {
        /// The domain's name.
        name: String,
        /// The vCPUs it asked for.
        vcpus: u32,
    },
    /// Building or starting the domain failed (any half-built domain was destroyed).
    Build {
        /// The domain's name.
        name: String,
        /// Why.
        error: BuildError,
    },
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, error } => write!(f, "{path}: {error}"),
            Self::NotText { path, line } => write!(f, "{path}:{line}: not UTF-8 text"),
            Self::Config(e) => write!(f, "{e}"),
            Self::Disk { name, why } => write!(f, "{name}: {why}"),
            Self::Missing {
                config,
                what,
                path,
                error,
            } => write!(f, "{config}: {what} '{path}': {error}"),
            Self::DuplicateName { name, id } => write!(
                f,
                "cannot create domain '{name}': a domain with that name exists (id {})",
                id.0
            ),
            Self::NoRoom { name, vcpus } => write!(
                f,
                "cannot create domain '{name}': createdomain failed: the hypervisor has no room \
                 for another domain or {vcpus} more vCPU{} (limits: {} domUs, {} vCPUs each, {} \
                 vCPUs in all)",
                if *vcpus == 1 { "" } else { "s" },
                config::MAX_DOMUS,
                config::MAX_VCPUS,
                config::MAX_VCPUS_IN_ALL
            ),
            Self::Build { name, error } => write!(f, "cannot create domain '{name}': {error}"),
            Self::Peer { name, peer, why } => write!(
                f,
                "cannot create domain '{name}': evtchn_peer '{peer}': {why}"
            ),
        }
    }
}

impl core::error::Error for CreateError {}

impl From<CreateError> for ToolError {
    fn from(e: CreateError) -> Self {
        Self(e.to_string())
    }
}

/// What happened to bytes typed while attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputResult {
    /// Bytes that went into the guest's input ring.
    pub accepted: usize,
    /// Whether Ctrl-] was typed (or the domain is gone): the console is detached.
    pub detached: bool,
}

/// The toolstack.
pub struct Toolstack<H: Hypervisor, F: Files> {
    hv: H,
    files: F,
    table: DomainTable,
    consoles: BTreeMap<u16, Console<H::Ring>>,
    attached: Option<DomId>,
    console_out: Vec<u8>,
    held: Vec<u8>,
    created: u64,
    now_ms: u64,
    store: Store,
    stores: BTreeMap<u16, store_control::DomainStore>,
    pending: BTreeMap<u16, store_control::Pending>,
    disks: DiskRegistry,
    vbds: Vec<crate::blkback::xenbus::Backend<H>>,
    disk_work: bool,
}

/// Output of other domains kept while a console is attached, at most (the oldest goes).
pub const HELD_OUTPUT: usize = 64 * 1024;
/// How long a restart waits after the shutdown (xl waits 2 s too).
pub const RESTART_DELAY_MS: u64 = 2000;
/// A crash this soon after a (re)start counts as a fast crash.
pub const FAST_CRASH_MS: u64 = 10_000;
/// After this many fast crashes in a row a domain is left crashed, not restarted.
pub const FAST_CRASH_LIMIT: u32 = 3;

impl<H: Hypervisor, F: Files> Toolstack<H, F> {
    /// A toolstack with no domains, over `hv`, reading files from `files`.
    pub fn new(hv: H, files: F) -> Self {
        let mut store = Store::new();
        // dom0's own nodes; a fresh store cannot refuse dom0.
        let _ = crate::domain_nodes::write_dom0(&mut store, config::DOM0_NAME);
        Self {
            hv,
            files,
            table: DomainTable::default(),
            consoles: BTreeMap::new(),
            attached: None,
            console_out: Vec::new(),
            held: Vec::new(),
            created: 0,
            now_ms: 0,
            store,
            stores: BTreeMap::new(),
            pending: BTreeMap::new(),
            disks: DiskRegistry::default(),
            vbds: Vec::new(),
            disk_work: false,
        }
    }

    /// Gives the toolstack one of dom0's disks, by the name configs use (`/dev/vda`, …),
    /// for `disk = [ 'phy:/dev/vda,xvda,w' ]` and `block-attach`.
    pub fn add_disk(&mut self, name: String, disk: Box<dyn BlockDevice>) {
        self.disks.add(name, disk);
    }

    /// Whether the last poll left disk requests unserved (bounded work per wake-up): poll
    /// again without sleeping.
    pub fn disk_work_pending(&self) -> bool {
        self.disk_work
    }

    /// dom0's disks and their users.
    pub fn disks(&self) -> &DiskRegistry {
        &self.disks
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The time now, in milliseconds from any fixed point (it never goes back): what
    /// restarts are scheduled by and fast crashes measured with. Call it before
    /// [`Self::execute`], [`Self::on_dom_exc`] and [`Self::run_restarts`].
    pub fn set_time(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// When the next scheduled restart is due, if any.
    pub fn next_restart_ms(&self) -> Option<u64> {
        self.table
            .ids()
            .into_iter()
            .filter_map(|id| self.table.get(id)?.restart_at)
            .min()
    }

    /// Restarts the domains whose restart is due, and shuts down those asked to through
    /// the store that did not within [`SHUTDOWN_TIMEOUT_MS`]; one line each, like
    /// `Domain 4 (db) restarted as domain 5`.
    pub fn run_restarts(&mut self) -> Vec<String> {
        let mut lines = self.run_forced_shutdowns();
        for id in self.table.ids() {
            let Some(record) = self.table.get(id) else {
                continue;
            };
            if record.restart_at.is_none_or(|at| at > self.now_ms) {
                continue;
            }
            let head = alloc::format!("Domain {} ({})", id.0, record.name());
            let fast_crashes = record.fast_crashes;
            let (config, kernel, ramdisk) = (
                record.config.clone(),
                record.kernel_path.clone(),
                record.ramdisk_path.clone(),
            );
            if let Err(e) = self.destroy(id) {
                if let Some(r) = self.table.get_mut(id) {
                    r.restart_at = None;
                }
                lines.push(alloc::format!("{head}: restarting failed: {e}"));
                continue;
            }
            lines.push(match self.start(config, kernel, ramdisk) {
                Ok((new, _)) => {
                    if let Some(r) = self.table.get_mut(new) {
                        r.fast_crashes = fast_crashes;
                    }
                    alloc::format!("{head} restarted as domain {}", new.0)
                }
                Err(e) => alloc::format!("{head}: restarting failed: {e}"),
            });
        }
        lines
    }

    /// The hypervisor.
    pub fn hypervisor(&self) -> &H {
        &self.hv
    }

    /// The hypervisor, mutably (for the kernel's own calls).
    pub fn hypervisor_mut(&mut self) -> &mut H {
        &mut self.hv
    }

    /// The domains the toolstack created.
    pub fn domains(&self) -> &DomainTable {
        &self.table
    }

    /// The domain whose console is attached, if any.
    pub fn attached(&self) -> Option<DomId> {
        self.attached
    }

    /// dom0's local event channel ports of the domains' consoles, xenstore rings and
    /// disks: the ports whose events mean "call [`Self::poll_consoles`]".
    pub fn console_ports(&self) -> Vec<EvtchnPort> {
        self.consoles
            .values()
            .map(|c| c.port)
            .chain(self.store_ports())
            .chain(self.disk_ports())
            .collect()
    }

    /// Runs one command line.
    pub fn execute(&mut self, line: &str) -> Result<Reply, ToolError> {
        match cli::parse_command(line)? {
            Command::Nothing => Ok(Reply::default()),
            Command::Help(topic) => Ok(Reply::text(cli::help(topic.as_deref())?)),
            Command::Create { file, overrides } => self.create(&file, &overrides),
            Command::BlockList(dom) => self.block_list(&dom),
            Command::Mkdisk { name, file } => self.mkdisk(&name, &file),
            Command::BlockAttach { dom, spec } => self.block_attach(&dom, &spec),
            Command::BlockDetach { dom, vdev } => self.block_detach(&dom, &vdev),
            Command::List => self.list(),
            Command::Info => self.info(),
            Command::Destroy(dom) => {
                let id = self.existing(&dom)?;
                self.destroy(id)?;
                Ok(Reply::default())
            }
            Command::Shutdown(args) => self.shutdown(&args),
            Command::MemSet { dom, kib } => self.mem_set(&dom, kib),
            Command::XenstoreLs(p) => self.xenstore_ls(p.as_deref()),
            Command::XenstoreRead(p) => self.xenstore_read(&p),
            Command::XenstoreWrite { path, value } => self.xenstore_write(&path, &value),
            Command::XenstoreRm(p) => self.xenstore_rm(&p),
            Command::Pause(dom) => self.pause(&dom, true),
            Command::Unpause(dom) => self.pause(&dom, false),
            Command::Console(dom) => self.attach(&dom),
            Command::Sleep { millis } => Ok(Reply {
                output: String::new(),
                wait: Some(Wait::Sleep { millis }),
            }),
            Command::WaitFor { dom, text } => Ok(Reply {
                output: String::new(),
                wait: Some(Wait::Domain { dom, text }),
            }),
            Command::Poweroff => Ok(Reply {
                output: String::new(),
                wait: Some(Wait::PowerOff),
            }),
        }
    }

    /// The id of an existing domain named on the command line.
    fn existing(&mut self, dom: &DomRef) -> Result<DomId, ToolError> {
        let id = self
            .table
            .resolve(dom)
            .ok_or_else(|| fail!("no domain called '{dom}'"))?;
        match self.hv.domain_info(id) {
            Ok(_) => Ok(id),
            Err(XenError::Srch) => Err(fail!("domain {} does not exist", id.0)),
            Err(e) => Err(fail!("getdomaininfo for domain {}: {e}", id.0)),
        }
    }

    fn refuse_dom0(&self, id: DomId, what: &str) -> Result<(), ToolError> {
        if id.0 == 0 {
            return Err(fail!("cannot {what} {}", config::DOM0_NAME));
        }
        Ok(())
    }

    fn create(&mut self, file: &str, overrides: &[String]) -> Result<Reply, ToolError> {
        let overrides: Vec<&str> = overrides.iter().map(String::as_str).collect();
        let mut output = alloc::format!("Parsing config from {file}\n");
        let created = self.create_domain(file, &overrides)?;
        for w in &created.warnings {
            output.push_str(w);
            output.push('\n');
        }
        let name = self.table.name_of(created.id);
        if let Some((peer, port)) = created.peer {
            output.push_str(&alloc::format!(
                "Event channel: port {} of domain {} ({}) offered to {name}\n",
                port.0,
                peer.0,
                self.table.name_of(peer)
            ));
        }
        output.push_str(&alloc::format!(
            "Started domain {name} (id={})\n",
            created.id.0
        ));
        Ok(Reply::text(output))
    }

    /// `create FILE key=value...`: reads the configuration file from the dom0 files,
    /// builds the domain, connects its console and unpauses it.
    pub fn create_domain(
        &mut self,
        file: &str,
        overrides: &[&str],
    ) -> Result<Created, CreateError> {
        let path = cpio::normalize(file);
        let bytes = self.files.read(&path).map_err(|error| CreateError::File {
            path: file.to_string(),
            error,
        })?;
        let text = core::str::from_utf8(bytes).map_err(|e| CreateError::NotText {
            path: file.to_string(),
            line: bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1,
        })?;
        let parsed = config::parse(file, text, overrides).map_err(CreateError::Config)?;
        let cfg = parsed.config;
        let find = |what: &'static str, p: &str| {
            files::resolve(&self.files, &path, p)
                .map(|(found, _)| found)
                .map_err(|error| CreateError::Missing {
                    config: file.to_string(),
                    what,
                    path: p.to_string(),
                    error,
                })
        };
        let kernel_path = find("kernel", &cfg.kernel)?;
        let ramdisk_path = cfg
            .ramdisk
            .as_deref()
            .map(|r| find("ramdisk", r))
            .transpose()?;
        let (id, peer) = self.start(cfg, kernel_path, ramdisk_path)?;
        Ok(Created {
            id,
            warnings: parsed.warnings,
            peer,
        })
    }

    /// The domain an `evtchn_peer` names: an existing domain, by name or id.
    fn peer(&mut self, name: &str, peer: &str) -> Result<DomId, CreateError> {
        let failed = |why: String| CreateError::Peer {
            name: name.to_string(),
            peer: peer.to_string(),
            why,
        };
        let dom = cli::parse_dom(peer).map_err(|e| failed(e.0))?;
        let id = self
            .table
            .resolve(&dom)
            .ok_or_else(|| failed("no such domain".to_string()))?;
        match self.hv.domain_info(id) {
            Ok(_) => Ok(id),
            Err(XenError::Srch) => Err(failed(alloc::format!("domain {} does not exist", id.0))),
            Err(e) => Err(failed(alloc::format!("getdomaininfo: {e}"))),
        }
    }

    /// Builds, connects and unpauses a domain, and records it; returns its id and, with
    /// `evtchn_peer`, the peer and the peer's port offered to it.
    fn start(
        &mut self,
        config: DomainConfig,
        kernel_path: String,
        ramdisk_path: Option<String>,
    ) -> Result<(DomId, Option<(DomId, EvtchnPort)>), CreateError> {
        if let Some(id) = self.table.by_name(&config.name) {
            return Err(CreateError::DuplicateName {
                name: config.name,
                id,
            });
        }
        let peer = match config.evtchn_peer.as_deref() {
            Some(p) => Some(self.peer(&config.name, p)?),
            None => None,
        };
        let read = |p: &str| {
            self.files.read(p).map_err(|error| CreateError::File {
                path: p.to_string(),
                error,
            })
        };
        self.check_disks(&config.disks)
            .map_err(|why| CreateError::Disk {
                name: config.name.clone(),
                why,
            })?;
        let kernel = read(&kernel_path)?;
        let ramdisk = ramdisk_path.as_deref().map(read).transpose()?;
        self.created += 1;
        let mut handle = [0u8; 16];
        handle[..8].copy_from_slice(&self.created.to_le_bytes());
        handle[8..].copy_from_slice(b"dom0tool");
        let failed = |name: &str, error| CreateError::Build {
            name: name.to_string(),
            error,
        };
        let built = builder::build_linked(&mut self.hv, &config, kernel, ramdisk, handle, peer)
            .map_err(|e| match e {
                BuildError::Hypercall {
                    op: "createdomain",
                    error: XenError::NoSpc,
                    ..
                } => CreateError::NoRoom {
                    name: config.name.clone(),
                    vcpus: config.vcpus,
                },
                e => failed(&config.name, e),
            })?;
        let id = built.domid;
        let console = self
            .connect(id, built.console_frame, built.console_port)
            .and_then(|c| {
                let stored = self.connect_store(&config, &built, handle).and_then(|()| {
                    for d in &config.disks {
                        // Checked above; only a store failure remains.
                        self.attach_disk(id, d)
                            .map_err(|_| ("attach a disk", XenError::NoMem))?;
                    }
                    Ok(())
                });
                match stored
                    .and_then(|()| self.hv.unpause_domain(id).map_err(|e| ("unpausedomain", e)))
                {
                    Ok(()) => Ok(c),
                    Err(e) => {
                        self.release_disks(id);
                        self.disconnect_store(id);
                        let _ = self.hv.evtchn_close(c.port);
                        self.hv.unmap_console(c.ring);
                        Err(e)
                    }
                }
            });
        let console = match console {
            Ok(c) => c,
            Err((op, error)) => {
                let error = BuildError::Hypercall {
                    op,
                    error,
                    domid: Some(id),
                    cleanup: self.hv.destroy_domain(id),
                };
                return Err(failed(&config.name, error));
            }
        };
        self.consoles.insert(id.0, console);
        let record = Record {
            id,
            config,
            kernel_path,
            ramdisk_path,
            state: State::Running,
            handled: false,
            started_ms: self.now_ms,
            fast_crashes: 0,
            restart_at: None,
        };
        // The name was checked above and nothing ran in between.
        let _ = self.table.insert(record);
        Ok((id, peer.zip(built.peer_port)))
    }

    /// Binds to the domain's console port and maps its ring.
    fn connect(
        &mut self,
        id: DomId,
        frame: Mfn,
        port: EvtchnPort,
    ) -> Result<Console<H::Ring>, (&'static str, XenError)> {
        let local = self
            .hv
            .evtchn_bind_interdomain(id, port)
            .map_err(|e| ("evtchn_bind_interdomain", e))?;
        match self.hv.map_console(id, frame) {
            Ok(ring) => Ok(Console::new(ring, local)),
            Err(e) => {
                let _ = self.hv.evtchn_close(local);
                Err(("map the console ring", e))
            }
        }
    }

    /// Destroys a domain and forgets it.
    fn destroy(&mut self, id: DomId) -> Result<(), ToolError> {
        self.refuse_dom0(id, "destroy")?;
        if let Some(r) = self.table.get_mut(id) {
            r.state = State::Dying;
        }
        // As libxl: the devices go first, so no mapping of the domain's pages outlives it.
        self.release_disks(id);
        match self.hv.destroy_domain(id) {
            Ok(()) | Err(XenError::Srch) => {}
            Err(e) => return Err(fail!("destroy domain {}: {e}", id.0)),
        }
        self.forget(id);
        Ok(())
    }

    /// Drops everything the toolstack holds for a domain that no longer exists; its last
    /// console output is queued for [`Self::poll_consoles`].
    fn forget(&mut self, id: DomId) {
        self.disconnect_store(id);
        let name = self.table.name_of(id).to_string();
        if let Some(mut c) = self.consoles.remove(&id.0) {
            let attached = self.attached == Some(id);
            c.poll(&name, attached, &mut self.console_out);
            c.flush(&name, &mut self.console_out);
            let _ = self.hv.evtchn_close(c.port);
            self.hv.unmap_console(c.ring);
        }
        if self.attached == Some(id) {
            self.console_out.extend_from_slice(
                alloc::format!("\n[detached: domain {} ({name}) is gone]\n", id.0).as_bytes(),
            );
            self.detach();
        }
        self.release_disks(id);
        self.table.remove(id);
    }

    fn pause(&mut self, dom: &DomRef, pause: bool) -> Result<Reply, ToolError> {
        let id = self.existing(dom)?;
        let (what, result) = if pause {
            self.refuse_dom0(id, "pause")?;
            ("pause", self.hv.pause_domain(id))
        } else {
            ("unpause", self.hv.unpause_domain(id))
        };
        result.map_err(|e| fail!("{what} {dom}: {e}"))?;
        if let Some(r) = self.table.get_mut(id) {
            r.state = if pause { State::Paused } else { State::Running };
        }
        Ok(Reply::default())
    }

    fn list(&mut self) -> Result<Reply, ToolError> {
        let infos = self
            .hv
            .list_domains()
            .map_err(|e| fail!("list: getdomaininfolist failed: {e}"))?;
        for info in &infos {
            if let Some(r) = self.table.get_mut(info.id) {
                r.state = State::of(info);
            }
        }
        Ok(Reply::text(domains::format_list(&infos, &self.table)))
    }

    fn info(&mut self) -> Result<Reply, ToolError> {
        let phys = self
            .hv
            .physinfo()
            .map_err(|e| fail!("info: physinfo failed: {e}"))?;
        let version = self
            .hv
            .version()
            .map_err(|e| fail!("info: xen_version failed: {e}"))?;
        let nr = self
            .hv
            .list_domains()
            .map_err(|e| fail!("info: getdomaininfolist failed: {e}"))?
            .len();
        Ok(Reply::text(domains::format_info(&phys, &version, nr)))
    }

    fn attach(&mut self, dom: &DomRef) -> Result<Reply, ToolError> {
        let id = self.existing(dom)?;
        if !self.consoles.contains_key(&id.0) {
            return Err(fail!(
                "domain {} has no console ring here (dom0's console is the hypervisor's)",
                id.0
            ));
        }
        self.attached = Some(id);
        // Show the unfinished line the domain is in the middle of (a prompt, usually).
        let name = self.table.name_of(id).to_string();
        if let Some(c) = self.consoles.get_mut(&id.0)
            && c.poll(&name, true, &mut self.console_out)
        {
            let _ = self.hv.evtchn_send(c.port);
        }
        Ok(Reply {
            output: alloc::format!(
                "Connected to domain {} ({name}); type Ctrl-] to detach\n",
                id.0
            ),
            wait: Some(Wait::Attached(id)),
        })
    }

    /// Drains every console ring: lines of the domains as `[name] line`, or while a
    /// console is attached, that domain's bytes as they are (the other domains' lines are
    /// held, up to [`HELD_OUTPUT`] bytes, and come out after the detach).
    pub fn poll_consoles(&mut self) -> Vec<u8> {
        let mut out = core::mem::take(&mut self.console_out);
        for (&id, c) in self.consoles.iter_mut() {
            let name = self.table.name_of(DomId(id));
            let attached = self.attached == Some(DomId(id));
            let sink = if self.attached.is_some() && !attached {
                &mut self.held
            } else {
                &mut out
            };
            if c.poll(name, attached, sink) {
                let _ = self.hv.evtchn_send(c.port);
            }
        }
        self.service_stores();
        let (log, more) = self.service_disks();
        self.disk_work = more;
        for line in log {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        if self.held.len() > HELD_OUTPUT {
            let cut = self.held.len() - HELD_OUTPUT;
            self.held.drain(..cut);
        }
        out
    }

    /// Leaves the attached console; what other domains printed meanwhile comes next.
    fn detach(&mut self) {
        self.attached = None;
        self.console_out.append(&mut self.held);
    }

    /// Bytes typed while attached: sent to the domain up to a Ctrl-], which detaches.
    pub fn console_input(&mut self, bytes: &[u8]) -> InputResult {
        let Some(id) = self.attached else {
            return InputResult {
                accepted: 0,
                detached: true,
            };
        };
        let (send, detach) = match bytes.iter().position(|&b| b == ESCAPE) {
            Some(i) => (&bytes[..i], true),
            None => (bytes, false),
        };
        let Some(c) = self.consoles.get_mut(&id.0) else {
            self.detach();
            return InputResult {
                accepted: 0,
                detached: true,
            };
        };
        let accepted = c.input(send);
        if accepted > 0 {
            let _ = self.hv.evtchn_send(c.port);
        }
        if detach {
            self.detach();
        }
        InputResult {
            accepted,
            detached: detach,
        }
    }

    /// Whether a `wait-for` is satisfied. Call [`Self::poll_consoles`] first, so that the
    /// latest output counts.
    pub fn wait_done(&mut self, wait: &Wait) -> bool {
        match wait {
            Wait::Sleep { .. } | Wait::PowerOff => true,
            Wait::Gone(id) => self.gone(*id),
            Wait::Attached(_) => self.attached.is_none(),
            Wait::Domain { dom, text } => {
                let Some(id) = self.table.resolve(dom) else {
                    return false;
                };
                if self.hv.domain_info(id).is_err() {
                    return false;
                }
                match text {
                    None => true,
                    Some(t) => self
                        .consoles
                        .get(&id.0)
                        .is_some_and(|c| c.has_printed(t.as_bytes())),
                }
            }
        }
    }

    /// `VIRQ_DOM_EXC`: finds the domains that stopped and applies their policy; one line
    /// per domain, like `Domain 3 (web) has shut down, reason code 0 (poweroff);
    /// destroying`.
    pub fn on_dom_exc(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        for id in self.table.ids() {
            let name = self.table.name_of(id).to_string();
            match self.hv.domain_info(id) {
                Err(XenError::Srch) => {
                    self.forget(id);
                    lines.push(alloc::format!("Domain {} ({name}) has disappeared", id.0));
                }
                Err(e) => lines.push(alloc::format!(
                    "Domain {} ({name}): getdomaininfo failed: {e}",
                    id.0
                )),
                Ok(info) => {
                    let state = State::of(&info);
                    let Some(record) = self.table.get_mut(id) else {
                        continue;
                    };
                    record.state = state;
                    if let (State::Shutdown(code), false) = (state, record.handled) {
                        self.store.domain_stopped();
                        lines.push(self.apply_policy(id, code));
                    }
                }
            }
        }
        lines
    }

    /// Applies a stopped domain's action; returns the line that says what happened.
    fn apply_policy(&mut self, id: DomId, code: u32) -> String {
        let Some(record) = self.table.get(id) else {
            return String::new();
        };
        let cfg = &record.config;
        let reason = ShutdownReason::from_raw(code);
        let action = match reason {
            Some(ShutdownReason::Poweroff) => Some(cfg.on_poweroff),
            Some(ShutdownReason::Reboot | ShutdownReason::SoftReset) => Some(cfg.on_reboot),
            Some(ShutdownReason::Crash) => Some(cfg.on_crash),
            Some(ShutdownReason::Watchdog) => Some(cfg.on_watchdog),
            Some(ShutdownReason::Suspend) => None,
            None => Some(config::Action::Destroy),
        };
        let head = alloc::format!(
            "Domain {} ({}) has shut down, reason code {code} ({})",
            id.0,
            record.name(),
            reason.map_or("unknown", reason_name)
        );
        let Some(action) = action else {
            if let Some(r) = self.table.get_mut(id) {
                r.handled = true;
            }
            return alloc::format!("{head}; leaving it suspended");
        };
        match action.effect() {
            Effect::Preserve => {
                if let Some(r) = self.table.get_mut(id) {
                    r.handled = true;
                }
                alloc::format!("{head}; preserving it")
            }
            Effect::Destroy => match self.destroy(id) {
                Ok(()) => alloc::format!("{head}; destroying"),
                Err(e) => alloc::format!("{head}; destroying failed: {e}"),
            },
            Effect::Restart => {
                let now = self.now_ms;
                let Some(r) = self.table.get_mut(id) else {
                    return head;
                };
                r.handled = true;
                let fast = now.saturating_sub(r.started_ms) < FAST_CRASH_MS;
                r.fast_crashes = match reason {
                    Some(ShutdownReason::Crash) if fast => r.fast_crashes + 1,
                    _ => 0,
                };
                if r.fast_crashes >= FAST_CRASH_LIMIT {
                    return alloc::format!(
                        "{head}; it crashed {FAST_CRASH_LIMIT} times in a row within {} s of \
                         starting: not restarting it, leaving it crashed",
                        FAST_CRASH_MS / 1000
                    );
                }
                r.restart_at = Some(now + RESTART_DELAY_MS);
                alloc::format!("{head}; restarting in {} s", RESTART_DELAY_MS / 1000)
            }
        }
    }
}

/// The short name of a shutdown reason (`poweroff`, `reboot`, ...).
fn reason_name(reason: ShutdownReason) -> &'static str {
    let name = reason.c_name();
    name.strip_prefix("SHUTDOWN_").unwrap_or(name)
}

#[cfg(test)]
mod disk_tests;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tests;
