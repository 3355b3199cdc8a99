use alloc::string::String;
use alloc::vec::Vec;

use guest_abi::sched::ShutdownReason;

use super::*;
use crate::cpio::{Archive, write_newc};
use crate::fake::{self, FakeHv};

/// Free pages of the fake host: room for a few 8 MiB domains.
const FREE: u64 = 16 * 1024;

pub(super) fn archive_bytes() -> Vec<u8> {
    let kernel = fake::kernel_image(true);
    write_newc(&[
        ("etc/", b""),
        ("etc/xen/web.cfg", b"name = 'web'\nmemory = 8\nkernel = 'hello'\nramdisk = '/boot/initrd'\nextra = 'console=hvc0'\n"),
        ("etc/xen/db.cfg", b"name = 'db'\nmemory = 8\nkernel = '/etc/xen/hello'\non_crash = 'preserve'\non_poweroff = 'restart'\n"),
        ("etc/xen/big.cfg", b"name = 'big'\nmemory = 1024\nkernel = 'hello'\n"),
        ("etc/xen/bad.cfg", b"name = 'bad'\nmemory 8\n"),
        ("etc/xen/nokernel.cfg", b"name = 'nk'\nkernel = 'missing'\n"),
        ("etc/xen/notelf.cfg", b"name = 'ne'\nkernel = '/boot/initrd'\n"),
        ("etc/xen/binary.cfg", b"name = 'x'\n\xff\n"),
        ("etc/xen/ping.cfg", b"name = 'ping'\nmemory = 8\nkernel = 'hello'\ncmdline = 'role=ping'\n"),
        ("etc/xen/pong.cfg", b"name = 'pong'\nmemory = 8\nkernel = 'hello'\ncmdline = 'role=pong'\nevtchn_peer = 'ping'\n"),
        ("etc/xen/hello", &kernel),
        ("boot/initrd", b"initrd contents, 40 bytes or so........"),
    ])
}

pub(super) fn toolstack(bytes: &[u8]) -> Toolstack<FakeHv, Archive<'_>> {
    Toolstack::new(FakeHv::new(FREE), Archive::parse(bytes).unwrap())
}

pub(super) fn run<H: Hypervisor, F: Files>(t: &mut Toolstack<H, F>, line: &str) -> String {
    match t.execute(line) {
        Ok(r) => r.output,
        Err(e) => panic!("{line}: {e}"),
    }
}

pub(super) fn run_err<H: Hypervisor, F: Files>(t: &mut Toolstack<H, F>, line: &str) -> String {
    match t.execute(line) {
        Ok(r) => panic!("{line}: accepted: {}", r.output),
        Err(e) => e.to_string(),
    }
}

/// Asserts the toolstack holds nothing and the host has `free` pages free again.
pub(super) fn assert_clean(t: &Toolstack<FakeHv, Archive<'_>>, free: u64) {
    assert_eq!(t.hypervisor().free_pages(), free);
    assert!(t.domains().is_empty());
    assert!(t.hypervisor().domains.is_empty());
    assert!(t.hypervisor().bound.is_empty());
    assert_eq!(t.hypervisor().mapped_consoles, 0);
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

/// The end-to-end cycle, 100 times: every page comes back.
#[test]
fn create_list_destroy_returns_every_page() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    let free = t.hypervisor().free_pages();
    for i in 0..100 {
        let out = run(&mut t, "create /etc/xen/web.cfg");
        let id = t.domains().by_name("web").unwrap();
        assert_eq!(
            out,
            alloc::format!(
                "Parsing config from /etc/xen/web.cfg\nStarted domain web (id={})\n",
                id.0
            )
        );
        assert_eq!(id.0, i + 1, "ids increase like Xen's");
        assert!(t.hypervisor().free_pages() < free);
        let list = run(&mut t, "list");
        let row = list.lines().find(|l| l.starts_with("web ")).unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cols[..5],
            ["web", &alloc::format!("{}", id.0), "8", "1", "-b----"]
        );
        assert!(list.lines().nth(1).unwrap().starts_with("Domain-0 "));
        let victim = if i % 2 == 0 {
            "destroy web".into()
        } else {
            alloc::format!("destroy {}", id.0)
        };
        assert_eq!(run(&mut t, &victim), "");
        assert_clean(&t, free);
        assert!(!run(&mut t, "list").contains("web"));
    }
}

#[test]
fn create_errors_are_one_line_and_leak_nothing() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    run(&mut t, "create /etc/xen/web.cfg");
    let free = t.hypervisor().free_pages();
    let cases = [
        (
            "create /etc/xen/nope.cfg",
            "/etc/xen/nope.cfg: no such file in the dom0 archive",
        ),
        ("create /etc", "/etc: is a directory"),
        (
            "create /etc/xen/bad.cfg",
            "/etc/xen/bad.cfg:2: expected '=' after 'memory'",
        ),
        (
            "create /etc/xen/binary.cfg",
            "/etc/xen/binary.cfg:2: not UTF-8 text",
        ),
        (
            "create /etc/xen/web.cfg",
            "cannot create domain 'web': a domain with that name exists (id 1)",
        ),
        (
            "create /etc/xen/web.cfg memory=0 name=w2",
            "command line:1: memory must be greater than 0",
        ),
        (
            "create /etc/xen/big.cfg",
            "cannot create domain 'big': not enough free memory: the domain needs 1025 MiB, the host has 55 MiB free",
        ),
        (
            "create /etc/xen/nokernel.cfg",
            "/etc/xen/nokernel.cfg: kernel 'missing': no such file in the dom0 archive",
        ),
        (
            "create /etc/xen/notelf.cfg",
            "cannot create domain 'ne': not a usable Xen PV kernel: not an ELF file",
        ),
        (
            "create etc/xen/web.cfg name=Domain-0",
            "command line:1: domain name 'Domain-0' is reserved for dom0",
        ),
    ];
    for (line, want) in cases {
        let got = run_err(&mut t, line);
        assert_eq!(got, want, "{line}");
        assert!(!got.contains('\n'));
        assert_eq!(t.hypervisor().free_pages(), free, "{line}");
        assert_eq!(t.domains().len(), 1);
    }
    // An override can make a second copy under another name.
    let out = run(
        &mut t,
        "create etc/xen/web.cfg name=web2 vcpus=2 'extra=\"quiet\"'",
    );
    assert!(out.ends_with("Started domain web2 (id=2)\n"), "{out}");
    let web2 = t.domains().get(guest_abi::DomId(2)).unwrap();
    assert_eq!(web2.config.cmdline, "quiet");
    assert_eq!(web2.config.vcpus, 2);
    assert_eq!(web2.kernel_path, "etc/xen/hello");
    assert_eq!(web2.ramdisk_path.as_deref(), Some("boot/initrd"));
}

#[test]
fn warnings_are_printed() {
    let kernel = fake::kernel_image(false);
    let bytes = write_newc(&[
        (
            "w.cfg",
            b"name='w'\nkernel='k'\nvif=['bridge=xenbr0']\ncmdline='a'\nroot='/dev/xvda'\n",
        ),
        ("k", &kernel),
    ]);
    let mut t = toolstack(&bytes);
    let out = run(&mut t, "create w.cfg");
    assert_eq!(
        out,
        "Parsing config from w.cfg\n\
         w.cfg:3: warning: unknown setting 'vif' ignored\n\
         w.cfg: warning: ignoring root= and extra= in favour of cmdline=\n\
         Started domain w (id=1)\n"
    );
}

#[test]
fn failures_after_the_build_destroy_the_domain() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    let free = t.hypervisor().free_pages();
    for (op, want) in [
        (
            "evtchn_bind_interdomain",
            "cannot create domain 'web': evtchn_bind_interdomain failed: ENOMEM (12); domain 1 destroyed",
        ),
        (
            "map_console",
            "cannot create domain 'web': map the console ring failed: ENOMEM (12); domain 2 destroyed",
        ),
        (
            "unpausedomain",
            "cannot create domain 'web': unpausedomain failed: ENOMEM (12); domain 3 destroyed",
        ),
        (
            "populate_physmap",
            "cannot create domain 'web': populate_physmap failed: ENOMEM (12); domain 4 destroyed",
        ),
    ] {
        t.hypervisor_mut().fail_on.push((op, XenError::NoMem));
        assert_eq!(run_err(&mut t, "create /etc/xen/web.cfg"), want);
        assert_clean(&t, free);
    }
}

/// The hypervisor's domain and vCPU limits: ENOSPC from createdomain is one plain line
/// naming them, and the configuration refuses more vCPUs than a domain may have.
#[test]
fn hitting_the_hypervisor_limits_says_so() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    let free = t.hypervisor().free_pages();
    t.hypervisor_mut()
        .fail_on
        .push(("createdomain", XenError::NoSpc));
    assert_eq!(
        run_err(&mut t, "create /etc/xen/web.cfg vcpus=4"),
        "cannot create domain 'web': createdomain failed: the hypervisor has no room for \
         another domain or 4 more vCPUs (limits: 63 domUs, 32 vCPUs each, 64 vCPUs in all)"
    );
    t.hypervisor_mut()
        .fail_on
        .push(("createdomain", XenError::NoSpc));
    assert!(run_err(&mut t, "create /etc/xen/web.cfg").contains("or 1 more vCPU (limits"));
    assert_eq!(
        run_err(&mut t, "create /etc/xen/web.cfg vcpus=33"),
        "command line:1: vcpus must be between 1 and 32 (the hypervisor's limit per domain), \
         not 33"
    );
    run(&mut t, "create /etc/xen/web.cfg vcpus=32");
    run(&mut t, "destroy web");
    assert_clean(&t, free);
}

#[test]
fn consoles_are_prefixed_attached_and_fed() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    run(&mut t, "create /etc/xen/web.cfg");
    run(&mut t, "create /etc/xen/db.cfg");
    let (web, db) = (
        t.domains().by_name("web").unwrap(),
        t.domains().by_name("db").unwrap(),
    );
    t.hypervisor_mut()
        .guest_print(web, b"Linux version 6.1\nlogin: ");
    t.hypervisor_mut().guest_print(db, b"db up\n");
    assert_eq!(
        text(t.poll_consoles()),
        "[web] Linux version 6.1\n[db] db up\n"
    );
    assert_eq!(t.hypervisor().sent.len(), 2, "both guests notified");
    assert!(t.poll_consoles().is_empty());

    let reply = t.execute("console web").unwrap();
    assert_eq!(
        reply.output,
        "Connected to domain 1 (web); type Ctrl-] to detach\n"
    );
    assert_eq!(reply.wait, Some(Wait::Attached(web)));
    assert_eq!(
        text(t.poll_consoles()),
        "login: ",
        "the pending prompt shows at once"
    );
    t.hypervisor_mut().guest_print(web, b"\x1b[0mweb$ ");
    t.hypervisor_mut().guest_print(db, b"still prefixed\n");
    assert_eq!(
        text(t.poll_consoles()),
        "\x1b[0mweb$ ",
        "other domains wait"
    );
    assert_eq!(
        t.console_input(b"root\r"),
        InputResult {
            accepted: 5,
            detached: false
        }
    );
    assert_eq!(t.hypervisor_mut().guest_read(web), b"root\r");
    assert_eq!(
        t.console_input(b"ls\x1dignored"),
        InputResult {
            accepted: 2,
            detached: true
        }
    );
    assert_eq!(t.hypervisor_mut().guest_read(web), b"ls");
    assert_eq!(t.attached(), None);
    assert!(t.wait_done(&Wait::Attached(web)));
    t.hypervisor_mut().guest_print(web, b"bye\n");
    assert_eq!(text(t.poll_consoles()), "[db] still prefixed\n[web] bye\n");
    assert_eq!(
        t.console_input(b"x"),
        InputResult {
            accepted: 0,
            detached: true
        }
    );

    assert_eq!(
        run_err(&mut t, "console 0"),
        "domain 0 has no console ring here (dom0's console is the hypervisor's)"
    );
    assert_eq!(run_err(&mut t, "console nope"), "no domain called 'nope'");
    assert_eq!(run_err(&mut t, "console 42"), "domain 42 does not exist");
}

#[test]
fn destroying_the_attached_domain_detaches_and_flushes() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    run(&mut t, "create /etc/xen/web.cfg");
    let web = t.domains().by_name("web").unwrap();
    t.execute("console web").unwrap();
    t.hypervisor_mut().guest_print(web, b"last words");
    run(&mut t, "destroy web");
    assert_eq!(t.attached(), None);
    assert_eq!(
        text(t.poll_consoles()),
        "last words\n[detached: domain 1 (web) is gone]\n"
    );
}

#[test]
fn wait_for_existence_and_text() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    let reply = t.execute("wait-for web \"login: \"").unwrap();
    let Some(wait) = reply.wait else { panic!() };
    assert!(!t.wait_done(&wait), "no such domain yet");
    run(&mut t, "create /etc/xen/web.cfg");
    let web = t.domains().by_name("web").unwrap();
    assert!(t.wait_done(&Wait::Domain {
        dom: DomRef::Name("web".into()),
        text: None
    }));
    assert!(t.wait_done(&Wait::Domain {
        dom: DomRef::Id(web),
        text: None
    }));
    assert!(!t.wait_done(&wait));
    t.hypervisor_mut().guest_print(web, b"Welcome\nlog");
    t.poll_consoles();
    assert!(!t.wait_done(&wait));
    t.hypervisor_mut().guest_print(web, b"in: ");
    t.poll_consoles();
    assert!(
        t.wait_done(&wait),
        "text split across two polls still matches"
    );
    assert_eq!(
        t.execute("sleep 1.5").unwrap().wait,
        Some(Wait::Sleep { millis: 1500 })
    );
    assert!(t.wait_done(&Wait::Sleep { millis: 1 }));
    assert_eq!(t.execute("xl poweroff").unwrap().wait, Some(Wait::PowerOff));
    assert!(t.execute("poweroff now").is_err());
}

#[test]
fn the_reaper_applies_each_action() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    let free = t.hypervisor().free_pages();
    run(&mut t, "create /etc/xen/web.cfg"); // on_poweroff destroy, on_reboot restart
    run(&mut t, "create /etc/xen/db.cfg"); // on_poweroff restart, on_crash preserve
    let (web, db) = (DomId(1), DomId(2));
    assert!(t.on_dom_exc().is_empty(), "nothing stopped yet");

    t.hypervisor_mut()
        .guest_shutdown(web, ShutdownReason::Reboot);
    assert_eq!(
        t.on_dom_exc(),
        ["Domain 1 (web) has shut down, reason code 1 (reboot); restarting in 2 s"]
    );
    assert!(t.run_restarts().is_empty(), "not yet");
    t.set_time(RESTART_DELAY_MS);
    assert_eq!(t.run_restarts(), ["Domain 1 (web) restarted as domain 3"]);
    assert_eq!(t.domains().by_name("web"), Some(DomId(3)));
    assert_eq!(
        t.domains().get(DomId(3)).unwrap().kernel_path,
        "etc/xen/hello"
    );

    t.hypervisor_mut().guest_shutdown(db, ShutdownReason::Crash);
    assert_eq!(
        t.on_dom_exc(),
        ["Domain 2 (db) has shut down, reason code 3 (crash); preserving it"]
    );
    assert!(
        t.on_dom_exc().is_empty(),
        "a preserved domain is reported once"
    );
    let list = run(&mut t, "list");
    assert!(
        list.lines()
            .any(|l| l.starts_with("db ") && l.contains("---sc-")),
        "{list}"
    );
    assert_eq!(t.domains().get(db).unwrap().state, State::Shutdown(3));

    t.hypervisor_mut()
        .guest_shutdown(DomId(3), ShutdownReason::Poweroff);
    assert_eq!(
        t.on_dom_exc(),
        ["Domain 3 (web) has shut down, reason code 0 (poweroff); destroying"]
    );
    run(&mut t, "destroy db");
    assert_clean(&t, free);
}

#[test]
fn the_reaper_reports_other_cases() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    run(&mut t, "create /etc/xen/db.cfg");
    run(&mut t, "create /etc/xen/web.cfg");
    // Restart when the memory is gone: the line says so and the domain is not leaked.
    let hog = t.hypervisor().free_pages() - 10;
    t.hypervisor_mut().domains.get_mut(&2).unwrap().max_kib = u64::MAX;
    let mut mfns = alloc::vec![guest_abi::Mfn(0); hog as usize];
    let pfns: Vec<guest_abi::Pfn> = (2048..2048 + hog).map(guest_abi::Pfn).collect();
    t.hypervisor_mut()
        .populate_physmap(DomId(2), &pfns, &mut mfns)
        .unwrap();
    t.hypervisor_mut()
        .guest_shutdown(DomId(1), ShutdownReason::Poweroff);
    assert_eq!(
        t.on_dom_exc(),
        ["Domain 1 (db) has shut down, reason code 0 (poweroff); restarting in 2 s"]
    );
    t.set_time(RESTART_DELAY_MS);
    let lines = t.run_restarts();
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with(
            "Domain 1 (db): restarting failed: cannot create domain 'db': not enough free memory"
        ),
        "{lines:?}"
    );
    assert_eq!(t.domains().by_name("db"), None);

    // Destroyed behind the toolstack's back.
    t.hypervisor_mut().destroy_domain(DomId(2)).unwrap();
    assert_eq!(t.on_dom_exc(), ["Domain 2 (web) has disappeared"]);
    assert!(t.domains().is_empty());
    assert_eq!(t.hypervisor().mapped_consoles, 0);
}

/// `on_crash=restart` on a domain that crashes at once: restarted after the delay, never
/// sooner, and after FAST_CRASH_LIMIT fast crashes in a row left crashed with one line; dom0
/// never waits meanwhile (each call returns at once).
#[test]
fn a_domain_that_keeps_crashing_is_restarted_with_back_off_then_left_crashed() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    let free = t.hypervisor().free_pages();
    let mut now = 5_000;
    t.set_time(now);
    run(&mut t, "create /etc/xen/web.cfg name=c on_crash=restart");
    let mut restarts = 0;
    let mut lines = Vec::new();
    // Ten seconds of crashing at once, looked at every 10 ms as the session does.
    for _ in 0..1000 {
        now += 10;
        t.set_time(now);
        if let Some(id) = t.domains().by_name("c")
            && t.domains().get(id).unwrap().state == State::Running
        {
            t.hypervisor_mut().guest_shutdown(id, ShutdownReason::Crash);
        }
        lines.extend(t.on_dom_exc());
        let done = t.run_restarts();
        restarts += done.len();
        lines.extend(done);
    }
    assert_eq!(restarts, FAST_CRASH_LIMIT as usize - 1, "{lines:#?}");
    assert_eq!(
        lines,
        [
            "Domain 1 (c) has shut down, reason code 3 (crash); restarting in 2 s",
            "Domain 1 (c) restarted as domain 2",
            "Domain 2 (c) has shut down, reason code 3 (crash); restarting in 2 s",
            "Domain 2 (c) restarted as domain 3",
            "Domain 3 (c) has shut down, reason code 3 (crash); it crashed 3 times in a row \
             within 10 s of starting: not restarting it, leaving it crashed",
        ]
    );
    // Left crashed, as preserve leaves it: listed, reported once, destroyed by hand.
    assert!(run(&mut t, "list").contains("---sc-"));
    assert!(t.on_dom_exc().is_empty());
    run(&mut t, "destroy c");
    assert_clean(&t, free);
}

/// A crash long after the start is not a fast one: such a domain is restarted every time.
/// A pending restart waits, and `destroy` cancels it.
#[test]
fn slow_crashes_always_restart_and_destroy_cancels_a_pending_restart() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    let free = t.hypervisor().free_pages();
    let mut now = 0;
    run(&mut t, "create /etc/xen/web.cfg name=s on_crash=restart");
    for round in 0..2 * FAST_CRASH_LIMIT {
        now += FAST_CRASH_MS;
        t.set_time(now);
        let id = t.domains().by_name("s").unwrap();
        t.hypervisor_mut().guest_shutdown(id, ShutdownReason::Crash);
        assert!(
            t.on_dom_exc()[0].ends_with("restarting in 2 s"),
            "round {round}"
        );
        assert_eq!(t.next_restart_ms(), Some(now + RESTART_DELAY_MS));
        t.set_time(now + RESTART_DELAY_MS - 1);
        assert!(t.run_restarts().is_empty());
        now += RESTART_DELAY_MS;
        t.set_time(now);
        assert_eq!(t.run_restarts().len(), 1);
    }
    let id = t.domains().by_name("s").unwrap();
    t.hypervisor_mut().guest_shutdown(id, ShutdownReason::Crash);
    t.on_dom_exc();
    run(&mut t, "destroy s");
    t.set_time(now + 10 * RESTART_DELAY_MS);
    assert!(t.run_restarts().is_empty());
    assert_eq!(t.next_restart_ms(), None);
    assert_clean(&t, free);
}

#[test]
fn shutdown_pause_unpause_and_refusals() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    run(&mut t, "create /etc/xen/web.cfg");
    assert_eq!(run(&mut t, "pause web"), "");
    assert!(run(&mut t, "list").contains("--p---"));
    assert_eq!(t.domains().get(DomId(1)).unwrap().state, State::Paused);
    assert_eq!(run(&mut t, "unpause 1"), "");
    assert!(run(&mut t, "list").contains("-b----"));
    assert_eq!(
        run(&mut t, "shutdown web"),
        "Shutting down domain 1\nDomain 1 does not act on control/shutdown: shut down by the \
         hypervisor\n"
    );
    assert_eq!(
        t.on_dom_exc(),
        ["Domain 1 (web) has shut down, reason code 0 (poweroff); destroying"]
    );
    assert_eq!(
        run_err(&mut t, "destroy Domain-0"),
        "cannot destroy Domain-0"
    );
    assert_eq!(run_err(&mut t, "shutdown 0"), "cannot shut down Domain-0");
    assert_eq!(run_err(&mut t, "pause 0"), "cannot pause Domain-0");
    assert_eq!(run_err(&mut t, "destroy web"), "no domain called 'web'");
    assert_eq!(run_err(&mut t, "unpause 7"), "domain 7 does not exist");
    assert_eq!(
        run_err(&mut t, "frobnicate"),
        "unknown command 'frobnicate'; type 'help' for the list of commands"
    );
    assert!(run(&mut t, "help").contains("wait-for DOM [TEXT]"));
    assert_eq!(run(&mut t, "# a comment"), "");
}

#[test]
fn info_reports_the_host() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    run(&mut t, "create /etc/xen/web.cfg");
    let info = run(&mut t, "info");
    assert!(info.contains("total_memory           : 320\n"), "{info}");
    assert!(info.contains("free_memory            : 55\n"), "{info}");
    assert!(info.contains("nr_domains             : 2\n"), "{info}");
    assert!(info.contains("xen_version            : 4.17.0\n"), "{info}");
    t.hypervisor_mut()
        .fail_on
        .push(("physinfo", XenError::Perm));
    assert_eq!(run_err(&mut t, "info"), "info: physinfo failed: EPERM (1)");
}

#[test]
fn create_errors_are_typed() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    let created = t.create_domain("etc/xen/web.cfg", &[]).unwrap();
    assert_eq!(
        created,
        Created {
            id: DomId(1),
            warnings: Vec::new(),
            peer: None,
        }
    );
    assert_eq!(
        t.create_domain("etc/xen/web.cfg", &[]),
        Err(CreateError::DuplicateName {
            name: "web".into(),
            id: DomId(1)
        })
    );
    assert!(matches!(
        t.create_domain("etc/xen/big.cfg", &[]),
        Err(CreateError::Build {
            error: BuildError::NotEnoughMemory { .. },
            ..
        })
    ));
    assert!(matches!(
        t.create_domain("etc/xen/notelf.cfg", &[]),
        Err(CreateError::Build {
            error: BuildError::Image(_),
            ..
        })
    ));
    assert!(matches!(
        t.create_domain("etc/xen/bad.cfg", &[]),
        Err(CreateError::Config(config::ConfigError {
            line: 2,
            column: 8,
            ..
        }))
    ));
    assert!(matches!(
        t.create_domain("etc/xen/nokernel.cfg", &[]),
        Err(CreateError::Missing {
            what: "kernel",
            error: LookupError::NotFound,
            ..
        })
    ));
    t.hypervisor_mut()
        .fail_on
        .push(("setvcpucontext", XenError::Inval));
    assert!(matches!(
        t.create_domain("etc/xen/web.cfg", &["name=w2"]),
        Err(CreateError::Build {
            error: BuildError::Hypercall {
                op: "setvcpucontext",
                domid: Some(DomId(2)),
                cleanup: Ok(()),
                ..
            },
            ..
        })
    ));
}

/// `evtchn_peer`: the peer gets an unbound port for the new domain, allocated before the new
/// domain starts, and the new domain's command line says where it is.
#[test]
fn evtchn_peer_offers_a_port_of_the_peer() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    let free = t.hypervisor().free_pages();
    assert_eq!(
        run_err(&mut t, "create /etc/xen/pong.cfg"),
        "cannot create domain 'pong': evtchn_peer 'ping': no such domain"
    );
    assert_eq!(
        run_err(&mut t, "create /etc/xen/pong.cfg evtchn_peer=42"),
        "cannot create domain 'pong': evtchn_peer '42': domain 42 does not exist"
    );
    assert!(t.hypervisor().domains.is_empty());
    run(&mut t, "create /etc/xen/ping.cfg");
    let ping = t.domains().by_name("ping").unwrap();
    let console = t.hypervisor().domains[&ping.0].unbound.clone();
    let out = run(&mut t, "create /etc/xen/pong.cfg");
    let pong = t.domains().by_name("pong").unwrap();
    let offered = &t.hypervisor().domains[&ping.0].unbound;
    assert_eq!(offered.len(), console.len() + 1);
    let (port, remote) = offered[offered.len() - 1];
    assert_eq!(remote, pong);
    assert_eq!(
        out,
        alloc::format!(
            "Parsing config from /etc/xen/pong.cfg\n\
             Event channel: port {} of domain {} (ping) offered to pong\n\
             Started domain pong (id={})\n",
            port.0,
            ping.0,
            pong.0
        )
    );
    let si = t.hypervisor().start_info(pong).unwrap();
    assert_eq!(
        si.cmdline(),
        alloc::format!("role=pong remote={} port={}", ping.0, port.0).as_bytes()
    );
    // The peer by id works too; without a command line the words stand alone.
    run(&mut t, "create /etc/xen/pong.cfg name=pong2 cmdline=''");
    let pong2 = t.domains().by_name("pong2").unwrap();
    let si = t.hypervisor().start_info(pong2).unwrap();
    assert!(
        si.cmdline()
            .starts_with(alloc::format!("remote={} port=", ping.0).as_bytes())
    );
    for d in ["pong2", "pong", "ping"] {
        run(&mut t, &alloc::format!("destroy {d}"));
    }
    assert_clean(&t, free);
}
