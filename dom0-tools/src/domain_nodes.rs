//! What the toolstack writes to the store for a domain, as Xen's libxl does
//! (`libxl__domain_make`, `libxl__build_post`, the console device), and removes when the
//! domain goes.
//!
//! `/local/domain/N` and `/vm/UUID` belong to dom0 and the domain may read them
//! (`n0`, `rN`); so may it read what dom0 writes below them (nodes take their parent's
//! permissions). The nodes the guest writes itself are the domain's own (`nN`):
//! `control/shutdown` (which it clears when it acts on it), `control/feature-*` (where it
//! says it will act), `control/sysrq`, `data`, `drivers`, `feature`, `attr`, `error`.
//!
//! ```text
//! /vm/UUID                  uuid, name
//! /local/domain/N           vm, name, domid
//!   memory/                 static-max, target (KiB)
//!   cpu/K/availability      online
//!   console/                ring-ref (the ring's MFN), port, limit, type
//!   store/                  ring-ref, port
//!   control/                shutdown, feature-{poweroff,reboot,suspend}, sysrq,
//!                           platform-feature-multiprocessor-suspend,
//!                           platform-feature-xs_reset_watches
//!   device/  data/  drivers/  feature/  attr/  error/
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use guest_abi::{DomId, EvtchnPort, Mfn};

use crate::store::perms::{Access, Perms};
use crate::store::{Store, StoreError, path};

/// `console/limit`: libxl's `LIBXL_XENCONSOLE_LIMIT`.
pub const CONSOLE_LIMIT: u64 = 1_048_576;

/// What the nodes of a new domain say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainNodes<'a> {
    /// The domain.
    pub dom: DomId,
    /// Its name.
    pub name: &'a str,
    /// Its handle (the UUID of `/vm/UUID`).
    pub handle: [u8; 16],
    /// Its vCPUs.
    pub vcpus: u32,
    /// `memory/target` in KiB.
    pub target_kib: u64,
    /// `memory/static-max` in KiB.
    pub static_max_kib: u64,
    /// Its console ring's frame and its end of the console event channel.
    pub console: (Mfn, EvtchnPort),
    /// Its xenstore ring's frame and its end of the store event channel.
    pub store: Option<(Mfn, EvtchnPort)>,
}

/// A handle as a UUID (`8-4-4-4-12` hex digits).
pub fn uuid(handle: &[u8; 16]) -> String {
    let mut s = String::new();
    for (i, b) in handle.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `/vm/UUID`.
pub fn vm_path(handle: &[u8; 16]) -> String {
    alloc::format!("/vm/{}", uuid(handle))
}

/// The nodes the domain itself writes: its own (`nN`), created empty.
const GUEST_NODES: &[&str] = &[
    "control/shutdown",
    "control/feature-poweroff",
    "control/feature-reboot",
    "control/feature-suspend",
    "control/sysrq",
    "data",
    "drivers",
    "feature",
    "attr",
    "error",
];

/// Writes a new domain's nodes (anything left from an earlier domain with its id goes).
pub fn write(store: &mut Store, d: &DomainNodes<'_>) -> Result<(), StoreError> {
    let home = path::home(d.dom);
    let vm = vm_path(&d.handle);
    let ro = Perms::new(DomId(0), Access::None).with(d.dom, Access::Read);
    let rw = Perms::new(d.dom, Access::None);
    for base in [&home, &vm] {
        // What an earlier domain with this id left (none if its parent is missing too).
        let _ = store.rm(base);
        store.write(base, b"")?;
        store.set_perms(base, ro.clone())?;
    }
    let mut values: Vec<(String, String)> = alloc::vec![
        (alloc::format!("{vm}/uuid"), uuid(&d.handle)),
        (alloc::format!("{vm}/name"), d.name.into()),
        (alloc::format!("{home}/vm"), vm.clone()),
        (alloc::format!("{home}/name"), d.name.into()),
        (
            alloc::format!("{home}/domid"),
            alloc::format!("{}", d.dom.0)
        ),
        (
            alloc::format!("{home}/memory/static-max"),
            alloc::format!("{}", d.static_max_kib)
        ),
        (
            alloc::format!("{home}/memory/target"),
            alloc::format!("{}", d.target_kib)
        ),
        (
            alloc::format!("{home}/console/ring-ref"),
            alloc::format!("{}", d.console.0.0)
        ),
        (
            alloc::format!("{home}/console/port"),
            alloc::format!("{}", d.console.1.0)
        ),
        (
            alloc::format!("{home}/console/limit"),
            alloc::format!("{CONSOLE_LIMIT}")
        ),
        (alloc::format!("{home}/console/type"), "xenconsoled".into()),
        (
            alloc::format!("{home}/control/platform-feature-multiprocessor-suspend"),
            "1".into()
        ),
        (
            alloc::format!("{home}/control/platform-feature-xs_reset_watches"),
            "1".into()
        ),
        (alloc::format!("{home}/device"), String::new()),
    ];
    if let Some((frame, port)) = d.store {
        values.push((
            alloc::format!("{home}/store/ring-ref"),
            alloc::format!("{}", frame.0),
        ));
        values.push((
            alloc::format!("{home}/store/port"),
            alloc::format!("{}", port.0),
        ));
    }
    for k in 0..d.vcpus {
        values.push((
            alloc::format!("{home}/cpu/{k}/availability"),
            "online".into(),
        ));
    }
    for (p, v) in &values {
        store.write(p, v.as_bytes())?;
    }
    for node in GUEST_NODES {
        let p = alloc::format!("{home}/{node}");
        store.write(&p, b"")?;
        store.set_perms(&p, rw.clone())?;
    }
    Ok(())
}

/// Removes a domain's nodes.
pub fn remove(store: &mut Store, dom: DomId, handle: &[u8; 16]) {
    let _ = store.rm(&path::home(dom));
    let _ = store.rm(&vm_path(handle));
}

/// dom0's own nodes (`/local/domain/0/{name,domid}`), as xen-init-dom0 writes them.
pub fn write_dom0(store: &mut Store, name: &str) -> Result<(), StoreError> {
    store.write("/local/domain/0/name", name.as_bytes())?;
    store.write("/local/domain/0/domid", b"0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::wire::{Header, msg};

    fn nodes() -> DomainNodes<'static> {
        DomainNodes {
            dom: DomId(5),
            name: "web",
            handle: *b"\x01\x02\x03\x04\x05\x06\x07\x08dom0tool",
            vcpus: 2,
            target_kib: 32768,
            static_max_kib: 65536,
            console: (Mfn(0x1234), EvtchnPort(1)),
            store: Some((Mfn(0x1235), EvtchnPort(2))),
        }
    }

    fn request(s: &mut Store, dom: u16, ty: u32, payload: &[u8]) -> Result<Vec<u8>, StoreError> {
        let h = Header {
            ty,
            req_id: 1,
            tx_id: 0,
            len: payload.len() as u32,
        };
        s.execute(DomId(dom), h, payload)
    }

    #[test]
    fn a_domain_reads_its_nodes_and_writes_only_its_own() {
        let mut s = Store::new();
        write(&mut s, &nodes()).unwrap();
        s.introduce(DomId(5));
        s.introduce(DomId(6));
        assert_eq!(request(&mut s, 5, msg::READ, b"name\0").unwrap(), b"web");
        assert_eq!(
            request(&mut s, 5, msg::READ, b"memory/target\0").unwrap(),
            b"32768"
        );
        assert_eq!(
            request(&mut s, 5, msg::READ, b"cpu/1/availability\0").unwrap(),
            b"online"
        );
        assert_eq!(
            s.read("/vm/01020304-0506-0708-646f-6d30746f6f6c/name")
                .unwrap(),
            b"web"
        );
        // Its own nodes: writable; dom0's: not.
        assert!(request(&mut s, 5, msg::WRITE, b"control/shutdown\0").is_ok());
        assert!(request(&mut s, 5, msg::WRITE, b"control/feature-poweroff\x001").is_ok());
        assert!(request(&mut s, 5, msg::WRITE, b"data/x\0y").is_ok());
        assert_eq!(
            request(&mut s, 5, msg::WRITE, b"memory/target\x001"),
            Err(StoreError::Access)
        );
        assert_eq!(
            request(&mut s, 5, msg::WRITE, b"control/x\x001"),
            Err(StoreError::Access)
        );
        // Another domain sees nothing of it.
        assert_eq!(
            request(&mut s, 6, msg::READ, b"/local/domain/5/name\0"),
            Err(StoreError::Access)
        );
        assert_eq!(
            request(&mut s, 6, msg::DIRECTORY, b"/local/domain\0"),
            Err(StoreError::Access)
        );
        remove(&mut s, DomId(5), &nodes().handle);
        assert_eq!(s.read("/local/domain/5"), Err(StoreError::NoEntry));
        assert_eq!(s.directory("/vm").unwrap(), Vec::<String>::new());
    }
}
