use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;

const GOOD: &str = r#"# A PV guest
name = "web"
memory = 64
maxmem = 0x80        # hex, as in C
vcpus = 2;
kernel = "/boot/hello"
ramdisk = '/boot/initrd'
extra = "console=hvc0 \"quoted\""
on_crash = "preserve"
vif = [ 'bridge=xenbr0',
        "mac=00:16:3e:00:00:01", ]
"#;

fn ok(text: &str) -> Parsed {
    parse("guest.cfg", text, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str, overrides: &[&str]) -> String {
    match parse("guest.cfg", text, overrides) {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn reads_a_full_file() {
    let p = ok(GOOD);
    let c = &p.config;
    assert_eq!(c.name, "web");
    assert_eq!((c.memory_mib, c.maxmem_mib, c.vcpus), (64, 128, 2));
    assert_eq!(c.kernel, "/boot/hello");
    assert_eq!(c.ramdisk.as_deref(), Some("/boot/initrd"));
    assert_eq!(c.cmdline, "console=hvc0 \"quoted\"");
    assert_eq!(c.on_crash, Action::Preserve);
    assert_eq!(c.on_reboot, Action::Restart);
    assert_eq!(c.on_poweroff, Action::Destroy);
    assert_eq!(
        p.warnings,
        vec!["guest.cfg:10: warning: unknown setting 'vif' ignored".to_string()]
    );
}

#[test]
fn defaults_are_libxl_defaults() {
    let c = ok("name='a'\nkernel='k'").config;
    assert_eq!((c.memory_mib, c.maxmem_mib, c.vcpus), (32, 32, 1));
    assert_eq!(c.ramdisk, None);
    assert_eq!(c.cmdline, "");
    assert_eq!(c.on_watchdog, Action::Destroy);
}

#[test]
fn cmdline_root_and_extra_follow_xl() {
    let base = "name='a'\nkernel='k'\n";
    let cmd = |extra: &str| ok(&(base.to_string() + extra)).config.cmdline;
    assert_eq!(cmd("root='/dev/xvda1'\nextra='ro'"), "root=/dev/xvda1 ro");
    assert_eq!(cmd("root='/dev/xvda1'"), "root=/dev/xvda1");
    assert_eq!(cmd("extra='quiet'"), "quiet");
    let p = ok(&(base.to_string() + "cmdline='a b'\nextra='ignored'"));
    assert_eq!(p.config.cmdline, "a b");
    assert_eq!(
        p.warnings,
        vec!["guest.cfg: warning: ignoring root= and extra= in favour of cmdline=".to_string()]
    );
}

#[test]
fn numbers_are_c_integers_and_strings_hold_numbers() {
    let c = ok("name='a'\nkernel='k'\nmemory=010\nmaxmem=\"0x10\"").config;
    assert_eq!((c.memory_mib, c.maxmem_mib), (8, 16));
}

#[test]
fn escapes_and_append() {
    let c = ok("name='a'\nkernel='k'\nextra=\"a\\tb\\x41\\101\\\\\"\nextra+=' c'").config;
    assert_eq!(c.cmdline, "a\tbAA\\ c");
}

#[test]
fn last_setting_wins_and_overrides_win_over_the_file() {
    let p = parse(
        "guest.cfg",
        "name='a'\nname='b'\nkernel='k'\nmemory=64",
        &["memory=128", "name=other", "extra=console=hvc0 quiet"],
    )
    .unwrap();
    assert_eq!(p.config.name, "other");
    assert_eq!(p.config.memory_mib, 128);
    assert_eq!(p.config.cmdline, "console=hvc0 quiet");
}

#[test]
fn quoted_override_values_keep_xl_syntax() {
    let p = parse(
        "g",
        "name='a'\nkernel='k'",
        &["extra=\"x y\"", "kernel=/boot/k\"2"],
    )
    .unwrap();
    assert_eq!(p.config.cmdline, "x y");
    assert_eq!(p.config.kernel, "/boot/k\"2");
}

#[test]
fn all_actions_are_accepted() {
    for a in Action::ALL {
        let c = ok(&alloc::format!(
            "name='a'\nkernel='k'\non_reboot='{}'",
            a.name()
        ))
        .config;
        assert_eq!(c.on_reboot, a);
    }
    assert_eq!(Action::CoredumpRestart.effect(), Effect::Restart);
    assert_eq!(Action::RenameRestart.effect(), Effect::Restart);
    assert_eq!(Action::CoredumpDestroy.effect(), Effect::Destroy);
    assert_eq!(Action::Preserve.effect(), Effect::Preserve);
}

/// Each bad input gives exactly one clear line.
#[test]
fn errors_are_one_clear_line() {
    let k = "name='a'\nkernel='k'\n";
    let cases: Vec<(String, &[&str], &str)> = vec![
        (
            "name='a'\nkernel='k'\nmemory 64".into(),
            &[],
            "guest.cfg:3: expected '=' after 'memory'",
        ),
        (
            alloc::format!("{k}memory = "),
            &[],
            "guest.cfg:3: expected a value after 'memory =', found end of file",
        ),
        (
            alloc::format!("{k}memory = 64 64"),
            &[],
            "guest.cfg:3: expected end of line after the value of 'memory', found '64'",
        ),
        (
            alloc::format!("{k}= 3"),
            &[],
            "guest.cfg:3: expected a setting name, found '='",
        ),
        (
            alloc::format!("{k}memory = 12ab"),
            &[],
            "guest.cfg:3: invalid number '12ab'",
        ),
        (
            alloc::format!("{k}memory = 09"),
            &[],
            "guest.cfg:3: invalid number '09'",
        ),
        (
            alloc::format!("{k}memory = -1"),
            &[],
            "guest.cfg:3: unexpected character '-'",
        ),
        (
            alloc::format!("{k}extra = \"abc\n"),
            &[],
            "guest.cfg:3: unterminated string",
        ),
        (
            alloc::format!("{k}extra = \"a\\qb\""),
            &[],
            "guest.cfg:3: invalid escape sequence: backslash followed by 'q'",
        ),
        (
            alloc::format!("{k}vif = [ 'a' 'b' ]"),
            &[],
            "guest.cfg:3: expected ',' or ']' in the list for 'vif', found a string",
        ),
        (
            alloc::format!("{k}vif = [ 'a',\n"),
            &[],
            "guest.cfg:4: unterminated list for 'vif'",
        ),
        (
            alloc::format!("{k}vif = [ ['a'] ]"),
            &[],
            "guest.cfg:3: lists cannot be nested",
        ),
        (
            alloc::format!("{k}kernel = ['a']"),
            &[],
            "guest.cfg:3: 'kernel' must be a string, not a list",
        ),
        (
            alloc::format!("{k}memory = 'lots'"),
            &[],
            "guest.cfg:3: 'memory' must be a number, found \"lots\"",
        ),
        (
            alloc::format!("{k}memory = 0"),
            &[],
            "guest.cfg:3: memory must be greater than 0",
        ),
        (
            alloc::format!("{k}memory = 64\nmaxmem = 32"),
            &[],
            "guest.cfg:4: maxmem (32 MiB) is less than memory (64 MiB)",
        ),
        (
            alloc::format!("{k}vcpus = 0"),
            &[],
            "guest.cfg:3: vcpus must be between 1 and 32 (the hypervisor's limit per domain), not 0",
        ),
        (
            alloc::format!("{k}vcpus = 33"),
            &[],
            "guest.cfg:3: vcpus must be between 1 and 32 (the hypervisor's limit per domain), not 33",
        ),
        (
            alloc::format!("{k}vcpus = 32"),
            &["vcpus=128"],
            "command line:1: vcpus must be between 1 and 32 (the hypervisor's limit per domain), not 128",
        ),
        (
            alloc::format!("{k}memory = 99999999"),
            &[],
            "guest.cfg:3: memory = 99999999 MiB is more than the 1048576 MiB allowed",
        ),
        (
            alloc::format!("{k}on_crash = 'explode'"),
            &[],
            "guest.cfg:3: invalid value 'explode' for 'on_crash' (use destroy, restart, rename-restart, preserve, coredump-destroy or coredump-restart)",
        ),
        (
            alloc::format!("{k}type = 'hvm'"),
            &[],
            "guest.cfg:3: type \"hvm\" is not supported: only PV guests can be built",
        ),
        (
            alloc::format!("{k}extra += ['a']"),
            &[],
            "guest.cfg:3: 'extra' must be a string, not a list",
        ),
        (
            alloc::format!("{k}extra = 'a'\nextra += ['a']"),
            &[],
            "guest.cfg:4: cannot append this value to 'extra'",
        ),
        (
            "kernel='k'".into(),
            &[],
            "guest.cfg: no domain name: set name = \"...\"",
        ),
        (
            "name=''\nkernel='k'".into(),
            &[],
            "guest.cfg:1: the domain name is empty",
        ),
        (
            "name='a b'\nkernel='k'".into(),
            &[],
            "guest.cfg:1: invalid character ' ' in domain name 'a b' (use letters, digits and . _ - : +)",
        ),
        (
            "name='42'\nkernel='k'".into(),
            &[],
            "guest.cfg:1: domain name '42' is all digits (it would read as a domain id)",
        ),
        (
            "name='Domain-0'\nkernel='k'".into(),
            &[],
            "guest.cfg:1: domain name 'Domain-0' is reserved for dom0",
        ),
        (
            "name='a'".into(),
            &[],
            "guest.cfg: no kernel: set kernel = \"PATH\" (a Xen PV kernel in the dom0 archive)",
        ),
        (
            k.into(),
            &["memory"],
            "command line:1: expected key=value, found 'memory'",
        ),
        (
            k.into(),
            &["vcpus=1", "memory=0"],
            "command line:2: memory must be greater than 0",
        ),
        (
            k.into(),
            &["memory=12x"],
            "command line:1: invalid number '12x'",
        ),
        (
            k.into(),
            &["=3"],
            "command line:1: expected a setting name, found '='",
        ),
        (
            "name='a'\nkernel='k'\nmemory=\u{1}".into(),
            &[],
            "guest.cfg:3: unexpected character '\\x01'",
        ),
    ];
    for (text, overrides, want) in cases {
        let got = err(&text, overrides);
        assert_eq!(got, want, "for {text:?} {overrides:?}");
        assert!(!got.contains('\n'));
    }
}

#[test]
fn errors_carry_line_and_column() {
    let e = parse("g", "name='a'\nkernel='k'\n  memory = 'x'", &[]).unwrap_err();
    assert_eq!((e.line, e.column), (3, 12));
    let e = parse("g", "name='a'\n\n   memory 3", &[]).unwrap_err();
    assert_eq!((e.line, e.column), (3, 11));
}

#[test]
fn name_rules() {
    assert!(check_name("web-1.example_a:b+c").is_ok());
    assert!(check_name(&"x".repeat(MAX_NAME_LEN)).is_ok());
    assert!(check_name(&"x".repeat(MAX_NAME_LEN + 1)).is_err());
    assert!(check_name("a/b").is_err());
    assert!(check_name("0x1").is_ok());
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(text in "\\PC*", o in "\\PC*") {
        let _ = parse("f", &text, &[&o]);
    }

    #[test]
    fn never_panics_on_config_like_text(
        lines in proptest::collection::vec(
            "[a-z_]{1,8} ?(=|\\+=)? ?(\"[^\"\n]{0,6}\"?|'[^'\n]{0,4}'?|[0-9a-fx]{1,5}|\\[[ 0-9,'\"a\n]{0,10}\\]?)? ?[;#]?",
            0..12,
        )
    ) {
        let text = lines.join("\n");
        match parse("f", &text, &[]) {
            Ok(p) => prop_assert!(p.config.memory_mib > 0),
            Err(e) => prop_assert!(!e.to_string().contains('\n')),
        }
    }
}

#[test]
fn disks_are_a_list_of_xl_specs() {
    let p = ok("name=\"g\"\nkernel=\"k\"\ndisk = [ 'phy:/dev/vdb,xvda,w', 'vdc,,xvdb,r' ]\n");
    let d = &p.config.disks;
    assert_eq!(d.len(), 2);
    assert_eq!(
        (d[0].target.as_str(), d[0].devid, d[0].writable),
        ("/dev/vdb", 51712, true)
    );
    assert_eq!(
        (d[1].target.as_str(), d[1].vdev.as_str(), d[1].writable),
        ("/dev/vdc", "xvdb", false)
    );
    let e = err("name=\"g\"\nkernel=\"k\"\ndisk = [ 'phy:/dev/vdb' ]\n", &[]);
    assert!(e.contains("bad disk spec 'phy:/dev/vdb': no vdev"), "{e}");
    let e = err(
        "name=\"g\"\nkernel=\"k\"\ndisk = [ 'vdb,,xvda', 'vdc,,xvda' ]\n",
        &[],
    );
    assert!(e.contains("disk xvda is given twice"), "{e}");
    let e = err("name=\"g\"\nkernel=\"k\"\ndisk = 'vdb,,xvda'\n", &[]);
    assert!(e.contains("must be a list"), "{e}");
}
