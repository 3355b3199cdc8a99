//! Disks end to end over the fake hypervisor: a config's disks at create, the handshake
//! with a frontend played through the store, requests on a granted ring, `block-list`,
//! `block-attach`, `block-detach`, and the release at destroy.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use guest_abi::DomId;
use guest_abi::io::blkif::{BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_OKAY};

use super::tests::{run, run_err};
use super::*;
use crate::block_device::MemoryDisk;
use crate::cpio::{Archive, write_newc};
use crate::fake::{self, FakeHv, FakeRing};
use crate::shared_page::SharedPage;

fn archive() -> Vec<u8> {
    let kernel = fake::kernel_image(true);
    write_newc(&[
        (
            "etc/xen/a.cfg",
            b"name='a'\nmemory=8\nkernel='/hello'\ndisk=['phy:/dev/vda,xvda,w']\n",
        ),
        (
            "etc/xen/b.cfg",
            b"name='b'\nmemory=8\nkernel='/hello'\ndisk=['/dev/vda,,xvda,r']\n",
        ),
        ("etc/xen/c.cfg", b"name='c'\nmemory=8\nkernel='/hello'\n"),
        (
            "etc/xen/ghost.cfg",
            b"name='g'\nmemory=8\nkernel='/hello'\ndisk=['phy:/dev/vdz,xvda']\n",
        ),
        ("hello", &kernel),
    ])
}

fn setup(bytes: &[u8]) -> Toolstack<FakeHv, Archive<'_>> {
    let mut t = Toolstack::new(FakeHv::new(16 * 1024), Archive::parse(bytes).unwrap());
    t.add_disk("/dev/vda".into(), Box::new(MemoryDisk::new(64, false)));
    t.add_disk("/dev/vdb".into(), Box::new(MemoryDisk::new(32, false)));
    t
}

fn node(t: &mut Toolstack<FakeHv, Archive<'_>>, path: &str) -> Option<String> {
    t.store
        .read(path)
        .ok()
        .map(|v| String::from_utf8(v).unwrap())
}

/// A frontend as Linux's blkfront plays it: one ring page, a channel, Initialised.
fn connect_frontend(t: &mut Toolstack<FakeHv, Archive<'_>>, dom: DomId) -> FakeRing {
    let (gref, ring) = t.hv.guest_grant(dom, 100, true);
    let port = t.hv.evtchn_alloc_unbound(dom, DomId(0)).unwrap();
    let front = alloc::format!("/local/domain/{}/device/vbd/51712", dom.0);
    for (name, value) in [
        ("ring-ref", alloc::format!("{gref}")),
        ("event-channel", alloc::format!("{}", port.0)),
        ("protocol", "x86_64-abi".into()),
        ("state", "3".into()),
    ] {
        t.store
            .write(&alloc::format!("{front}/{name}"), value.as_bytes())
            .unwrap();
    }
    t.poll_consoles();
    ring
}

fn push(ring: &FakeRing, index: u32, op: u8, sector: u64, gref: u32) {
    let base = 64 + (index % 32) as usize * 112;
    ring.store_u32(base, u32::from(op) | 1 << 8);
    ring.store_u32(base + 8, 0x1000 + index);
    ring.store_u32(base + 12, 0);
    ring.store_u32(base + 16, sector as u32);
    ring.store_u32(base + 20, (sector >> 32) as u32);
    ring.store_u32(base + 24, gref);
    ring.store_u32(base + 28, 7 << 8); // first_sect 0, last_sect 7
    ring.store_u32(0, index + 1);
}

fn status(ring: &FakeRing, index: u32) -> i16 {
    let base = 64 + (index % 32) as usize * 112;
    assert_eq!(ring.load_u32(base), 0x1000 + index, "response id");
    (ring.load_u32(base + 8) >> 16) as u16 as i16
}

#[test]
fn a_config_disk_connects_serves_and_is_released_at_destroy() {
    let bytes = archive();
    let mut t = setup(&bytes);
    run(&mut t, "create /etc/xen/a.cfg");
    let a = t.domains().by_name("a").unwrap();
    let back = alloc::format!("/local/domain/0/backend/vbd/{}/51712", a.0);
    let front = alloc::format!("/local/domain/{}/device/vbd/51712", a.0);
    assert_eq!(
        node(&mut t, &alloc::format!("{back}/state")).as_deref(),
        Some("2")
    );
    assert_eq!(
        node(&mut t, &alloc::format!("{back}/mode")).as_deref(),
        Some("w")
    );
    assert_eq!(
        node(&mut t, &alloc::format!("{front}/state")).as_deref(),
        Some("1")
    );
    assert_eq!(
        node(&mut t, &alloc::format!("{front}/backend")).as_deref(),
        Some(back.as_str())
    );
    let perms = t.store.get_perms(&front).unwrap();
    assert_eq!(perms.owner(), a);

    let ring = connect_frontend(&mut t, a);
    assert_eq!(
        node(&mut t, &alloc::format!("{back}/state")).as_deref(),
        Some("4")
    );
    assert_eq!(
        node(&mut t, &alloc::format!("{back}/sectors")).as_deref(),
        Some("64")
    );
    assert_eq!(
        node(&mut t, &alloc::format!("{back}/info")).as_deref(),
        Some("0")
    );
    assert_eq!(t.hv.mapped_grants, 1);

    let (data, page) = t.hv.guest_grant(a, 101, true);
    let (back_page, readback) = t.hv.guest_grant(a, 102, true);
    for i in 0..1024 {
        page.store_u32(i * 4, 0xdead_0000 + i as u32);
    }
    push(&ring, 0, BLKIF_OP_WRITE, 8, data);
    push(&ring, 1, BLKIF_OP_READ, 8, back_page);
    t.poll_consoles();
    assert_eq!(status(&ring, 0), BLKIF_RSP_OKAY);
    assert_eq!(status(&ring, 1), BLKIF_RSP_OKAY);
    assert_eq!(ring.load_u32(8), 2, "rsp_prod");
    assert_eq!(readback.load_u32(4 * 77), 0xdead_0000 + 77);

    let list = run(&mut t, &alloc::format!("block-list {}", a.0));
    let row = list.lines().nth(1).unwrap();
    assert!(row.starts_with("51712 0   "), "{list}");
    assert!(row.contains(&back), "{list}");

    run(&mut t, "destroy a");
    assert_eq!(t.hv.mapped_grants, 0);
    assert_eq!(node(&mut t, &back), None);
    assert!(t.disks().iter().all(|(_, d)| d.attachments.is_empty()));
}

#[test]
fn writable_disks_are_exclusive_and_missing_ones_refused() {
    let bytes = archive();
    let mut t = setup(&bytes);
    let e = run_err(&mut t, "create /etc/xen/ghost.cfg");
    assert_eq!(e, "g: /dev/vdz: no such disk in dom0");
    assert!(t.domains().by_name("g").is_none());
    run(&mut t, "create /etc/xen/a.cfg");
    let e = run_err(&mut t, "create /etc/xen/b.cfg");
    assert!(
        e.contains("/dev/vda is already in use: attached writable to domain"),
        "{e}"
    );
    run(&mut t, "create /etc/xen/c.cfg");
    let e = run_err(&mut t, "block-attach c phy:/dev/vda,xvdb,r");
    assert!(e.contains("already in use"), "{e}");
    assert_eq!(
        run_err(&mut t, "block-attach c phy:/dev/vdb"),
        "bad disk spec 'phy:/dev/vdb': no vdev"
    );
    run(&mut t, "block-attach c phy:/dev/vdb,xvdb,w");
    run(&mut t, "destroy a");
    run(&mut t, "create /etc/xen/b.cfg");
}

#[test]
fn detach_waits_for_the_frontend_to_close() {
    let bytes = archive();
    let mut t = setup(&bytes);
    run(&mut t, "create /etc/xen/a.cfg");
    run(&mut t, "create /etc/xen/c.cfg");
    let a = t.domains().by_name("a").unwrap();
    let _ring = connect_frontend(&mut t, a);
    assert_eq!(
        run_err(&mut t, "block-detach a xvdc"),
        "Error: Device xvdc not connected."
    );
    run(&mut t, "block-detach a xvda");
    let back = alloc::format!("/local/domain/0/backend/vbd/{}/51712", a.0);
    let front = alloc::format!("/local/domain/{}/device/vbd/51712", a.0);
    assert_eq!(
        node(&mut t, &alloc::format!("{back}/state")).as_deref(),
        Some("5")
    );
    assert_eq!(
        node(&mut t, &alloc::format!("{back}/online")).as_deref(),
        Some("0")
    );
    assert_eq!(t.hv.mapped_grants, 0);
    // Still in use until the frontend closed.
    assert!(run_err(&mut t, "block-attach c phy:/dev/vda,xvda,w").contains("in use"));
    t.store
        .write(&alloc::format!("{front}/state"), b"6")
        .unwrap();
    t.poll_consoles();
    assert_eq!(node(&mut t, &back), None);
    assert_eq!(node(&mut t, &front), None);
    run(&mut t, "block-attach c phy:/dev/vda,xvda,w");
}

#[test]
fn a_frontend_that_closes_and_reconnects_is_served_again() {
    let bytes = archive();
    let mut t = setup(&bytes);
    run(&mut t, "create /etc/xen/a.cfg");
    let a = t.domains().by_name("a").unwrap();
    let back = alloc::format!("/local/domain/0/backend/vbd/{}/51712", a.0);
    let front = alloc::format!("/local/domain/{}/device/vbd/51712", a.0);
    let _ = connect_frontend(&mut t, a);
    for (state, backend) in [("5", "5"), ("6", "6"), ("1", "2")] {
        t.store
            .write(&alloc::format!("{front}/state"), state.as_bytes())
            .unwrap();
        t.poll_consoles();
        assert_eq!(
            node(&mut t, &alloc::format!("{back}/state")).as_deref(),
            Some(backend)
        );
    }
    assert_eq!(t.hv.mapped_grants, 0);
    let _ = connect_frontend(&mut t, a);
    assert_eq!(
        node(&mut t, &alloc::format!("{back}/state")).as_deref(),
        Some("4")
    );
    assert_eq!(t.hv.mapped_grants, 1);
}

#[test]
fn a_bad_ring_description_is_refused_with_one_line() {
    let bytes = archive();
    let mut t = setup(&bytes);
    run(&mut t, "create /etc/xen/a.cfg");
    let a = t.domains().by_name("a").unwrap();
    let front = alloc::format!("/local/domain/{}/device/vbd/51712", a.0);
    t.store
        .write(&alloc::format!("{front}/ring-ref"), b"4242")
        .unwrap();
    t.store
        .write(&alloc::format!("{front}/event-channel"), b"1")
        .unwrap();
    t.store
        .write(&alloc::format!("{front}/state"), b"3")
        .unwrap();
    let out = String::from_utf8(t.poll_consoles()).unwrap();
    assert!(out.contains("cannot connect: map ring-ref 4242"), "{out}");
    let back = alloc::format!("/local/domain/0/backend/vbd/{}/51712/state", a.0);
    assert_eq!(node(&mut t, &back).as_deref(), Some("5"));
    assert_eq!(t.hv.mapped_grants, 0);
}

#[test]
fn mkdisk_makes_a_memory_disk_from_a_file() {
    let bytes = archive();
    let mut t = setup(&bytes);
    assert_eq!(
        run(&mut t, "mkdisk /dev/ram0 /etc/xen/c.cfg"),
        "/dev/ram0: 1 sectors in memory, from /etc/xen/c.cfg\n"
    );
    assert_eq!(
        run_err(&mut t, "mkdisk /dev/ram0 /hello"),
        "mkdisk: /dev/ram0 exists"
    );
    assert!(run_err(&mut t, "mkdisk ram1 /hello").contains("/dev/SOMETHING"));
    assert!(run_err(&mut t, "mkdisk /dev/ram1 /nothing").starts_with("/nothing: "));
    run(&mut t, "create /etc/xen/c.cfg");
    run(&mut t, "block-attach c /dev/ram0,,xvda,r");
    let c = t.domains().by_name("c").unwrap();
    let back = alloc::format!("/local/domain/0/backend/vbd/{}/51712/params", c.0);
    assert_eq!(node(&mut t, &back).as_deref(), Some("/dev/ram0"));
}

#[test]
fn a_rebooted_domain_gets_its_disk_again() {
    let bytes = archive();
    let mut t = setup(&bytes);
    run(&mut t, "create /etc/xen/a.cfg");
    let a = t.domains().by_name("a").unwrap();
    let _ = connect_frontend(&mut t, a);
    t.hv.guest_shutdown(a, guest_abi::sched::ShutdownReason::Reboot);
    t.on_dom_exc();
    t.set_time(RESTART_DELAY_MS);
    let lines = t.run_restarts();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("restarted as domain"), "{lines:?}");
    let again = t.domains().by_name("a").unwrap();
    assert_ne!(again, a);
    assert_eq!(t.hv.mapped_grants, 0);
    let back = alloc::format!("/local/domain/0/backend/vbd/{}/51712/state", again.0);
    assert_eq!(node(&mut t, &back).as_deref(), Some("2"));
    assert_eq!(
        node(
            &mut t,
            &alloc::format!("/local/domain/0/backend/vbd/{}", a.0)
        ),
        None
    );
}

#[test]
fn multi_page_rings_are_mapped_and_too_large_ones_refused() {
    let bytes = archive();
    let mut t = setup(&bytes);
    run(&mut t, "create /etc/xen/a.cfg");
    let a = t.domains().by_name("a").unwrap();
    let front = alloc::format!("/local/domain/{}/device/vbd/51712", a.0);
    let back = alloc::format!("/local/domain/0/backend/vbd/{}/51712/state", a.0);
    let (r0, _) = t.hv.guest_grant(a, 100, true);
    let (r1, _) = t.hv.guest_grant(a, 101, true);
    let port = t.hv.evtchn_alloc_unbound(a, DomId(0)).unwrap();
    for (name, value) in [
        ("ring-page-order", "5".into()),
        ("ring-ref0", alloc::format!("{r0}")),
        ("ring-ref1", alloc::format!("{r1}")),
        ("event-channel", alloc::format!("{}", port.0)),
        ("state", "3".into()),
    ] {
        t.store
            .write(&alloc::format!("{front}/{name}"), value.as_bytes())
            .unwrap();
    }
    let out = String::from_utf8(t.poll_consoles()).unwrap();
    assert!(out.contains("ring-page-order 5 is more than 4"), "{out}");
    assert_eq!(node(&mut t, &back).as_deref(), Some("5"));
    // The frontend closes, starts again with a two-page ring.
    for state in ["6", "1"] {
        t.store
            .write(&alloc::format!("{front}/state"), state.as_bytes())
            .unwrap();
        t.poll_consoles();
    }
    assert_eq!(node(&mut t, &back).as_deref(), Some("2"));
    t.store
        .write(&alloc::format!("{front}/ring-page-order"), b"1")
        .unwrap();
    t.store
        .write(&alloc::format!("{front}/state"), b"3")
        .unwrap();
    t.poll_consoles();
    assert_eq!(node(&mut t, &back).as_deref(), Some("4"));
    assert_eq!(t.hv.mapped_grants, 2);
}
