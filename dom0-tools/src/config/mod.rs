//! Domain configuration files in xl's syntax (a subset of `xl.cfg(5)`).
//!
//! [`parse`] reads a file and the `key=value` overrides given after it on the command line
//! (`create FILE memory=64`), exactly as `xl create` does: the overrides are read as more
//! lines after the file, so they win. An override whose value is not valid xl syntax is
//! taken as a bare string (`name=web` works without quotes).
//!
//! Keys: `name`, `memory` and `maxmem` (MiB), `vcpus`, `kernel`, `ramdisk`, `cmdline`,
//! `root`, `extra`, `on_poweroff`, `on_reboot`, `on_crash`, `on_watchdog`, `evtchn_peer` (ours:
//! see [`DomainConfig::evtchn_peer`]), `type` (only
//! `"pv"`). Unknown keys give a warning, not an error. Defaults are libxl's: 32 MiB, maxmem
//! = memory, one vCPU, `on_reboot = "restart"`, every other action `"destroy"`.

pub mod disk;
mod syntax;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

pub use syntax::{Atom, Setting, Value, parse_number};

/// The name `list` gives dom0, as xl does (a configuration may not take it).
pub const DOM0_NAME: &str = "Domain-0";

/// Where an error in a configuration file or override is, and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name (or `command line` for an override).
    pub file: String,
    /// Line (1-based); 0 when the error is about the file as a whole.
    pub line: u32,
    /// Column (1-based); 0 when unknown.
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn at(file: &str, line: u32, column: u32, message: String) -> Self {
        Self {
            file: file.to_string(),
            line,
            column,
            message,
        }
    }

    fn whole(file: &str, message: String) -> Self {
        Self::at(file, 0, 0, message)
    }

    fn setting(file: &str, s: &Setting, message: String) -> Self {
        Self::at(file, s.line, s.column, message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl core::error::Error for ConfigError {}

/// What to do when a domain stops (`on_poweroff` etc.): xl's set of actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Destroy the domain.
    Destroy,
    /// Destroy it and start it again from its configuration.
    Restart,
    /// Keep the old domain under another name and start a new one (here: as `Restart`).
    RenameRestart,
    /// Leave the stopped domain in place until `destroy`.
    Preserve,
    /// Dump core, then destroy (here: no core dump is written).
    CoredumpDestroy,
    /// Dump core, then restart (here: no core dump is written).
    CoredumpRestart,
}

/// What an [`Action`] amounts to in this toolstack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Destroy the domain.
    Destroy,
    /// Destroy it and create it again.
    Restart,
    /// Keep it, stopped.
    Preserve,
}

impl Action {
    const ALL: [Self; 6] = [
        Self::Destroy,
        Self::Restart,
        Self::RenameRestart,
        Self::Preserve,
        Self::CoredumpDestroy,
        Self::CoredumpRestart,
    ];

    /// The name xl uses.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Destroy => "destroy",
            Self::Restart => "restart",
            Self::RenameRestart => "rename-restart",
            Self::Preserve => "preserve",
            Self::CoredumpDestroy => "coredump-destroy",
            Self::CoredumpRestart => "coredump-restart",
        }
    }

    /// The action named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// What the action does here.
    pub const fn effect(self) -> Effect {
        match self {
            Self::Destroy | Self::CoredumpDestroy => Effect::Destroy,
            Self::Restart | Self::RenameRestart | Self::CoredumpRestart => Effect::Restart,
            Self::Preserve => Effect::Preserve,
        }
    }
}

/// Longest domain name accepted.
pub const MAX_NAME_LEN: usize = 64;
/// Most vCPUs a domain may have: the hypervisor's per-domain cap (`XEN_LEGACY_MAX_VCPUS`,
/// the `vcpu_info` slots of the shared info page).
pub const MAX_VCPUS: u32 = 32;
/// Most domUs the hypervisor runs at once (64 domains with dom0).
pub const MAX_DOMUS: u32 = 63;
/// Most vCPUs the hypervisor runs at once, over every domain (dom0's among them).
pub const MAX_VCPUS_IN_ALL: u32 = 64;
/// Largest `memory`/`maxmem` accepted, in MiB (1 TiB).
pub const MAX_MEMORY_MIB: u64 = 1 << 20;
/// `memory` when the file does not say (libxl's default).
pub const DEFAULT_MEMORY_MIB: u64 = 32;

/// A checked domain configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// The domain's name.
    pub name: String,
    /// Memory at start, MiB.
    pub memory_mib: u64,
    /// Memory limit, MiB (at least `memory_mib`).
    pub maxmem_mib: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// Path of the kernel, as written.
    pub kernel: String,
    /// Path of the ramdisk, as written.
    pub ramdisk: Option<String>,
    /// The kernel command line (`cmdline`, or `root=` and `extra` combined as xl does).
    pub cmdline: String,
    /// `on_poweroff`.
    pub on_poweroff: Action,
    /// `on_reboot`.
    pub on_reboot: Action,
    /// `on_crash`.
    pub on_crash: Action,
    /// `on_watchdog`.
    pub on_watchdog: Action,
    /// `evtchn_peer` (an extension of ours): the domain, by name or id, that gets an event
    /// channel to this one before it starts.
    pub evtchn_peer: Option<String>,
    /// `disk = [ ... ]`: the disks attached at create, in order.
    pub disks: Vec<disk::DiskSpec>,
}

/// A configuration and the warnings found reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The configuration.
    pub config: DomainConfig,
    /// One line per warning (unknown keys, ignored settings).
    pub warnings: Vec<String>,
}

/// The file name given to errors in command-line overrides.
pub const OVERRIDE_SOURCE: &str = "command line";

const KNOWN_KEYS: &[&str] = &[
    "name",
    "memory",
    "maxmem",
    "vcpus",
    "kernel",
    "ramdisk",
    "cmdline",
    "root",
    "extra",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_watchdog",
    "type",
    "evtchn_peer",
    "disk",
];

/// Whether `name` is a valid domain name: 1 to [`MAX_NAME_LEN`] characters from
/// `A-Z a-z 0-9 . _ - : +`, not all digits (a number means a domain id on the command
/// line, as with xl), and not `Domain-0`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the domain name is empty".to_string());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(alloc::format!(
            "the domain name is longer than {MAX_NAME_LEN} characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || ".-_:+".contains(c)))
    {
        return Err(alloc::format!(
            "invalid character {} in domain name '{name}' (use letters, digits and . _ - : +)",
            syntax::show_char(c)
        ));
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(alloc::format!(
            "domain name '{name}' is all digits (it would read as a domain id)"
        ));
    }
    if name == DOM0_NAME {
        return Err(alloc::format!("domain name '{name}' is reserved for dom0"));
    }
    Ok(())
}

/// The settings of a file, looked up by key.
struct Settings<'a> {
    file: &'a str,
    list: &'a [Setting],
}

impl Settings<'_> {
    fn last(&self, key: &str) -> Option<&Setting> {
        self.list.iter().rev().find(|s| s.key == key)
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(s) = self.last(key) else {
            return Ok(None);
        };
        match &s.value {
            Value::Atom(a) => Ok(Some(a.as_str().to_string())),
            Value::List(_) => Err(ConfigError::setting(
                self.file,
                s,
                alloc::format!("'{key}' must be a string, not a list"),
            )),
        }
    }

    fn number(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        let Some(s) = self.last(key) else {
            return Ok(None);
        };
        match &s.value {
            Value::Atom(Atom::Num { value, .. }) => Ok(Some(*value)),
            Value::Atom(Atom::Str(text)) => parse_number(text.trim()).map(Some).ok_or_else(|| {
                ConfigError::setting(
                    self.file,
                    s,
                    alloc::format!("'{key}' must be a number, found \"{text}\""),
                )
            }),
            Value::List(_) => Err(ConfigError::setting(
                self.file,
                s,
                alloc::format!("'{key}' must be a number, not a list"),
            )),
        }
    }

    fn action(&self, key: &str, default: Action) -> Result<Action, ConfigError> {
        let Some(name) = self.string(key)? else {
            return Ok(default);
        };
        Action::from_name(&name).ok_or_else(|| {
            self.error(
                key,
                alloc::format!(
                    "invalid value '{name}' for '{key}' (use destroy, restart, rename-restart, \
                     preserve, coredump-destroy or coredump-restart)"
                ),
            )
        })
    }

    /// `disk = [ 'SPEC', ... ]`: each spec parsed, no guest device named twice.
    fn disks(&self, key: &str) -> Result<Vec<disk::DiskSpec>, ConfigError> {
        let Some(s) = self.last(key) else {
            return Ok(Vec::new());
        };
        let Value::List(items) = &s.value else {
            return Err(self.error(
                key,
                alloc::format!("'{key}' must be a list: {key} = [ '...' ]"),
            ));
        };
        let mut disks: Vec<disk::DiskSpec> = Vec::new();
        for item in items {
            let d = disk::parse(item.as_str()).map_err(|e| self.error(key, e.to_string()))?;
            if disks.iter().any(|o| o.devid == d.devid) {
                return Err(self.error(key, alloc::format!("disk {} is given twice", d.vdev)));
            }
            disks.push(d);
        }
        Ok(disks)
    }

    fn error(&self, key: &str, message: String) -> ConfigError {
        match self.last(key) {
            Some(s) => ConfigError::setting(self.file, s, message),
            None => ConfigError::whole(self.file, message),
        }
    }
}

/// Splits an override `key=value` and, when the value is not xl syntax, quotes it.
fn override_line(arg: &str, index: u32) -> Result<String, ConfigError> {
    let Some((key, value)) = arg.split_once('=') else {
        return Err(ConfigError::at(
            OVERRIDE_SOURCE,
            index,
            1,
            alloc::format!("expected key=value, found '{arg}'"),
        ));
    };
    let line = alloc::format!("{key}={value}");
    let mut scratch = Vec::new();
    let starts_like_xl = value
        .trim_start()
        .starts_with(|c: char| c.is_ascii_digit() || "\"'[".contains(c));
    if starts_like_xl || syntax::parse_settings(OVERRIDE_SOURCE, &line, index, &mut scratch).is_ok()
    {
        return Ok(line);
    }
    let mut escaped = String::new();
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                escaped.push('\\');
                escaped.push(c);
            }
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    Ok(alloc::format!("{key}=\"{escaped}\""))
}

/// Reads a configuration file and its command-line overrides, and checks the result.
pub fn parse(file: &str, text: &str, overrides: &[&str]) -> Result<Parsed, ConfigError> {
    let mut settings = Vec::new();
    syntax::parse_settings(file, text, 1, &mut settings)?;
    let from_file = settings.len();
    for (i, arg) in overrides.iter().enumerate() {
        let index = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let line = override_line(arg, index)?;
        syntax::parse_settings(OVERRIDE_SOURCE, &line, index, &mut settings)?;
    }
    // Errors in settings are reported against the file or the override they came from.
    let (file_part, override_part) = settings.split_at(from_file);
    let mut warnings = Vec::new();
    for (part, source) in [(file_part, file), (override_part, OVERRIDE_SOURCE)] {
        for s in part {
            if !KNOWN_KEYS.contains(&s.key.as_str()) {
                warnings.push(alloc::format!(
                    "{source}:{}: warning: unknown setting '{}' ignored",
                    s.line,
                    s.key
                ));
            }
        }
    }
    let source_of = |key: &str| {
        if override_part.iter().any(|s| s.key == key) {
            OVERRIDE_SOURCE
        } else {
            file
        }
    };
    // One lookup table per source would repeat every getter; instead each key is read
    // from the merged list and reported against the source of its last setting.
    let get = |key: &str| Settings {
        file: source_of(key),
        list: &settings,
    };
    let config = read_config(file, &get, &mut warnings)?;
    Ok(Parsed { config, warnings })
}

fn read_config<'a>(
    file: &str,
    get: &impl Fn(&str) -> Settings<'a>,
    warnings: &mut Vec<String>,
) -> Result<DomainConfig, ConfigError> {
    if let Some(t) = get("type").string("type")?.filter(|t| t != "pv") {
        return Err(get("type").error(
            "type",
            alloc::format!("type \"{t}\" is not supported: only PV guests can be built"),
        ));
    }
    let name = get("name").string("name")?.ok_or_else(|| {
        ConfigError::whole(file, "no domain name: set name = \"...\"".to_string())
    })?;
    check_name(&name).map_err(|m| get("name").error("name", m))?;

    let memory_mib = get("memory")
        .number("memory")?
        .unwrap_or(DEFAULT_MEMORY_MIB);
    if memory_mib == 0 {
        return Err(get("memory").error("memory", "memory must be greater than 0".to_string()));
    }
    let maxmem_mib = get("maxmem").number("maxmem")?.unwrap_or(memory_mib);
    for (key, v) in [("memory", memory_mib), ("maxmem", maxmem_mib)] {
        if v > MAX_MEMORY_MIB {
            return Err(get(key).error(
                key,
                alloc::format!("{key} = {v} MiB is more than the {MAX_MEMORY_MIB} MiB allowed"),
            ));
        }
    }
    if maxmem_mib < memory_mib {
        return Err(get("maxmem").error(
            "maxmem",
            alloc::format!("maxmem ({maxmem_mib} MiB) is less than memory ({memory_mib} MiB)"),
        ));
    }
    let vcpus = get("vcpus").number("vcpus")?.unwrap_or(1);
    if vcpus == 0 || vcpus > u64::from(MAX_VCPUS) {
        return Err(get("vcpus").error(
            "vcpus",
            alloc::format!(
                "vcpus must be between 1 and {MAX_VCPUS} (the hypervisor's limit per domain), \
                 not {vcpus}"
            ),
        ));
    }
    let kernel = get("kernel").string("kernel")?.unwrap_or_default();
    if kernel.is_empty() {
        return Err(get("kernel").error(
            "kernel",
            "no kernel: set kernel = \"PATH\" (a Xen PV kernel in the dom0 archive)".to_string(),
        ));
    }
    let ramdisk = get("ramdisk").string("ramdisk")?.filter(|r| !r.is_empty());
    let cmdline = command_line(
        get("cmdline").string("cmdline")?,
        get("root").string("root")?,
        get("extra").string("extra")?,
        file,
        warnings,
    );
    Ok(DomainConfig {
        name,
        memory_mib,
        maxmem_mib,
        vcpus: vcpus as u32,
        kernel,
        ramdisk,
        cmdline,
        on_poweroff: get("on_poweroff").action("on_poweroff", Action::Destroy)?,
        on_reboot: get("on_reboot").action("on_reboot", Action::Restart)?,
        on_crash: get("on_crash").action("on_crash", Action::Destroy)?,
        on_watchdog: get("on_watchdog").action("on_watchdog", Action::Destroy)?,
        evtchn_peer: get("evtchn_peer")
            .string("evtchn_peer")?
            .filter(|p| !p.is_empty()),
        disks: get("disk").disks("disk")?,
    })
}

/// xl's `parse_cmdline`: `cmdline` wins over `root` and `extra`; otherwise the command line
/// is `root=ROOT EXTRA`, `root=ROOT` or `EXTRA`.
fn command_line(
    cmdline: Option<String>,
    root: Option<String>,
    extra: Option<String>,
    file: &str,
    warnings: &mut Vec<String>,
) -> String {
    match (cmdline, root, extra) {
        (Some(c), root, extra) => {
            if root.is_some() || extra.is_some() {
                warnings.push(alloc::format!(
                    "{file}: warning: ignoring root= and extra= in favour of cmdline="
                ));
            }
            c
        }
        (None, Some(r), Some(e)) => alloc::format!("root={r} {e}"),
        (None, Some(r), None) => alloc::format!("root={r}"),
        (None, None, Some(e)) => e,
        (None, None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests;
