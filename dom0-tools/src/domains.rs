//! The toolstack's table of the domains it created, and the `list` and `info` reports.
//!
//! Names live only here (there is no xenstore): the hypervisor knows domains by id. The
//! table refuses a second domain with a name already in use; `Domain-0` is dom0's.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use guest_abi::DomId;
use guest_abi::domctl::DominfFlags;

use crate::cli::DomRef;
use crate::config::{DOM0_NAME, DomainConfig};
use crate::hv::{DomainInfo, PhysInfo, VersionInfo};

/// The name `list` gives a domain the toolstack did not create.
pub const UNKNOWN_NAME: &str = "(unknown)";

/// A domain's state as the toolstack last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Running (or blocked, or runnable).
    Running,
    /// Paused by the toolstack.
    Paused,
    /// Shut down with this `SHUTDOWN_*` code, not yet destroyed (`preserve`).
    Shutdown(u32),
    /// Being destroyed.
    Dying,
}

impl State {
    /// The state a hypervisor report shows.
    pub fn of(info: &DomainInfo) -> Self {
        if info.flags.contains(DominfFlags::DYING) {
            Self::Dying
        } else if let Some(code) = info.shutdown() {
            Self::Shutdown(code)
        } else if info.flags.contains(DominfFlags::PAUSED) {
            Self::Paused
        } else {
            Self::Running
        }
    }
}

/// One domain the toolstack created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its id.
    pub id: DomId,
    /// Its configuration (what a restart builds again).
    pub config: DomainConfig,
    /// The kernel's path in the dom0 archive.
    pub kernel_path: String,
    /// The ramdisk's path in the dom0 archive.
    pub ramdisk_path: Option<String>,
    /// Its state when last seen.
    pub state: State,
    /// Whether its shutdown has been dealt with (it is being preserved, left crashed, or
    /// waits for its restart).
    pub handled: bool,
    /// When it was started (the toolstack's clock, milliseconds).
    pub started_ms: u64,
    /// Crashes in a row each within `toolstack::FAST_CRASH_MS` of a start (carried over
    /// restarts).
    pub fast_crashes: u32,
    /// When it is to be restarted, if it waits for a restart.
    pub restart_at: Option<u64>,
}

impl Record {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }
}

/// The domains the toolstack created, by id.
#[derive(Clone, Debug, Default)]
pub struct DomainTable {
    records: BTreeMap<u16, Record>,
}

impl DomainTable {
    /// Adds a domain; refuses a name already in use (and returns the domain using it).
    pub fn insert(&mut self, record: Record) -> Result<(), DomId> {
        if let Some(id) = self.by_name(record.name()) {
            return Err(id);
        }
        self.records.insert(record.id.0, record);
        Ok(())
    }

    /// Removes a domain.
    pub fn remove(&mut self, id: DomId) -> Option<Record> {
        self.records.remove(&id.0)
    }

    /// A domain's record.
    pub fn get(&self, id: DomId) -> Option<&Record> {
        self.records.get(&id.0)
    }

    /// A domain's record, to update.
    pub fn get_mut(&mut self, id: DomId) -> Option<&mut Record> {
        self.records.get_mut(&id.0)
    }

    /// The id of the domain called `name` (`Domain-0` is 0).
    pub fn by_name(&self, name: &str) -> Option<DomId> {
        if name == DOM0_NAME {
            return Some(DomId(0));
        }
        self.records
            .values()
            .find(|r| r.name() == name)
            .map(|r| r.id)
    }

    /// The name of domain `id`.
    pub fn name_of(&self, id: DomId) -> &str {
        match self.records.get(&id.0) {
            _ if id.0 == 0 => DOM0_NAME,
            Some(r) => r.name(),
            None => UNKNOWN_NAME,
        }
    }

    /// The id a command-line domain names; `None` for an unknown name. Ids are taken as
    /// they are: the hypervisor says whether they exist.
    pub fn resolve(&self, dom: &DomRef) -> Option<DomId> {
        match dom {
            DomRef::Id(id) => Some(*id),
            DomRef::Name(name) => self.by_name(name),
        }
    }

    /// The ids, in order.
    pub fn ids(&self) -> Vec<DomId> {
        self.records.values().map(|r| r.id).collect()
    }

    /// Number of domains in the table (dom0 is not).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// `xl list`'s six state letters: running, blocked, paused, shut down, the shutdown
/// reason (`-rscwS` for poweroff, reboot, suspend, crash, watchdog, soft reset; `?`
/// beyond), dying.
pub fn state_letters(info: &DomainInfo) -> String {
    const REASONS: &[u8] = b"-rscwS";
    let flag = |f: DominfFlags, c: char| if info.flags.contains(f) { c } else { '-' };
    let reason = match info.shutdown() {
        None => '-',
        Some(code) => REASONS.get(code as usize).map_or('?', |&b| char::from(b)),
    };
    [
        flag(DominfFlags::RUNNING, 'r'),
        flag(DominfFlags::BLOCKED, 'b'),
        flag(DominfFlags::PAUSED, 'p'),
        flag(DominfFlags::SHUTDOWN, 's'),
        reason,
        flag(DominfFlags::DYING, 'd'),
    ]
    .iter()
    .collect()
}

/// The `list` report, in `xl list`'s format: `Name ID Mem VCPUs State Time(s)`.
pub fn format_list(infos: &[DomainInfo], table: &DomainTable) -> String {
    let mut out = String::from(
        "Name                                        ID   Mem VCPUs\tState\tTime(s)\n",
    );
    for info in infos {
        // Time in tenths of a second, rounded like printf's %.1f.
        let tenths = info.cpu_time_ns.saturating_add(50_000_000) / 100_000_000;
        let time = alloc::format!("{}.{}", tenths / 10, tenths % 10);
        let _ = writeln!(
            out,
            "{:<40} {:>5} {:>5} {:>5}     {}  {:>8}",
            table.name_of(info.id),
            info.id.0,
            info.mem_mib(),
            info.online_vcpus,
            state_letters(info),
            time
        );
    }
    out
}

/// The `info` report, in `xl info`'s `key : value` format (a subset, plus `nr_domains`).
pub fn format_info(phys: &PhysInfo, version: &VersionInfo, nr_domains: usize) -> String {
    let mib = |pages: u64| pages * guest_abi::PAGE_SIZE / (1 << 20);
    let rows: [(&str, String); 11] = [
        ("machine", "x86_64".to_string()),
        ("nr_cpus", phys.nr_cpus.to_string()),
        ("total_memory", mib(phys.total_pages).to_string()),
        ("free_memory", mib(phys.free_pages).to_string()),
        // Not in xl: the exact figure, for checking that memory comes back.
        ("free_pages", phys.free_pages.to_string()),
        ("nr_domains", nr_domains.to_string()),
        ("xen_major", version.major.to_string()),
        ("xen_minor", version.minor.to_string()),
        ("xen_extra", version.extra.clone()),
        (
            "xen_version",
            alloc::format!("{}.{}{}", version.major, version.minor, version.extra),
        ),
        ("xen_caps", "xen-3.0-x86_64".to_string()),
    ];
    let mut out = String::new();
    for (key, value) in rows {
        let _ = writeln!(out, "{key:<23}: {value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_abi::Mfn;

    fn info(id: u16, flags: DominfFlags, code: u32) -> DomainInfo {
        DomainInfo {
            id: DomId(id),
            flags,
            shutdown_code: code,
            tot_pages: 16384,
            max_pages: 16384,
            shared_info_frame: Mfn(0),
            cpu_time_ns: 1_949_999_999,
            online_vcpus: 2,
        }
    }

    fn record(id: u16, name: &str) -> Record {
        let cfg = crate::config::parse("c", &alloc::format!("name='{name}'\nkernel='k'"), &[])
            .unwrap()
            .config;
        Record {
            id: DomId(id),
            config: cfg,
            kernel_path: "k".into(),
            ramdisk_path: None,
            state: State::Running,
            handled: false,
            started_ms: 0,
            fast_crashes: 0,
            restart_at: None,
        }
    }

    #[test]
    fn names_resolve_and_duplicates_are_refused() {
        let mut t = DomainTable::default();
        t.insert(record(3, "web")).unwrap();
        assert_eq!(t.insert(record(4, "web")), Err(DomId(3)));
        t.insert(record(4, "db")).unwrap();
        assert_eq!(t.resolve(&DomRef::Name("db".into())), Some(DomId(4)));
        assert_eq!(t.resolve(&DomRef::Name("Domain-0".into())), Some(DomId(0)));
        assert_eq!(t.resolve(&DomRef::Name("nope".into())), None);
        assert_eq!(t.resolve(&DomRef::Id(DomId(9))), Some(DomId(9)));
        assert_eq!(t.name_of(DomId(0)), "Domain-0");
        assert_eq!(t.name_of(DomId(9)), "(unknown)");
        assert_eq!(t.ids(), [DomId(3), DomId(4)]);
        assert_eq!(t.remove(DomId(3)).unwrap().name(), "web");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn state_letters_follow_xl() {
        assert_eq!(state_letters(&info(1, DominfFlags::RUNNING, 0)), "r-----");
        assert_eq!(state_letters(&info(1, DominfFlags::BLOCKED, 0)), "-b----");
        assert_eq!(state_letters(&info(1, DominfFlags::PAUSED, 0)), "--p---");
        assert_eq!(state_letters(&info(1, DominfFlags::SHUTDOWN, 0)), "---s--");
        assert_eq!(state_letters(&info(1, DominfFlags::SHUTDOWN, 3)), "---sc-");
        assert_eq!(state_letters(&info(1, DominfFlags::SHUTDOWN, 1)), "---sr-");
        assert_eq!(state_letters(&info(1, DominfFlags::SHUTDOWN, 9)), "---s?-");
        assert_eq!(state_letters(&info(1, DominfFlags::DYING, 0)), "-----d");
        assert_eq!(
            State::of(&info(1, DominfFlags::SHUTDOWN, 3)),
            State::Shutdown(3)
        );
        assert_eq!(State::of(&info(1, DominfFlags::PAUSED, 0)), State::Paused);
        assert_eq!(
            State::of(&info(1, DominfFlags::DYING | DominfFlags::SHUTDOWN, 0)),
            State::Dying
        );
    }

    #[test]
    fn list_is_formatted_like_xl_list() {
        let mut t = DomainTable::default();
        t.insert(record(3, "web")).unwrap();
        let text = format_list(
            &[
                info(0, DominfFlags::RUNNING, 0),
                info(3, DominfFlags::BLOCKED, 0),
            ],
            &t,
        );
        let want = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
                    Domain-0                                     0    64     2     r-----       1.9\n\
                    web                                          3    64     2     -b----       1.9\n";
        assert_eq!(text, want);
    }

    #[test]
    fn info_is_formatted_like_xl_info() {
        let phys = PhysInfo {
            nr_cpus: 1,
            total_pages: 131072,
            free_pages: 65536,
        };
        let version = VersionInfo {
            major: 4,
            minor: 17,
            extra: ".0".into(),
        };
        let text = format_info(&phys, &version, 3);
        assert!(text.contains("total_memory           : 512\n"));
        assert!(text.contains("free_memory            : 256\n"));
        assert!(text.contains("free_pages             : 65536\n"), "{text}");
        assert!(text.contains("nr_domains             : 3\n"));
        assert!(text.contains("xen_version            : 4.17.0\n"));
    }
}
