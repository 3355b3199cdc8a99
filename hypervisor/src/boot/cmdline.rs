//! The hypervisor command line, in Xen's syntax: space-separated `name`, `name=value`, and
//! `no-name`/`noname` for booleans. Unknown options are reported to the caller and ignored.

use crate::console::log::LogLevel;

/// A memory amount as Xen writes it: a size, or "all but" a size when prefixed with `-`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemAmount {
    /// Exactly this many bytes.
    Bytes(u64),
    /// All available memory except this many bytes.
    AllBut(u64),
}

/// `dom0_mem=` as Xen accepts it: a comma list of `<sz>`, `min:<sz>`, `max:<sz>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dom0Mem {
    /// The initial allocation.
    pub amount: Option<MemAmount>,
    /// Lower bound on the allocation.
    pub min: Option<MemAmount>,
    /// Upper bound on the allocation (and the domain's maximum).
    pub max: Option<MemAmount>,
}

impl Dom0Mem {
    /// dom0's default size when `dom0_mem=` does not give one.
    pub const DEFAULT_BYTES: u64 = 256 << 20;
    /// Memory kept back for the hypervisor when dom0's size is "all but" something.
    pub const HYPERVISOR_RESERVE_BYTES: u64 = 16 << 20;

    /// The number of 4 KiB pages dom0 gets out of `free_pages`.
    pub fn pages(&self, free_pages: u64) -> u64 {
        const PAGE: u64 = 4096;
        let avail = free_pages.saturating_sub(Self::HYPERVISOR_RESERVE_BYTES / PAGE);
        let resolve = |a: MemAmount| match a {
            MemAmount::Bytes(b) => b / PAGE,
            MemAmount::AllBut(b) => avail.saturating_sub(b / PAGE),
        };
        let mut pages = self
            .amount
            .map_or((Self::DEFAULT_BYTES / PAGE).min(avail), resolve);
        if let Some(min) = self.min {
            pages = pages.max(resolve(min));
        }
        if let Some(max) = self.max {
            pages = pages.min(resolve(max));
        }
        pages.min(avail)
    }
}

/// Which deliberate failure `panic-test` triggers (for testing the crash path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanicTest {
    /// A page fault on an unmapped address: exercises the exception dump.
    Fault,
    /// A Rust `panic!`: exercises the panic handler.
    Panic,
    /// Unbounded recursion into the stack guard page: exercises the double-fault IST stack.
    StackOverflow,
}

/// Parsed hypervisor options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Output on COM1 (`console=com1`); `console=none` silences the serial console.
    pub serial_console: bool,
    /// Output mirrored on the VGA text screen too (`console=vga`, e.g. `console=com1,vga`).
    pub vga_console: bool,
    /// The most verbose level printed (`loglvl=`).
    pub loglvl: LogLevel,
    /// dom0's memory (`dom0_mem=`).
    pub dom0_mem: Dom0Mem,
    /// Halt instead of rebooting after a crash (`noreboot`).
    pub noreboot: bool,
    /// Deliberately crash after boot (`panic-test[=fault|panic|stack]`).
    pub panic_test: Option<PanicTest>,
    /// Print the longest exit per kind when dom0 shuts down (`exit-times`; the debug key `e`
    /// prints it at any time).
    pub exit_times: bool,
    /// The most CPUs started, the boot CPU included (`maxcpus=`, as Xen's); all by default.
    pub maxcpus: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            serial_console: true,
            vga_console: false,
            loglvl: LogLevel::Info,
            dom0_mem: Dom0Mem::default(),
            noreboot: false,
            panic_test: None,
            exit_times: false,
            maxcpus: None,
        }
    }
}

/// Something on the command line that was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineWarning<'a> {
    /// An option this hypervisor does not know.
    Unknown(&'a str),
    /// A known option with a value it cannot use.
    BadValue {
        /// The option's name.
        option: &'a str,
        /// The rejected value.
        value: &'a str,
    },
}

impl core::fmt::Display for CmdlineWarning<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unknown(opt) => write!(f, "unknown command-line option '{opt}' ignored"),
            Self::BadValue { option, value } => {
                write!(f, "bad value '{value}' for option '{option}' ignored")
            }
        }
    }
}

impl Options {
    /// Parses `cmdline`, calling `warn` for every option that is not applied.
    pub fn parse<'a>(cmdline: &'a str, mut warn: impl FnMut(CmdlineWarning<'a>)) -> Self {
        let mut opts = Self::default();
        for word in cmdline.split_ascii_whitespace() {
            let (name, value) = match word.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (word, None),
            };
            let bad = CmdlineWarning::BadValue {
                option: name,
                value: value.unwrap_or(""),
            };
            match (name, value) {
                ("console", Some(v)) => match parse_console(v) {
                    Some((serial, vga)) => (opts.serial_console, opts.vga_console) = (serial, vga),
                    None => warn(bad),
                },
                ("loglvl", Some(v)) => {
                    // Xen accepts `level/rate-limited-level`; we have no rate limiting.
                    let level = v.split('/').next().unwrap_or(v);
                    match LogLevel::from_name(level) {
                        Some(l) => opts.loglvl = l,
                        None => warn(bad),
                    }
                }
                ("dom0_mem", Some(v)) => match parse_dom0_mem(v) {
                    Some(m) => opts.dom0_mem = m,
                    None => warn(bad),
                },
                ("noreboot", None) | ("no-reboot", None) => opts.noreboot = true,
                ("reboot", None) => opts.noreboot = false,
                ("exit-times", None) => opts.exit_times = true,
                ("maxcpus", Some(v)) => match v.parse::<u32>() {
                    Ok(n) if n >= 1 => opts.maxcpus = Some(n),
                    _ => warn(bad),
                },
                ("panic-test", None) => opts.panic_test = Some(PanicTest::Fault),
                ("panic-test", Some("fault")) => opts.panic_test = Some(PanicTest::Fault),
                ("panic-test", Some("panic")) => opts.panic_test = Some(PanicTest::Panic),
                ("panic-test", Some("stack")) => opts.panic_test = Some(PanicTest::StackOverflow),
                ("console" | "loglvl" | "dom0_mem" | "panic-test" | "maxcpus", _)
                | ("noreboot" | "no-reboot" | "reboot" | "exit-times", Some(_)) => warn(bad),
                _ => warn(CmdlineWarning::Unknown(word)),
            }
        }
        opts
    }
}

/// `console=` takes a comma list, as Xen's: `com1` turns the serial console on, `vga` the VGA
/// text screen, `none` neither; the answer is (serial, vga). Xen's other consoles (`dbgp`,
/// `com2`, ...) do not exist here and make the value invalid.
fn parse_console(v: &str) -> Option<(bool, bool)> {
    let (mut serial, mut vga) = (false, false);
    for item in v.split(',') {
        match item {
            "com1" => serial = true,
            "vga" => vga = true,
            "none" => {}
            _ => return None,
        }
    }
    Some((serial, vga))
}

fn parse_dom0_mem(v: &str) -> Option<Dom0Mem> {
    let mut mem = Dom0Mem::default();
    for item in v.split(',') {
        if let Some(sz) = item.strip_prefix("min:") {
            mem.min = Some(parse_amount(sz)?);
        } else if let Some(sz) = item.strip_prefix("max:") {
            mem.max = Some(parse_amount(sz)?);
        } else {
            mem.amount = Some(parse_amount(item)?);
        }
    }
    Some(mem)
}

fn parse_amount(s: &str) -> Option<MemAmount> {
    match s.strip_prefix('-') {
        Some(rest) => parse_size(rest).map(MemAmount::AllBut),
        None => parse_size(s).map(MemAmount::Bytes),
    }
}

/// Parses a size the way Xen does: a decimal or `0x` number with an optional `B`, `K`, `M`,
/// `G` or `T` suffix; a bare number is in KiB.
pub fn parse_size(s: &str) -> Option<u64> {
    let split = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_hexdigit() || (i == 1 && (c == 'x' || c == 'X'))))
        .map_or(s.len(), |(i, _)| i);
    // `b`/`B` is also a hex digit: in a decimal number a trailing one is the bytes suffix.
    let (mut digits, mut suffix) = s.split_at(split);
    let is_hex = digits.starts_with("0x") || digits.starts_with("0X");
    if !is_hex && suffix.is_empty() && (digits.ends_with('b') || digits.ends_with('B')) {
        suffix = &digits[digits.len() - 1..];
        digits = &digits[..digits.len() - 1];
    }
    let n = if is_hex {
        u64::from_str_radix(&digits[2..], 16).ok()?
    } else {
        digits.parse::<u64>().ok()?
    };
    let shift = match suffix {
        "" | "k" | "K" => 10,
        "b" | "B" => 0,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn parse(s: &str) -> (Options, Vec<CmdlineWarning<'_>>) {
        let mut w = Vec::new();
        let o = Options::parse(s, |x| w.push(x));
        (o, w)
    }

    #[test]
    fn empty_gives_defaults() {
        let (o, w) = parse("");
        assert_eq!(o, Options::default());
        assert!(w.is_empty());
    }

    #[test]
    fn known_options() {
        let (o, w) = parse("console=com1 loglvl=debug dom0_mem=512M noreboot");
        assert!(w.is_empty(), "{w:?}");
        assert!(o.serial_console);
        assert_eq!(o.loglvl, LogLevel::Debug);
        assert_eq!(o.dom0_mem.amount, Some(MemAmount::Bytes(512 << 20)));
        assert!(o.noreboot);
        assert_eq!(o.panic_test, None);
    }

    #[test]
    fn loglvl_with_rate_limit_part() {
        let (o, w) = parse("loglvl=warning/all");
        assert!(w.is_empty());
        assert_eq!(o.loglvl, LogLevel::Warning);
    }

    #[test]
    fn unknown_options_are_reported_and_ignored() {
        let (o, w) = parse("frobnicate=3 loglvl=error sched=credit2");
        assert_eq!(o.loglvl, LogLevel::Error);
        assert_eq!(
            w,
            [
                CmdlineWarning::Unknown("frobnicate=3"),
                CmdlineWarning::Unknown("sched=credit2")
            ]
        );
    }

    #[test]
    fn bad_values_keep_the_default() {
        let (o, w) = parse("loglvl=shouty dom0_mem=12Q console=dbgp noreboot=1 console");
        assert_eq!(o.loglvl, LogLevel::Info);
        assert_eq!(o.dom0_mem, Dom0Mem::default());
        assert!(o.serial_console);
        assert!(!o.noreboot);
        assert_eq!(w.len(), 5, "{w:?}");
        assert!(matches!(
            w[0],
            CmdlineWarning::BadValue {
                option: "loglvl",
                value: "shouty"
            }
        ));
    }

    #[test]
    fn dom0_mem_list_form() {
        let (o, w) = parse("dom0_mem=-256M,min:128M,max:1G");
        assert!(w.is_empty());
        assert_eq!(o.dom0_mem.amount, Some(MemAmount::AllBut(256 << 20)));
        assert_eq!(o.dom0_mem.min, Some(MemAmount::Bytes(128 << 20)));
        assert_eq!(o.dom0_mem.max, Some(MemAmount::Bytes(1 << 30)));
    }

    #[test]
    fn dom0_pages_from_options() {
        let free = 1 << 18; // 1 GiB of frames
        let reserve = Dom0Mem::HYPERVISOR_RESERVE_BYTES / 4096;
        assert_eq!(Dom0Mem::default().pages(free), 65536, "256 MiB by default");
        let (o, _) = parse("dom0_mem=128M");
        assert_eq!(o.dom0_mem.pages(free), 32768);
        let (o, _) = parse("dom0_mem=-512M");
        assert_eq!(o.dom0_mem.pages(free), free - reserve - 131072);
        let (o, _) = parse("dom0_mem=4G");
        assert_eq!(
            o.dom0_mem.pages(free),
            free - reserve,
            "capped at what is free"
        );
        let (o, _) = parse("dom0_mem=64M,min:128M");
        assert_eq!(o.dom0_mem.pages(free), 32768);
        let (o, _) = parse("dom0_mem=max:32M");
        assert_eq!(o.dom0_mem.pages(free), 8192);
        assert_eq!(Dom0Mem::default().pages(100), 0);
    }

    #[test]
    fn sizes_follow_xen_units() {
        assert_eq!(parse_size("1024"), Some(1 << 20));
        assert_eq!(parse_size("4k"), Some(4096));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        assert_eq!(parse_size("100B"), Some(100));
        assert_eq!(parse_size("0x10M"), Some(16 << 20));
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("5Z"), None);
        assert_eq!(parse_size("99999999999999999999T"), None);
        assert_eq!(parse_size("16777216T"), None, "overflow is an error");
    }

    #[test]
    fn panic_test_forms() {
        assert_eq!(parse("panic-test").0.panic_test, Some(PanicTest::Fault));
        assert_eq!(
            parse("panic-test=panic").0.panic_test,
            Some(PanicTest::Panic)
        );
        assert_eq!(parse("panic-test=boom").1.len(), 1);
    }

    #[test]
    fn console_none_silences() {
        assert!(!parse("console=none").0.serial_console);
        assert!(parse("console=com1,none").0.serial_console);
    }

    #[test]
    fn maxcpus_is_a_positive_count() {
        assert_eq!(parse("maxcpus=2").0.maxcpus, Some(2));
        let (o, w) = parse("maxcpus=0 maxcpus=x maxcpus");
        assert_eq!((o.maxcpus, w.len()), (None, 3));
    }

    #[test]
    fn console_vga_mirrors_or_replaces_the_serial_line() {
        let both = parse("console=com1,vga").0;
        assert!(both.serial_console && both.vga_console);
        let vga = parse("console=vga").0;
        assert!(!vga.serial_console && vga.vga_console);
        assert!(!Options::default().vga_console);
    }
}
