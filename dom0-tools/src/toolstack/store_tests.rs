//! The toolstack's use of the store, over the fake hypervisor: the nodes of a domain, its
//! ring, graceful shutdown and reboot, `mem-set` and the `xenstore-*` commands.

use alloc::string::String;
use alloc::vec::Vec;

use guest_abi::sched::ShutdownReason;

use super::tests::{archive_bytes, assert_clean, run, run_err, toolstack};
use super::*;
use crate::fake::FakeHv;
use crate::xenstore::guest_side::{recv, send};
use crate::xenstore::msg;

/// The guest sends one request on its store ring; dom0 services it; the reply.
fn ask<F: Files>(
    t: &mut Toolstack<FakeHv, F>,
    dom: DomId,
    ty: u32,
    payload: &[u8],
) -> (u32, Vec<u8>) {
    let r = t.hypervisor_mut().guest_store(dom);
    send(&r, ty, 42, payload);
    t.poll_consoles();
    let (ty, id, payload) = recv(&r).expect("a reply");
    assert_eq!(id, 42);
    (ty, payload)
}

#[test]
fn a_domain_gets_its_nodes_and_a_store_it_can_talk_to() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    let free = t.hypervisor().free_pages();
    run(&mut t, "create /etc/xen/web.cfg");
    let web = t.domains().by_name("web").unwrap();
    let si = t.hypervisor().start_info(web).unwrap();
    assert_ne!(si.store_evtchn, 0, "Linux's xenbus runs in normal mode");
    let home = alloc::format!("/local/domain/{}", web.0);
    let read =
        |t: &mut Toolstack<FakeHv, _>, p: &str| run(t, &alloc::format!("xenstore-read {home}/{p}"));
    assert_eq!(read(&mut t, "name"), "web\n");
    assert_eq!(read(&mut t, "domid"), "1\n");
    assert_eq!(read(&mut t, "memory/target"), "8192\n");
    assert_eq!(read(&mut t, "memory/static-max"), "8192\n");
    assert_eq!(read(&mut t, "cpu/0/availability"), "online\n");
    assert_eq!(read(&mut t, "console/type"), "xenconsoled\n");
    assert_eq!(
        read(&mut t, "console/port"),
        alloc::format!("{}\n", si.console.evtchn)
    );
    assert_eq!(
        read(&mut t, "store/port"),
        alloc::format!("{}\n", si.store_evtchn)
    );
    assert_eq!(
        read(&mut t, "control/platform-feature-xs_reset_watches"),
        "1\n"
    );
    let vm = read(&mut t, "vm");
    assert!(vm.starts_with("/vm/"), "{vm}");
    assert_eq!(
        run(&mut t, &alloc::format!("xenstore-read {}/name", vm.trim())),
        "web\n"
    );
    // dom0 waits on the store's event channel too.
    assert_eq!(t.console_ports().len(), 2);
    // The guest reads its nodes over its ring, relative to its home, and is notified.
    let sent = t.hypervisor().sent.len();
    assert_eq!(
        ask(&mut t, web, msg::READ, b"name\0"),
        (msg::READ, b"web".to_vec())
    );
    assert!(t.hypervisor().sent.len() > sent);
    assert_eq!(
        ask(&mut t, web, msg::WRITE, b"memory/target\x001"),
        (msg::ERROR, b"EACCES\0".to_vec())
    );
    assert_eq!(
        ask(&mut t, web, msg::WRITE, b"data/hello\0world"),
        (msg::WRITE, b"OK\0".to_vec())
    );
    assert_eq!(
        run(&mut t, &alloc::format!("xenstore-read {home}/data/hello")),
        "world\n"
    );
    // Gone: nodes, ring and port with it.
    run(&mut t, "destroy web");
    assert_eq!(
        run_err(&mut t, &alloc::format!("xenstore-read {home}/name")),
        alloc::format!("xenstore-read {home}/name: ENOENT")
    );
    assert_eq!(run(&mut t, "xenstore-ls /vm"), "");
    assert!(!t.store().is_introduced(web));
    assert_clean(&t, free);
}

#[test]
fn shutdown_and_reboot_ask_through_the_store_then_force() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    run(&mut t, "create /etc/xen/web.cfg");
    let web = t.domains().by_name("web").unwrap();
    // The guest says it acts on control/shutdown, and watches it.
    ask(&mut t, web, msg::WRITE, b"control/feature-poweroff\x001");
    ask(&mut t, web, msg::WRITE, b"control/feature-reboot\x001");
    assert_eq!(
        ask(&mut t, web, msg::WATCH, b"control/shutdown\0w\0"),
        (msg::WATCH, b"OK\0".to_vec())
    );
    let r = t.hypervisor_mut().guest_store(web);
    assert_eq!(
        recv(&r),
        Some((msg::WATCH_EVENT, 0, b"control/shutdown\0w\0".to_vec()))
    );
    t.set_time(1000);
    let reply = t.execute("shutdown -w web").unwrap();
    assert_eq!(reply.output, "Shutting down domain 1\n");
    assert_eq!(reply.wait, Some(Wait::Gone(web)));
    assert!(!t.wait_done(&Wait::Gone(web)));
    t.poll_consoles();
    assert_eq!(
        recv(&r),
        Some((msg::WATCH_EVENT, 0, b"control/shutdown\0w\0".to_vec()))
    );
    assert_eq!(
        ask(&mut t, web, msg::READ, b"control/shutdown\0"),
        (msg::READ, b"poweroff".to_vec())
    );
    assert_eq!(
        t.hypervisor().domains[&web.0].shutdown,
        None,
        "asked, not forced"
    );
    // Not acted on in time: the hypervisor shuts it down.
    t.set_time(1000 + SHUTDOWN_TIMEOUT_MS - 1);
    assert!(t.run_restarts().is_empty());
    t.set_time(1000 + SHUTDOWN_TIMEOUT_MS);
    assert_eq!(
        t.run_restarts(),
        ["Domain 1 (web) did not act on control/shutdown within 30 s; shutting it down"]
    );
    assert_eq!(
        t.hypervisor().domains[&web.0].shutdown,
        Some(ShutdownReason::Poweroff as u32)
    );
    assert!(t.wait_done(&Wait::Gone(web)));
    t.on_dom_exc();
    // reboot asks for a reboot; -F forces at once.
    run(&mut t, "create /etc/xen/web.cfg");
    let web = t.domains().by_name("web").unwrap();
    ask(&mut t, web, msg::WRITE, b"control/feature-reboot\x001");
    assert_eq!(run(&mut t, "reboot web"), "Rebooting domain 2\n");
    assert_eq!(
        ask(&mut t, web, msg::READ, b"control/shutdown\0"),
        (msg::READ, b"reboot".to_vec())
    );
    // The guest acts: it shuts down with reason reboot; no forced shutdown follows.
    t.hypervisor_mut()
        .remote_shutdown(web, ShutdownReason::Reboot)
        .unwrap();
    t.set_time(1_000_000);
    assert!(t.run_restarts().is_empty());
    assert_eq!(
        t.on_dom_exc(),
        ["Domain 2 (web) has shut down, reason code 1 (reboot); restarting in 2 s"]
    );
    run(&mut t, "destroy web");
    run(&mut t, "create /etc/xen/web.cfg");
    let web = t.domains().by_name("web").unwrap();
    ask(&mut t, web, msg::WRITE, b"control/feature-poweroff\x001");
    assert_eq!(run(&mut t, "shutdown -F web"), "Shutting down domain 3\n");
    assert_eq!(
        t.hypervisor().domains[&web.0].shutdown,
        Some(ShutdownReason::Poweroff as u32)
    );
    assert_eq!(run_err(&mut t, "reboot 0"), "cannot reboot Domain-0");
    assert_eq!(
        run_err(&mut t, "shutdown -x web"),
        "shutdown: unknown option '-x'; usage: shutdown [-w] [-F] DOM"
    );
}

#[test]
fn mem_set_writes_the_target() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    run(&mut t, "create /etc/xen/web.cfg");
    assert_eq!(run(&mut t, "mem-set web 4"), "");
    assert_eq!(
        run(&mut t, "xenstore-read /local/domain/1/memory/target"),
        "4096\n"
    );
    run(&mut t, "mem-set web 6144k");
    assert_eq!(
        run(&mut t, "xenstore-read /local/domain/1/memory/target"),
        "6144\n"
    );
    assert_eq!(
        run_err(&mut t, "mem-set web 9"),
        "mem-set web: 9216 KiB is above the domain's maximum of 8192 KiB (maxmem)"
    );
    assert_eq!(
        run_err(&mut t, "mem-set web lots"),
        "mem-set: 'lots' is not a memory size (a number of MiB, or with b/k/m/g/t)"
    );
    assert_eq!(run_err(&mut t, "mem-set 0 4"), "cannot mem-set Domain-0");
    assert_eq!(run_err(&mut t, "mem-set nope 4"), "no domain called 'nope'");
}

#[test]
fn xenstore_commands_list_read_write_and_remove() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    assert_eq!(run(&mut t, "xenstore-write /tool/a \"x y\""), "");
    assert_eq!(run(&mut t, "xenstore-write /tool/a/b 'odd\\\\'"), "");
    assert_eq!(run(&mut t, "xenstore-read /tool/a"), "x y\n");
    assert_eq!(
        run(&mut t, "xenstore-ls /tool"),
        "a = \"x y\"\n b = \"odd\\x5c\\x5c\"\n"
    );
    let all = run(&mut t, "xenstore-ls");
    assert!(
        all.starts_with("local = \"\"\n domain = \"\"\n  0 = \"\"\n"),
        "{all}"
    );
    assert!(all.contains("   name = \"Domain-0\"\n"), "{all}");
    assert_eq!(run(&mut t, "xenstore-rm /tool/a"), "");
    assert_eq!(
        run_err(&mut t, "xenstore-read /tool/a"),
        "xenstore-read /tool/a: ENOENT"
    );
    assert_eq!(
        run_err(&mut t, "xenstore-write bad//path x"),
        "xenstore-write bad//path: not a valid store path (EINVAL)"
    );
    assert!(run(&mut t, "help").contains("xenstore-ls [PATH]"));
}

/// A guest flooding its store ring with garbage and huge requests gets errors; dom0's
/// memory for it stays bounded; another guest's store use goes on.
#[test]
fn a_hostile_store_client_does_not_disturb_another() {
    let bytes = archive_bytes();
    let mut t = toolstack(&bytes);
    run(&mut t, "create /etc/xen/web.cfg");
    run(&mut t, "create /etc/xen/db.cfg");
    let (bad, good) = (DomId(1), DomId(2));
    let r = t.hypervisor_mut().guest_store(bad);
    for round in 0..200u32 {
        // Garbage, then a claim of a huge payload, then writes until the quota says no.
        send(&r, round, round, &[0xff; 40]);
        send(
            &r,
            msg::WRITE,
            round,
            alloc::format!("data/n{round}\0{}", "v".repeat(900)).as_bytes(),
        );
        t.poll_consoles();
        if round % 3 == 0 {
            while recv(&r).is_some() {}
        }
        assert!(t.store().usage(bad).bytes <= crate::store::quota::MEMORY_MAX);
        assert_eq!(
            ask(&mut t, good, msg::READ, b"name\0"),
            (msg::READ, b"db".to_vec())
        );
    }
    let errors: Vec<String> = core::iter::from_fn(|| recv(&r))
        .filter(|(ty, _, _)| *ty == msg::ERROR)
        .map(|(_, _, p)| String::from_utf8(p).unwrap())
        .collect();
    assert!(!errors.is_empty());
}
