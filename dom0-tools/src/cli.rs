//! The xl-like command line of the dom0 console.
//!
//! A line is split into words like a small shell: blanks separate words; `"..."` groups
//! words, with `\"` and `\\` as escapes inside; `'...'` groups words literally; outside
//! quotes a backslash makes the next character literal; an unquoted `#` at the start of a
//! word comments out the rest of the line. A leading `xl` is accepted and ignored, so
//! `xl list` and `list` are the same command.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use guest_abi::DomId;

/// A domain named on the command line: a number is a domain id, anything else a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomRef {
    /// By id.
    Id(DomId),
    /// By name.
    Name(String),
}

impl fmt::Display for DomRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{}", id.0),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// One parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// An empty line or a comment.
    Nothing,
    /// `create FILE [key=value ...]`.
    Create {
        /// The configuration file.
        file: String,
        /// Settings that override the file's.
        overrides: Vec<String>,
    },
    /// `list`.
    List,
    /// `destroy DOM`.
    Destroy(DomRef),
    /// `shutdown [-w] [-F] DOM` or `reboot [-w] [-F] DOM`.
    Shutdown(ShutdownArgs),
    /// `mem-set DOM SIZE`.
    MemSet {
        /// The domain.
        dom: DomRef,
        /// The new target, in KiB.
        kib: u64,
    },
    /// `xenstore-ls [PATH]`.
    XenstoreLs(Option<String>),
    /// `xenstore-read PATH`.
    XenstoreRead(String),
    /// `xenstore-write PATH VALUE`.
    XenstoreWrite {
        /// The node.
        path: String,
        /// Its new value.
        value: String,
    },
    /// `xenstore-rm PATH`.
    XenstoreRm(String),
    /// `pause DOM`.
    Pause(DomRef),
    /// `unpause DOM`.
    Unpause(DomRef),
    /// `console DOM`.
    Console(DomRef),
    /// `info`.
    Info,
    /// `help [COMMAND]`.
    Help(Option<String>),
    /// `sleep SECONDS` (fractions allowed, to the millisecond).
    Sleep {
        /// How long.
        millis: u64,
    },
    /// `wait-for DOM [TEXT]`: until the domain exists, or has printed TEXT.
    WaitFor {
        /// The domain.
        dom: DomRef,
        /// Text to wait for on its console.
        text: Option<String>,
    },
    /// `poweroff`: the dom0 kernel powers the machine off.
    Poweroff,
    /// `block-list DOM`.
    BlockList(DomRef),
    /// `block-attach DOM SPEC`: a disk, in xl's disk syntax (one word: quote it if it has
    /// blanks).
    BlockAttach {
        /// The domain.
        dom: DomRef,
        /// The disk spec.
        spec: String,
    },
    /// `mkdisk NAME FILE` (ours): a dom0 disk in memory from a file of the archive.
    Mkdisk {
        /// The disk's name (`/dev/ram0`).
        name: String,
        /// The file.
        file: String,
    },
    /// `block-detach DOM VDEV`.
    BlockDetach {
        /// The domain.
        dom: DomRef,
        /// The guest's device (`xvdb`).
        vdev: String,
    },
}

/// What `shutdown` and `reboot` were asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShutdownArgs {
    /// The domain.
    pub dom: DomRef,
    /// `reboot` rather than `shutdown`.
    pub reboot: bool,
    /// `-w`: wait until the domain has shut down.
    pub wait: bool,
    /// `-F`: shut it down at once through the hypervisor, without asking it.
    pub force: bool,
}

/// A command line that cannot be run; its `Display` is one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for CliError {}

fn error(message: impl Into<String>) -> CliError {
    CliError(message.into())
}

/// Longest `sleep` accepted, in seconds (a day).
pub const MAX_SLEEP_SECONDS: u64 = 86_400;

/// The commands, their arguments and what they do: the text of `help`.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "create",
        "FILE [key=value ...]",
        "build and start a domain from an xl config file",
    ),
    ("list", "", "list the domains"),
    ("destroy", "DOM", "destroy a domain at once"),
    (
        "shutdown",
        "[-w] [-F] DOM",
        "ask a domain to power off (control/shutdown); -w waits, -F forces",
    ),
    (
        "reboot",
        "[-w] [-F] DOM",
        "ask a domain to reboot (control/shutdown); -w waits, -F forces",
    ),
    (
        "mem-set",
        "DOM SIZE",
        "set a domain's memory target (memory/target; SIZE in MiB, or with k/m/g)",
    ),
    ("pause", "DOM", "pause a domain"),
    ("unpause", "DOM", "unpause a domain"),
    (
        "console",
        "DOM",
        "attach to a domain's console (Ctrl-] detaches)",
    ),
    (
        "block-list",
        "DOM",
        "list a domain's disks (xl's columns: Vdev is the DEVID)",
    ),
    (
        "block-attach",
        "DOM SPEC",
        "attach one of dom0's disks, SPEC in xl's disk syntax ('phy:/dev/vdb,xvdb,w')",
    ),
    (
        "block-detach",
        "DOM VDEV",
        "ask the guest to release a disk (xvdb); it is free once the guest closed it",
    ),
    (
        "mkdisk",
        "NAME FILE",
        "make a dom0 disk NAME (/dev/ram0) in memory from FILE; writes are lost at power-off",
    ),
    ("info", "", "host and hypervisor information"),
    ("help", "[COMMAND]", "this list"),
    ("sleep", "SECONDS", "wait (scripts)"),
    (
        "wait-for",
        "DOM [TEXT]",
        "wait until DOM exists, or has printed TEXT (scripts)",
    ),
    ("poweroff", "", "power the machine off (ends a script too)"),
    (
        "xenstore-ls",
        "[PATH]",
        "list the store below PATH (default /)",
    ),
    ("xenstore-read", "PATH", "print a store node's value"),
    (
        "xenstore-write",
        "PATH VALUE",
        "write a store node (as dom0)",
    ),
    (
        "xenstore-rm",
        "PATH",
        "remove a store node and everything below it",
    ),
];

/// The usage line of `command`.
pub fn usage(command: &str) -> Option<String> {
    COMMANDS
        .iter()
        .find(|(name, _, _)| *name == command)
        .map(|(name, args, _)| {
            if args.is_empty() {
                alloc::format!("usage: {name}")
            } else {
                alloc::format!("usage: {name} {args}")
            }
        })
}

/// Splits a line into words (see the module documentation).
pub fn split_words(line: &str) -> Result<Vec<String>, CliError> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some('#') => return Ok(words),
            Some(_) => {}
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '"' => loop {
                    match chars.next() {
                        None => return Err(error("unterminated double quote")),
                        Some('"') => break,
                        Some('\\') if matches!(chars.peek(), Some('"' | '\\')) => {
                            word.extend(chars.next());
                        }
                        Some(c) => word.push(c),
                    }
                },
                '\'' => loop {
                    match chars.next() {
                        None => return Err(error("unterminated single quote")),
                        Some('\'') => break,
                        Some(c) => word.push(c),
                    }
                },
                '\\' => match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(error("backslash at the end of the line")),
                },
                c => word.push(c),
            }
        }
        words.push(word);
    }
}

/// Reads a domain argument: digits are an id, anything else a name.
pub fn parse_dom(word: &str) -> Result<DomRef, CliError> {
    if word.is_empty() {
        return Err(error("empty domain name"));
    }
    if !word.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(DomRef::Name(word.to_string()));
    }
    match word.parse::<u16>() {
        Ok(id) if DomId(id).is_normal() => Ok(DomRef::Id(DomId(id))),
        _ => Err(error(alloc::format!(
            "domain id {word} is out of range (0 to {})",
            DomId::FIRST_RESERVED.0 - 1
        ))),
    }
}

/// Reads `SECONDS` (`2`, `0.5`, `1.25`) as milliseconds.
pub fn parse_seconds(word: &str) -> Result<u64, CliError> {
    let bad = || error(alloc::format!("sleep: '{word}' is not a number of seconds"));
    let (whole, frac) = word.split_once('.').unwrap_or((word, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err(bad());
    }
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    if secs > MAX_SLEEP_SECONDS {
        return Err(error(alloc::format!(
            "sleep: {word} seconds is more than the {MAX_SLEEP_SECONDS} allowed"
        )));
    }
    // Milliseconds from the first three fraction digits; the rest is dropped.
    let millis = frac
        .bytes()
        .chain(core::iter::repeat(b'0'))
        .take(3)
        .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
    Ok(secs * 1000 + millis)
}

fn one_dom(name: &str, args: &[String]) -> Result<DomRef, CliError> {
    match args {
        [dom] => parse_dom(dom),
        _ => Err(usage_error(name)),
    }
}

/// `shutdown` / `reboot`'s `[-w] [-F] DOM`.
fn shutdown_args(name: &str, args: &[String]) -> Result<ShutdownArgs, CliError> {
    let (mut wait, mut force, mut dom) = (false, false, None);
    for a in args {
        match a.as_str() {
            "-w" => wait = true,
            "-F" => force = true,
            flag if flag.starts_with('-') => {
                return Err(error(alloc::format!(
                    "{name}: unknown option '{flag}'; {}",
                    usage_error(name)
                )));
            }
            d if dom.is_none() => dom = Some(parse_dom(d)?),
            _ => return Err(usage_error(name)),
        }
    }
    Ok(ShutdownArgs {
        dom: dom.ok_or_else(|| usage_error(name))?,
        reboot: name == "reboot",
        wait,
        force,
    })
}

/// Most `mem-set` accepts, in KiB (1 TiB).
pub const MAX_MEM_KIB: u64 = 1 << 30;

/// Reads `mem-set`'s SIZE as xl does: a number of MiB, or with a unit suffix
/// (`b`, `k`, `m`, `g`, `t`, either case); in KiB.
pub fn parse_mem_kib(word: &str) -> Result<u64, CliError> {
    let bad = || {
        error(alloc::format!(
            "mem-set: '{word}' is not a memory size (a number of MiB, or with b/k/m/g/t)"
        ))
    };
    let split = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let (digits, unit) = word.split_at(split);
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let kib = match unit.to_ascii_lowercase().as_str() {
        "b" => Some(n / 1024),
        "k" => Some(n),
        "" | "m" => n.checked_mul(1 << 10),
        "g" => n.checked_mul(1 << 20),
        "t" => n.checked_mul(1 << 30),
        _ => return Err(bad()),
    };
    match kib {
        Some(k) if k > 0 && k <= MAX_MEM_KIB => Ok(k),
        _ => Err(error(alloc::format!(
            "mem-set: {word} is not between 1 KiB and 1 TiB"
        ))),
    }
}

fn usage_error(name: &str) -> CliError {
    error(usage(name).unwrap_or_else(|| alloc::format!("usage: {name}")))
}

/// Parses one command line.
pub fn parse_command(line: &str) -> Result<Command, CliError> {
    let words = split_words(line)?;
    let words = match words.split_first() {
        Some((first, rest)) if first == "xl" && !rest.is_empty() => rest,
        _ => &words[..],
    };
    let Some((name, args)) = words.split_first() else {
        return Ok(Command::Nothing);
    };
    let no_args = |cmd: Command| {
        if args.is_empty() {
            Ok(cmd)
        } else {
            Err(usage_error(name))
        }
    };
    match name.as_str() {
        "create" => match args.split_first() {
            Some((file, overrides)) => Ok(Command::Create {
                file: file.clone(),
                overrides: overrides.to_vec(),
            }),
            None => Err(usage_error(name)),
        },
        "list" => no_args(Command::List),
        "info" => no_args(Command::Info),
        "poweroff" => no_args(Command::Poweroff),
        "destroy" => one_dom(name, args).map(Command::Destroy),
        "shutdown" | "reboot" => shutdown_args(name, args).map(Command::Shutdown),
        "mem-set" => match args {
            [dom, size] => Ok(Command::MemSet {
                dom: parse_dom(dom)?,
                kib: parse_mem_kib(size)?,
            }),
            _ => Err(usage_error(name)),
        },
        "xenstore-ls" => match args {
            [] => Ok(Command::XenstoreLs(None)),
            [p] => Ok(Command::XenstoreLs(Some(p.clone()))),
            _ => Err(usage_error(name)),
        },
        "xenstore-read" => match args {
            [p] => Ok(Command::XenstoreRead(p.clone())),
            _ => Err(usage_error(name)),
        },
        "xenstore-write" => match args {
            [path, value] => Ok(Command::XenstoreWrite {
                path: path.clone(),
                value: value.clone(),
            }),
            _ => Err(usage_error(name)),
        },
        "xenstore-rm" => match args {
            [p] => Ok(Command::XenstoreRm(p.clone())),
            _ => Err(usage_error(name)),
        },
        "block-list" => one_dom(name, args).map(Command::BlockList),
        "block-attach" => match args {
            [dom, spec] => Ok(Command::BlockAttach {
                dom: parse_dom(dom)?,
                spec: spec.clone(),
            }),
            [dom, first, rest @ ..] => Ok(Command::BlockAttach {
                dom: parse_dom(dom)?,
                spec: core::iter::once(first.as_str())
                    .chain(rest.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" "),
            }),
            _ => Err(usage_error(name)),
        },
        "mkdisk" => match args {
            [name, file] => Ok(Command::Mkdisk {
                name: name.clone(),
                file: file.clone(),
            }),
            _ => Err(usage_error(name)),
        },
        "block-detach" => match args {
            [dom, vdev] => Ok(Command::BlockDetach {
                dom: parse_dom(dom)?,
                vdev: vdev.clone(),
            }),
            _ => Err(usage_error(name)),
        },
        "pause" => one_dom(name, args).map(Command::Pause),
        "unpause" => one_dom(name, args).map(Command::Unpause),
        "console" => one_dom(name, args).map(Command::Console),
        "help" => match args {
            [] => Ok(Command::Help(None)),
            [topic] => Ok(Command::Help(Some(topic.clone()))),
            _ => Err(usage_error(name)),
        },
        "sleep" => match args {
            [secs] => Ok(Command::Sleep {
                millis: parse_seconds(secs)?,
            }),
            _ => Err(usage_error(name)),
        },
        "wait-for" => match args {
            [dom] => Ok(Command::WaitFor {
                dom: parse_dom(dom)?,
                text: None,
            }),
            [dom, text] if !text.is_empty() => Ok(Command::WaitFor {
                dom: parse_dom(dom)?,
                text: Some(text.clone()),
            }),
            _ => Err(error(
                "usage: wait-for DOM [TEXT] (quote TEXT if it has blanks)",
            )),
        },
        other => Err(error(alloc::format!(
            "unknown command '{other}'; type 'help' for the list of commands"
        ))),
    }
}

/// The text of `help` (all commands) or `help COMMAND`.
pub fn help(topic: Option<&str>) -> Result<String, CliError> {
    let mut out = String::new();
    let rows: Vec<_> = match topic {
        None => {
            out.push_str("Commands (DOM is a domain name or id):\n");
            COMMANDS.iter().collect()
        }
        Some(t) => {
            let row = COMMANDS.iter().find(|(n, _, _)| *n == t).ok_or_else(|| {
                error(alloc::format!(
                    "no command '{t}'; type 'help' for the list of commands"
                ))
            })?;
            alloc::vec![row]
        }
    };
    for (name, args, what) in rows {
        let synopsis = alloc::format!("{name} {args}");
        out.push_str(&alloc::format!(" {:<30} {what}\n", synopsis.trim_end()));
    }
    if topic.is_none() {
        out.push_str("Lines starting with # are comments. Quote words with \"...\".\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    fn words(line: &str) -> Vec<String> {
        split_words(line).unwrap()
    }

    #[test]
    fn splits_like_a_shell_subset() {
        assert_eq!(words("  a  b\tc "), ["a", "b", "c"]);
        assert_eq!(
            words(r#"wait-for web "Hello, world""#),
            ["wait-for", "web", "Hello, world"]
        );
        assert_eq!(words(r#"name="a b"c"#), ["name=a bc"]);
        assert_eq!(words(r#""say \"hi\" \\ \n""#), [r#"say "hi" \ \n"#]);
        assert_eq!(words(r#"'it''s' a\ b"#), ["its", "a b"]);
        assert_eq!(words("list # trailing comment"), ["list"]);
        assert_eq!(words("a#b"), ["a#b"]);
        assert_eq!(words(r#""""#), [""]);
        assert!(words("   # only a comment").is_empty());
    }

    #[test]
    fn parses_every_command() {
        use Command as C;
        let name = |s: &str| DomRef::Name(s.into());
        let cases = [
            ("", C::Nothing),
            ("# comment", C::Nothing),
            ("list", C::List),
            ("xl list", C::List),
            ("info", C::Info),
            ("poweroff", C::Poweroff),
            ("help", C::Help(None)),
            ("help create", C::Help(Some("create".into()))),
            (
                "create /etc/web.cfg memory=64 'name=\"x\"'",
                C::Create {
                    file: "/etc/web.cfg".into(),
                    overrides: vec!["memory=64".into(), "name=\"x\"".into()],
                },
            ),
            ("destroy web", C::Destroy(name("web"))),
            ("destroy 3", C::Destroy(DomRef::Id(DomId(3)))),
            (
                "shutdown web",
                C::Shutdown(ShutdownArgs {
                    dom: name("web"),
                    reboot: false,
                    wait: false,
                    force: false,
                }),
            ),
            (
                "reboot -w -F 3",
                C::Shutdown(ShutdownArgs {
                    dom: DomRef::Id(DomId(3)),
                    reboot: true,
                    wait: true,
                    force: true,
                }),
            ),
            (
                "mem-set web 256",
                C::MemSet {
                    dom: name("web"),
                    kib: 256 * 1024,
                },
            ),
            ("xenstore-ls", C::XenstoreLs(None)),
            ("xenstore-ls /vm", C::XenstoreLs(Some("/vm".into()))),
            ("xenstore-read name", C::XenstoreRead("name".into())),
            (
                "xenstore-write /a \"b c\"",
                C::XenstoreWrite {
                    path: "/a".into(),
                    value: "b c".into(),
                },
            ),
            ("xenstore-rm /a", C::XenstoreRm("/a".into())),
            ("pause 0", C::Pause(DomRef::Id(DomId(0)))),
            ("unpause web", C::Unpause(name("web"))),
            ("console web", C::Console(name("web"))),
            ("sleep 2", C::Sleep { millis: 2000 }),
            ("sleep 0.25", C::Sleep { millis: 250 }),
            ("sleep .5", C::Sleep { millis: 500 }),
            ("sleep 1.23456", C::Sleep { millis: 1234 }),
            (
                "wait-for web",
                C::WaitFor {
                    dom: name("web"),
                    text: None,
                },
            ),
            (
                "wait-for 7 \"login: \"",
                C::WaitFor {
                    dom: DomRef::Id(DomId(7)),
                    text: Some("login: ".into()),
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse_command(line), Ok(want), "{line}");
        }
    }

    /// Each bad line gives exactly one clear line.
    #[test]
    fn errors_are_one_clear_line() {
        let cases = [
            (
                "frobnicate web",
                "unknown command 'frobnicate'; type 'help' for the list of commands",
            ),
            ("create", "usage: create FILE [key=value ...]"),
            ("destroy", "usage: destroy DOM"),
            ("destroy a b", "usage: destroy DOM"),
            ("console", "usage: console DOM"),
            ("list extra", "usage: list"),
            ("info x", "usage: info"),
            ("poweroff now", "usage: poweroff"),
            ("help a b", "usage: help [COMMAND]"),
            ("sleep", "usage: sleep SECONDS"),
            ("sleep abc", "sleep: 'abc' is not a number of seconds"),
            ("sleep -1", "sleep: '-1' is not a number of seconds"),
            ("sleep 1.2.3", "sleep: '1.2.3' is not a number of seconds"),
            ("sleep .", "sleep: '.' is not a number of seconds"),
            (
                "sleep 99999999999999999999",
                "sleep: '99999999999999999999' is not a number of seconds",
            ),
            (
                "sleep 100000",
                "sleep: 100000 seconds is more than the 86400 allowed",
            ),
            (
                "wait-for",
                "usage: wait-for DOM [TEXT] (quote TEXT if it has blanks)",
            ),
            (
                "wait-for a b c",
                "usage: wait-for DOM [TEXT] (quote TEXT if it has blanks)",
            ),
            (
                "wait-for a \"\"",
                "usage: wait-for DOM [TEXT] (quote TEXT if it has blanks)",
            ),
            (
                "destroy 32752",
                "domain id 32752 is out of range (0 to 32751)",
            ),
            (
                "destroy 99999",
                "domain id 99999 is out of range (0 to 32751)",
            ),
            ("destroy \"\"", "empty domain name"),
            ("console \"web", "unterminated double quote"),
            ("console 'web", "unterminated single quote"),
            ("console web\\", "backslash at the end of the line"),
        ];
        for (line, want) in cases {
            let got = parse_command(line).unwrap_err().to_string();
            assert_eq!(got, want, "{line}");
            assert!(!got.contains('\n'));
        }
    }

    #[test]
    fn mem_sizes_read_as_xl_reads_them() {
        assert_eq!(parse_mem_kib("256"), Ok(256 * 1024));
        assert_eq!(parse_mem_kib("256m"), Ok(256 * 1024));
        assert_eq!(parse_mem_kib("1G"), Ok(1024 * 1024));
        assert_eq!(parse_mem_kib("512k"), Ok(512));
        assert_eq!(parse_mem_kib("4096b"), Ok(4));
        for bad in ["", "m", "12q", "-1", "1.5"] {
            assert!(parse_mem_kib(bad).is_err(), "{bad}");
        }
        assert!(parse_mem_kib("0").is_err());
        assert!(parse_mem_kib("2t").is_err());
        assert!(parse_mem_kib("99999999999999999999").is_err());
    }

    #[test]
    fn help_lists_every_command() {
        let text = help(None).unwrap();
        for (name, _, _) in COMMANDS {
            assert!(text.contains(name), "{name}");
        }
        assert_eq!(
            help(Some("destroy")).unwrap(),
            " destroy DOM                    destroy a domain at once\n"
        );
        assert_eq!(
            help(Some("nope")).unwrap_err().to_string(),
            "no command 'nope'; type 'help' for the list of commands"
        );
    }

    proptest! {
        #[test]
        fn never_panics(line in "\\PC*") {
            if let Err(e) = parse_command(&line) {
                prop_assert!(!e.to_string().contains('\n') || line.contains('\n'));
            }
        }

        #[test]
        fn never_panics_on_command_like_lines(
            cmd in "(xl )?(create|list|destroy|sleep|wait-for|help|console|pause|poweroff)",
            args in proptest::collection::vec("[a-z0-9.\"'\\\\# =-]{0,8}", 0..4),
        ) {
            let _ = parse_command(&alloc::format!("{cmd} {}", args.join(" ")));
        }
    }
}
