//! The store's host tests: each request's semantics, permissions, watches, transactions
//! and quotas, and properties over random request sequences from three domains.

use alloc::string::String;
use alloc::vec::Vec;

use guest_abi::DomId;
use proptest::prelude::*;

use super::perms::{Access, Perms};
use super::quota::{self, EVENTS_MAX, MEMORY_MAX, NODE_SIZE_MAX, TRANSACTIONS_MAX, WATCHES_MAX};
use super::tree;
use super::wire::{Header, msg};
use super::{Store, StoreError};

fn req(s: &mut Store, dom: u16, ty: u32, tx: u32, payload: &[u8]) -> Result<Vec<u8>, StoreError> {
    let h = Header {
        ty,
        req_id: 7,
        tx_id: tx,
        len: payload.len() as u32,
    };
    s.execute(DomId(dom), h, payload)
}

fn write(s: &mut Store, dom: u16, path: &str, value: &str) -> Result<Vec<u8>, StoreError> {
    let p = [path.as_bytes(), b"\0", value.as_bytes()].concat();
    req(s, dom, msg::WRITE, 0, &p)
}

fn read(s: &mut Store, dom: u16, path: &str) -> Result<Vec<u8>, StoreError> {
    req(s, dom, msg::READ, 0, &[path.as_bytes(), b"\0"].concat())
}

fn one(s: &mut Store, dom: u16, ty: u32, path: &str) -> Result<Vec<u8>, StoreError> {
    req(s, dom, ty, 0, &[path.as_bytes(), b"\0"].concat())
}

/// A store with domains 1 and 2 introduced, each with a home it may read (`n0`, `rN`)
/// and a `data` node of its own (`nN`), as the toolstack makes them.
fn store() -> Store {
    let mut s = Store::new();
    for d in [1u16, 2] {
        let home = alloc::format!("/local/domain/{d}");
        s.write(&home, b"").unwrap();
        s.set_perms(
            &home,
            Perms::new(DomId(0), Access::None).with(DomId(d), Access::Read),
        )
        .unwrap();
        let data = alloc::format!("{home}/data");
        s.write(&data, b"").unwrap();
        s.set_perms(&data, Perms::new(DomId(d), Access::None))
            .unwrap();
        s.introduce(DomId(d));
    }
    s
}

fn events(s: &mut Store, dom: u16) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some(m) = s.take_event(DomId(dom)) {
        assert_eq!(
            u32::from_le_bytes(m[..4].try_into().unwrap()),
            msg::WATCH_EVENT
        );
        let parts: Vec<String> = m[16..]
            .split(|&b| b == 0)
            .map(|p| String::from_utf8(p.to_vec()).unwrap())
            .collect();
        out.push((parts[0].clone(), parts[1].clone()));
    }
    out
}

fn ev(path: &str, token: &str) -> (String, String) {
    (path.into(), token.into())
}

#[test]
fn write_read_mkdir_rm_and_directory() {
    let mut s = store();
    assert_eq!(write(&mut s, 0, "/a/b/c", "v"), Ok(b"OK\0".to_vec()));
    assert_eq!(read(&mut s, 0, "/a/b/c").unwrap(), b"v");
    assert_eq!(
        read(&mut s, 0, "/a/b").unwrap(),
        b"",
        "parents are created empty"
    );
    assert_eq!(one(&mut s, 0, msg::MKDIR, "/a/b/c"), Ok(b"OK\0".to_vec()));
    assert_eq!(
        read(&mut s, 0, "/a/b/c").unwrap(),
        b"v",
        "mkdir keeps a value"
    );
    write(&mut s, 0, "/a/b/d", "").unwrap();
    assert_eq!(one(&mut s, 0, msg::DIRECTORY, "/a/b").unwrap(), b"c\0d\0");
    assert_eq!(one(&mut s, 0, msg::RM, "/a/b"), Ok(b"OK\0".to_vec()));
    assert_eq!(read(&mut s, 0, "/a/b/c"), Err(StoreError::NoEntry));
    assert_eq!(one(&mut s, 0, msg::DIRECTORY, "/a").unwrap(), b"");
    assert_eq!(
        one(&mut s, 0, msg::RM, "/a/x"),
        Ok(b"OK\0".to_vec()),
        "not there: fine"
    );
    assert_eq!(one(&mut s, 0, msg::RM, "/a/x/y"), Err(StoreError::NoEntry));
    assert_eq!(one(&mut s, 0, msg::RM, "/"), Err(StoreError::Invalid));
    assert!(tree::consistent(s.tree()));
    // Malformed requests.
    assert_eq!(
        req(&mut s, 0, msg::WRITE, 0, b"/novalue"),
        Err(StoreError::Invalid)
    );
    assert_eq!(read(&mut s, 0, "/a//b").unwrap_err().errno(), "EINVAL");
    assert_eq!(req(&mut s, 0, 99, 0, b""), Err(StoreError::Invalid));
    // Relative paths are the caller's home.
    write(&mut s, 1, "data/x", "1").unwrap();
    assert_eq!(read(&mut s, 0, "/local/domain/1/data/x").unwrap(), b"1");
    assert_eq!(
        one(&mut s, 1, msg::GET_DOMAIN_PATH, "1").unwrap(),
        b"/local/domain/1\0"
    );
}

#[test]
fn permissions_are_enforced_for_every_domain() {
    let mut s = store();
    s.write("/local/domain/1/secret", b"s").unwrap();
    s.set_perms("/local/domain/1/secret", Perms::new(DomId(0), Access::None))
        .unwrap();
    // Domain 1 reads its home (r1) but not the secret, nor domain 2's home.
    assert_eq!(read(&mut s, 1, "/local/domain/1").unwrap(), b"");
    assert_eq!(read(&mut s, 1, "secret"), Err(StoreError::Access));
    assert_eq!(
        read(&mut s, 1, "/local/domain/2/data"),
        Err(StoreError::Access)
    );
    // Absence below a readable node is ENOENT, below an unreadable one EACCES.
    assert_eq!(read(&mut s, 1, "nothing"), Err(StoreError::NoEntry));
    assert_eq!(
        read(&mut s, 1, "/local/domain/2/nothing"),
        Err(StoreError::Access)
    );
    assert_eq!(read(&mut s, 1, "/nothing/below"), Err(StoreError::Access));
    // It cannot write dom0's nodes, but can create below its own and owns what it makes.
    assert_eq!(write(&mut s, 1, "name", "x"), Err(StoreError::Access));
    assert_eq!(write(&mut s, 1, "newnode", "x"), Err(StoreError::Access));
    write(&mut s, 1, "data/mine/deep", "x").unwrap();
    assert_eq!(
        one(&mut s, 1, msg::GET_PERMS, "data/mine/deep").unwrap(),
        b"n1\0"
    );
    assert_eq!(
        read(&mut s, 2, "/local/domain/1/data/mine/deep"),
        Err(StoreError::Access)
    );
    // It may open its node to domain 2 but not give it away; domain 2 may not change it.
    let set = |p: &str, perms: &[&str]| {
        let mut v = [p.as_bytes(), b"\0"].concat();
        for q in perms {
            v.extend_from_slice(q.as_bytes());
            v.push(0);
        }
        v
    };
    req(
        &mut s,
        1,
        msg::SET_PERMS,
        0,
        &set("data/mine/deep", &["n1", "r2"]),
    )
    .unwrap();
    assert_eq!(
        read(&mut s, 2, "/local/domain/1/data/mine/deep").unwrap(),
        b"x"
    );
    assert_eq!(
        write(&mut s, 2, "/local/domain/1/data/mine/deep", "y"),
        Err(StoreError::Access)
    );
    assert_eq!(
        req(
            &mut s,
            1,
            msg::SET_PERMS,
            0,
            &set("data/mine/deep", &["n2"])
        ),
        Err(StoreError::Perm)
    );
    assert_eq!(
        req(
            &mut s,
            2,
            msg::SET_PERMS,
            0,
            &set("/local/domain/1/data/mine/deep", &["b2"])
        ),
        Err(StoreError::Access)
    );
    assert_eq!(
        req(
            &mut s,
            1,
            msg::SET_PERMS,
            0,
            &set("data/mine/deep", &["x1"])
        )
        .unwrap_err()
        .errno(),
        "EINVAL"
    );
    // It cannot remove what it may not write, and dom0 may do anything.
    assert_eq!(one(&mut s, 1, msg::RM, "secret"), Err(StoreError::Access));
    assert_eq!(
        one(&mut s, 2, msg::RM, "/local/domain/1/data"),
        Err(StoreError::Access)
    );
    assert_eq!(read(&mut s, 0, "/local/domain/1/secret").unwrap(), b"s");
    // Domain-management requests are dom0's.
    for ty in [
        msg::INTRODUCE,
        msg::RELEASE,
        msg::SET_TARGET,
        msg::RESUME,
        msg::CONTROL,
    ] {
        assert_eq!(
            req(&mut s, 1, ty, 0, b"2\x000\x000\0"),
            Err(StoreError::Access)
        );
    }
    assert!(s.is_introduced(DomId(2)));
}

#[test]
fn watches_fire_once_when_set_and_on_every_change_at_or_below() {
    let mut s = store();
    let watch = |s: &mut Store, dom: u16, p: &str, t: &str| {
        req(
            s,
            dom,
            msg::WATCH,
            0,
            &[p.as_bytes(), b"\0", t.as_bytes(), b"\0"].concat(),
        )
    };
    assert_eq!(watch(&mut s, 1, "data", "tok"), Ok(b"OK\0".to_vec()));
    assert_eq!(events(&mut s, 1), [ev("data", "tok")], "fires once at once");
    assert_eq!(watch(&mut s, 1, "data", "tok"), Err(StoreError::Exists));
    write(&mut s, 1, "data/a", "1").unwrap();
    s.write("/local/domain/1/data/a/b", b"2").unwrap();
    s.write("/local/domain/1/name", b"x").unwrap();
    assert_eq!(
        events(&mut s, 1),
        [ev("data/a", "tok"), ev("data/a/b", "tok")]
    );
    // Removing a parent fires the watches below it with their own paths.
    watch(&mut s, 1, "/local/domain/1/data/a/b", "abs").unwrap();
    events(&mut s, 1);
    s.rm("/local/domain/1/data").unwrap();
    assert_eq!(
        events(&mut s, 1),
        [ev("data", "tok"), ev("/local/domain/1/data/a/b", "abs")]
    );
    // Domain 2 watching everything hears nothing it may not read.
    watch(&mut s, 2, "/", "all").unwrap();
    assert_eq!(events(&mut s, 2), [ev("/", "all")]);
    s.write("/local/domain/1/data", b"").unwrap();
    s.write("/local/domain/2/data", b"z").unwrap();
    assert_eq!(events(&mut s, 2), [ev("/local/domain/2/data", "all")]);
    // Special events reach dom0 only.
    watch(&mut s, 2, "@releaseDomain", "r").unwrap();
    watch(&mut s, 0, "@releaseDomain", "r0").unwrap();
    watch(&mut s, 0, "@introduceDomain", "i0").unwrap();
    events(&mut s, 2);
    events(&mut s, 0);
    s.introduce(DomId(3));
    assert_eq!(
        one(&mut s, 0, msg::IS_DOMAIN_INTRODUCED, "3").unwrap(),
        b"T\0"
    );
    s.release(DomId(3));
    assert_eq!(
        one(&mut s, 0, msg::IS_DOMAIN_INTRODUCED, "3").unwrap(),
        b"F\0"
    );
    s.domain_stopped();
    assert_eq!(
        events(&mut s, 0),
        [
            ev("@introduceDomain", "i0"),
            ev("@releaseDomain", "r0"),
            ev("@releaseDomain", "r0")
        ]
    );
    assert_eq!(events(&mut s, 2), []);
    // Unwatch and reset.
    events(&mut s, 1);
    let unwatch = |s: &mut Store, p: &str, t: &str| {
        req(
            s,
            1,
            msg::UNWATCH,
            0,
            &[p.as_bytes(), b"\0", t.as_bytes(), b"\0"].concat(),
        )
    };
    assert_eq!(unwatch(&mut s, "data", "tok"), Ok(b"OK\0".to_vec()));
    assert_eq!(unwatch(&mut s, "data", "tok"), Err(StoreError::NoEntry));
    assert_eq!(
        req(&mut s, 1, msg::RESET_WATCHES, 0, b""),
        Ok(b"OK\0".to_vec())
    );
    s.write("/local/domain/1/data/a/b", b"again").unwrap();
    assert_eq!(events(&mut s, 1), []);
    assert_eq!(s.usage(DomId(1)).watches, 0);
}

fn start(s: &mut Store, dom: u16) -> u32 {
    let r = req(s, dom, msg::TRANSACTION_START, 0, b"\0").unwrap();
    core::str::from_utf8(&r[..r.len() - 1])
        .unwrap()
        .parse()
        .unwrap()
}

fn end(s: &mut Store, dom: u16, tx: u32, commit: bool) -> Result<Vec<u8>, StoreError> {
    req(
        s,
        dom,
        msg::TRANSACTION_END,
        tx,
        if commit { b"T\0" } else { b"F\0" },
    )
}

#[test]
fn transactions_are_isolated_and_conflicts_end_with_eagain() {
    let mut s = store();
    let tx = start(&mut s, 1);
    assert_ne!(tx, 0);
    req(&mut s, 1, msg::WRITE, tx, b"data/x\0in tx").unwrap();
    assert_eq!(
        read(&mut s, 1, "data/x"),
        Err(StoreError::NoEntry),
        "not yet"
    );
    assert_eq!(
        req(&mut s, 1, msg::READ, tx, b"data/x\0").unwrap(),
        b"in tx"
    );
    req(&mut s, 1, msg::WATCH, 0, b"data\0w\0").unwrap();
    events(&mut s, 1);
    assert_eq!(end(&mut s, 1, tx, true), Ok(b"OK\0".to_vec()));
    assert_eq!(read(&mut s, 1, "data/x").unwrap(), b"in tx");
    assert_eq!(events(&mut s, 1), [ev("data/x", "w")], "fires at commit");
    // A node it read changed meanwhile: EAGAIN, and nothing of it is applied.
    let tx = start(&mut s, 1);
    req(&mut s, 1, msg::READ, tx, b"data/x\0").unwrap();
    req(&mut s, 1, msg::WRITE, tx, b"data/y\0from tx").unwrap();
    s.write("/local/domain/1/data/x", b"changed").unwrap();
    assert_eq!(end(&mut s, 1, tx, true), Err(StoreError::Again));
    assert_eq!(read(&mut s, 1, "data/y"), Err(StoreError::NoEntry));
    // A node it found missing was created meanwhile: EAGAIN too.
    let tx = start(&mut s, 1);
    assert_eq!(
        req(&mut s, 1, msg::READ, tx, b"data/z\0"),
        Err(StoreError::NoEntry)
    );
    write(&mut s, 1, "data/z", "now").unwrap();
    assert_eq!(end(&mut s, 1, tx, true), Err(StoreError::Again));
    // Aborted: nothing applied; ended: the id is gone.
    let tx = start(&mut s, 1);
    req(&mut s, 1, msg::WRITE, tx, b"data/w\0x").unwrap();
    assert_eq!(end(&mut s, 1, tx, false), Ok(b"OK\0".to_vec()));
    assert_eq!(read(&mut s, 1, "data/w"), Err(StoreError::NoEntry));
    assert_eq!(end(&mut s, 1, tx, true), Err(StoreError::NoEntry));
    assert_eq!(
        req(&mut s, 1, msg::READ, 999, b"data\0"),
        Err(StoreError::NoEntry)
    );
    assert_eq!(
        req(&mut s, 1, msg::TRANSACTION_START, 5, b"\0"),
        Err(StoreError::Invalid)
    );
    // Another domain's transaction id is not ours.
    let tx = start(&mut s, 2);
    assert_eq!(end(&mut s, 1, tx, true), Err(StoreError::NoEntry));
    assert_eq!(s.usage(DomId(2)).transactions, 1);
}

#[test]
fn quotas_bound_what_a_domain_makes_dom0_hold() {
    let mut s = store();
    // Node size.
    let big = "x".repeat(NODE_SIZE_MAX);
    assert_eq!(
        write(&mut s, 1, "data/big", &big).unwrap_err().errno(),
        "ENOSPC"
    );
    // Nodes and memory: creating nodes ends with a quota error within the bound.
    let mut made = 0;
    let err = loop {
        match write(&mut s, 1, &alloc::format!("data/n{made}"), "value") {
            Ok(_) => made += 1,
            Err(e) => break e,
        }
        assert!(made <= quota::NODES_MAX);
    };
    assert!(matches!(err.errno(), "ENOMEM" | "ENOSPC"), "{err:?}");
    assert!(s.usage(DomId(1)).bytes <= MEMORY_MAX);
    assert!(made > 100, "{made}");
    // Domain 2 is unaffected.
    write(&mut s, 2, "data/fine", "yes").unwrap();
    // Watches.
    for i in 0..WATCHES_MAX {
        req(
            &mut s,
            2,
            msg::WATCH,
            0,
            alloc::format!("data\0{i}\0").as_bytes(),
        )
        .unwrap();
    }
    assert_eq!(
        req(&mut s, 2, msg::WATCH, 0, b"data\0one more\0")
            .unwrap_err()
            .errno(),
        "E2BIG"
    );
    // Events it never takes: bounded, the rest dropped.
    for i in 0..100 {
        s.write(
            "/local/domain/2/data/fine",
            alloc::format!("{i}").as_bytes(),
        )
        .unwrap();
    }
    assert!(s.event_bytes(DomId(2)) <= EVENTS_MAX);
    assert!(s.dropped_events(DomId(2)) > 0);
    req(&mut s, 2, msg::RESET_WATCHES, 0, b"").unwrap();
    // Transactions.
    for _ in 0..TRANSACTIONS_MAX {
        start(&mut s, 2);
    }
    assert_eq!(
        req(&mut s, 2, msg::TRANSACTION_START, 0, b"\0")
            .unwrap_err()
            .errno(),
        "ENOSPC"
    );
    // Transaction copies count: touching many nodes runs out within the bound.
    req(&mut s, 2, msg::RESET_WATCHES, 0, b"").unwrap();
    let tx = start(&mut s, 2);
    let mut i = 0;
    loop {
        let r = req(
            &mut s,
            2,
            msg::WRITE,
            tx,
            alloc::format!("data/t{i}\0{}", "v".repeat(1000)).as_bytes(),
        );
        if r.is_err() {
            break;
        }
        i += 1;
        assert!(s.usage(DomId(2)).bytes <= MEMORY_MAX);
    }
    assert!(s.usage(DomId(2)).bytes <= MEMORY_MAX);
    // dom0 has no limits.
    s.write("/big", big.as_bytes()).unwrap();
}

#[test]
fn long_directories_come_in_parts() {
    let mut s = store();
    let names: Vec<String> = (0..600).map(|i| alloc::format!("child-{i:05}")).collect();
    for n in &names {
        s.write(&alloc::format!("/dir/{n}"), b"").unwrap();
    }
    let h = Header {
        ty: msg::DIRECTORY,
        req_id: 3,
        tx_id: 0,
        len: 5,
    };
    let m = s.answer(DomId(0), h, b"/dir\0");
    assert_eq!(&m[16..], b"E2BIG\0");
    let mut got = Vec::new();
    let mut offset = 0usize;
    loop {
        let r = req(
            &mut s,
            0,
            msg::DIRECTORY_PART,
            0,
            alloc::format!("/dir\0{offset}\0").as_bytes(),
        )
        .unwrap();
        assert!(r.len() <= super::wire::PAYLOAD_MAX);
        let mut parts: Vec<&[u8]> = r.split(|&b| b == 0).collect();
        parts.pop(); // after the last NUL
        let _generation = parts.remove(0);
        let done = parts.last() == Some(&&b""[..]);
        for p in parts.iter().filter(|p| !p.is_empty()) {
            offset += p.len() + 1;
            got.push(String::from_utf8(p.to_vec()).unwrap());
        }
        if done {
            break;
        }
    }
    assert_eq!(got, names);
    assert_eq!(
        req(&mut s, 0, msg::DIRECTORY_PART, 0, b"/dir\099999999\0"),
        Err(StoreError::Invalid)
    );
}

/// A request a random domain sends.
#[derive(Clone, Debug)]
enum Op {
    Write(u16, usize, u8),
    Mkdir(u16, usize),
    Rm(u16, usize),
    Read(u16, usize),
    Directory(u16, usize),
    SetPerms(u16, usize, u8),
    Watch(u16, usize),
    TxWrite(u16, usize, u8),
    TxRead(u16, usize),
    TxEnd(u16, bool),
}

const PATHS: &[&str] = &[
    "/local/domain/1/data/a",
    "/local/domain/1/data/a/b",
    "/local/domain/1/data/c",
    "/local/domain/2/data/a",
    "/local/domain/2/data/a/b",
    "/local/domain/1",
    "/shared",
    "/shared/x",
];

fn op() -> impl Strategy<Value = Op> {
    let dom = 0u16..3;
    let p = 0..PATHS.len();
    prop_oneof![
        (dom.clone(), p.clone(), any::<u8>()).prop_map(|(d, p, v)| Op::Write(d, p, v)),
        (dom.clone(), p.clone()).prop_map(|(d, p)| Op::Mkdir(d, p)),
        (dom.clone(), p.clone()).prop_map(|(d, p)| Op::Rm(d, p)),
        (dom.clone(), p.clone()).prop_map(|(d, p)| Op::Read(d, p)),
        (dom.clone(), p.clone()).prop_map(|(d, p)| Op::Directory(d, p)),
        (dom.clone(), p.clone(), any::<u8>()).prop_map(|(d, p, v)| Op::SetPerms(d, p, v)),
        (dom.clone(), p.clone()).prop_map(|(d, p)| Op::Watch(d, p)),
        (dom.clone(), p.clone(), any::<u8>()).prop_map(|(d, p, v)| Op::TxWrite(d, p, v)),
        (dom.clone(), p.clone()).prop_map(|(d, p)| Op::TxRead(d, p)),
        (dom, any::<bool>()).prop_map(|(d, c)| Op::TxEnd(d, c)),
    ]
}

/// The perms a random byte picks: owner and others' access, maybe one more domain.
fn perms_of(v: u8) -> Vec<String> {
    let letter = ["n", "r", "w", "b"][usize::from(v % 4)];
    let mut p = alloc::vec![alloc::format!("{letter}{}", (v / 4) % 3)];
    if v & 0x80 != 0 {
        p.push(alloc::format!(
            "{}{}",
            ["r", "b"][usize::from(v / 16 % 2)],
            (v / 32) % 3
        ));
    }
    p
}

/// A domain's open transaction and the requests made in it.
type TxLog = (u32, Vec<(u32, Vec<u8>)>);

/// Every node's path, value and permissions (generations left out).
fn snapshot(s: &Store) -> Vec<(String, Vec<u8>, Vec<String>)> {
    s.tree()
        .paths()
        .map(|p| {
            let n = s.tree().node(p).unwrap();
            (
                String::from(p),
                n.value.clone(),
                n.perms.strings().collect(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever three domains send: the tree stays consistent, a domain other than dom0
    /// never reads a node its permissions hide nor changes one they protect, every change
    /// outside a transaction fires dom0's watch on `/`, the limits hold, and a committed
    /// transaction leaves the store as its requests run alone at the commit would.
    #[test]
    fn random_requests_keep_the_rules(ops in proptest::collection::vec(op(), 1..80)) {
        let mut s = store();
        s.write("/shared", b"").unwrap();
        s.set_perms("/shared", Perms::new(DomId(0), Access::Read).with(DomId(2), Access::Both)).unwrap();
        req(&mut s, 0, msg::WATCH, 0, b"/\0all\0").unwrap();
        events(&mut s, 0);
        // Per domain: its open transaction and the requests made in it.
        let mut txs: [TxLog; 3] = Default::default();
        for op in ops {
            let before = snapshot(&s);
            let path = |i: usize| PATHS[i];
            let (dom, ty, payload, in_tx) = match op {
                Op::Write(d, p, v) => (d, msg::WRITE, [path(p).as_bytes(), b"\0", &[b'a' + v % 26]].concat(), false),
                Op::Mkdir(d, p) => (d, msg::MKDIR, [path(p).as_bytes(), b"\0"].concat(), false),
                Op::Rm(d, p) => (d, msg::RM, [path(p).as_bytes(), b"\0"].concat(), false),
                Op::Read(d, p) => (d, msg::READ, [path(p).as_bytes(), b"\0"].concat(), false),
                Op::Directory(d, p) => (d, msg::DIRECTORY, [path(p).as_bytes(), b"\0"].concat(), false),
                Op::SetPerms(d, p, v) => {
                    let mut pl = [path(p).as_bytes(), b"\0"].concat();
                    for q in perms_of(v) {
                        pl.extend_from_slice(q.as_bytes());
                        pl.push(0);
                    }
                    (d, msg::SET_PERMS, pl, false)
                }
                Op::Watch(d, p) => (d, msg::WATCH, [path(p).as_bytes(), b"\0t\0"].concat(), false),
                Op::TxWrite(d, p, v) => (d, msg::WRITE, [path(p).as_bytes(), b"\0", &[b'A' + v % 26]].concat(), true),
                Op::TxRead(d, p) => (d, msg::READ, [path(p).as_bytes(), b"\0"].concat(), true),
                Op::TxEnd(d, commit) => {
                    let (tx, log) = core::mem::take(&mut txs[usize::from(d)]);
                    if tx == 0 {
                        continue;
                    }
                    // What the transaction's requests do run alone now.
                    let mut alone = s.clone();
                    req(&mut alone, d, msg::TRANSACTION_END, tx, b"F\0").unwrap();
                    for (ty, pl) in &log {
                        let _ = req(&mut alone, d, *ty, 0, pl);
                    }
                    let r = end(&mut s, d, tx, commit);
                    match (commit, r) {
                        (true, Ok(_)) => prop_assert_eq!(snapshot(&s), snapshot(&alone)),
                        (true, Err(StoreError::Again)) | (false, Ok(_)) => {
                            prop_assert_eq!(snapshot(&s), before)
                        }
                        (_, r) => prop_assert!(false, "{:?}", r),
                    }
                    events(&mut s, 0);
                    continue;
                }
            };
            let tx = if in_tx {
                let slot = &mut txs[usize::from(dom)];
                if slot.0 == 0 {
                    slot.0 = start(&mut s, dom);
                }
                slot.1.push((ty, payload.clone()));
                slot.0
            } else {
                0
            };
            let p = String::from_utf8(payload.split(|&b| b == 0).next().unwrap().to_vec()).unwrap();
            let node_before = before.iter().find(|(q, _, _)| *q == p).cloned();
            let r = req(&mut s, dom, ty, tx, &payload);
            let after = snapshot(&s);
            prop_assert!(tree::consistent(s.tree()));
            if tx != 0 {
                prop_assert_eq!(&after, &before, "a transaction changes nothing before its end");
            }
            if dom != 0 && tx == 0 {
                let access = |snap: &[(String, Vec<u8>, Vec<String>)], q: &str| {
                    snap.iter().find(|(x, _, _)| x == q).map(|(_, _, perms)| {
                        let words: Vec<&[u8]> = perms.iter().map(|w| w.as_bytes()).collect();
                        Perms::parse(words).unwrap().access(DomId(dom))
                    })
                };
                match ty {
                    msg::READ | msg::DIRECTORY if r.is_ok() => {
                        prop_assert!(access(&before, &p).unwrap().can_read(), "{} read {}", dom, p);
                    }
                    msg::WRITE | msg::RM | msg::SET_PERMS | msg::MKDIR if after != before => {
                        // It could write the node, or the nearest node above it that existed.
                        let mut q = p.as_str();
                        let allowed = loop {
                            if let Some(a) = access(&before, q) {
                                break a.can_write();
                            }
                            q = super::path::parent(q).unwrap();
                        };
                        prop_assert!(allowed, "{} changed {}", dom, p);
                    }
                    _ => {}
                }
            }
            if tx == 0 && after != before && ty != msg::WATCH {
                let evs = events(&mut s, 0);
                prop_assert!(evs.iter().any(|(q, _)| *q == p), "{:?} {:?}", node_before, evs);
            }
            for d in [1u16, 2] {
                prop_assert!(s.usage(DomId(d)).bytes <= MEMORY_MAX);
                prop_assert!(s.event_bytes(DomId(d)) <= EVENTS_MAX);
            }
        }
    }
}
