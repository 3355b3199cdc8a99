//! A request off the wire to its reply: [`Store::answer`] decodes the payload for the
//! message type, runs it for the sending domain (in its transaction, if the header names
//! one) and encodes the reply, or `XS_ERROR` with Xen's errno name.
//!
//! Payloads (xenstore.txt): `READ path|` → value; `WRITE path|value`; `MKDIR path|`;
//! `RM path|`; `DIRECTORY path|` → `name|*`; `DIRECTORY_PART path|offset|` →
//! `generation|name|*` from that byte offset of the list, ending with an empty name when
//! the list ends; `GET_PERMS path|` → `perm|+`; `SET_PERMS path|perm|+`; `WATCH` /
//! `UNWATCH path|token|`; `RESET_WATCHES`; `TRANSACTION_START |` → `id|`;
//! `TRANSACTION_END T|` or `F|`; `INTRODUCE domid|mfn|port|`, `RELEASE domid|` (dom0
//! only); `GET_DOMAIN_PATH domid|` → `path|`; `IS_DOMAIN_INTRODUCED domid|` → `T|` or
//! `F|`. Others get `EINVAL` (`ENOSYS` for dom0's `CONTROL`, `EACCES` for a domU's).

use alloc::string::String;
use alloc::vec::Vec;

use guest_abi::DomId;

use super::perms::Perms;
use super::quota::{QuotaError, TRANSACTIONS_MAX, WATCHES_MAX};
use super::transaction::{Transaction, TxView};
use super::tree::{self, View};
use super::watch::{self, Watch};
use super::wire::{self, Header, PAYLOAD_MAX, msg};
use super::{Store, StoreError, path};

const OK: &[u8] = b"OK\0";

/// The one string argument of `payload`.
fn one(payload: &[u8]) -> Result<&str, StoreError> {
    match wire::strings(payload).as_slice() {
        [s] => utf8(s),
        _ => Err(StoreError::Invalid),
    }
}

/// A string argument as UTF-8.
fn utf8(b: &[u8]) -> Result<&str, StoreError> {
    core::str::from_utf8(b).map_err(|_| StoreError::Invalid)
}

/// Two string arguments.
fn two(payload: &[u8]) -> Result<(&str, &str), StoreError> {
    let v = wire::strings(payload);
    match v.as_slice() {
        [a, b] => Ok((utf8(a)?, utf8(b)?)),
        _ => Err(StoreError::Invalid),
    }
}

/// A domain id argument (decimal, 0 to 65535).
fn domid(payload: &[u8]) -> Result<DomId, StoreError> {
    let s = match wire::strings(payload).first() {
        Some(s) => utf8(s)?,
        None => return Err(StoreError::Invalid),
    };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::Invalid);
    }
    s.parse::<u16>().map(DomId).map_err(|_| StoreError::Invalid)
}

/// Names as `name|*`, refused with `E2BIG` if longer than a message may be.
fn names(list: &[String]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    for n in list {
        if out.len() + n.len() + 1 > PAYLOAD_MAX {
            return Err(StoreError::TooBig);
        }
        out.extend_from_slice(n.as_bytes());
        out.push(0);
    }
    Ok(out)
}

/// `DIRECTORY_PART`'s reply: the generation, then the names from byte `offset` of the
/// whole `name|*` list that fit, and an empty name once the list is done.
fn directory_part(generation: u64, list: &[String], offset: usize) -> Result<Vec<u8>, StoreError> {
    let mut out = alloc::format!("{generation}").into_bytes();
    out.push(0);
    let mut at = 0usize;
    let mut done = true;
    for n in list {
        let len = n.len() + 1;
        if at >= offset {
            if out.len() + len + 1 > PAYLOAD_MAX {
                done = false;
                break;
            }
            out.extend_from_slice(n.as_bytes());
            out.push(0);
        }
        at += len;
    }
    if offset > at {
        return Err(StoreError::Invalid);
    }
    if done {
        out.push(0);
    }
    Ok(out)
}

/// A decoded path operation.
enum PathOp<'a> {
    Read,
    Write(&'a [u8]),
    Mkdir,
    Rm,
    Directory,
    DirectoryPart(usize),
    GetPerms,
    SetPerms(Perms),
}

/// Splits a path operation's payload into its path and arguments.
fn path_op(ty: u32, payload: &[u8]) -> Result<Option<(&str, PathOp<'_>)>, StoreError> {
    Ok(Some(match ty {
        msg::READ => (one(payload)?, PathOp::Read),
        msg::MKDIR => (one(payload)?, PathOp::Mkdir),
        msg::RM => (one(payload)?, PathOp::Rm),
        msg::DIRECTORY => (one(payload)?, PathOp::Directory),
        msg::GET_PERMS => (one(payload)?, PathOp::GetPerms),
        msg::WRITE => {
            let nul = payload
                .iter()
                .position(|&b| b == 0)
                .ok_or(StoreError::Invalid)?;
            let (p, rest) = payload.split_at(nul);
            (utf8(p)?, PathOp::Write(rest.get(1..).unwrap_or(&[])))
        }
        msg::DIRECTORY_PART => {
            let (p, off) = two(payload)?;
            if off.is_empty() || !off.bytes().all(|b| b.is_ascii_digit()) {
                return Err(StoreError::Invalid);
            }
            let off = off.parse::<usize>().map_err(|_| StoreError::Invalid)?;
            (p, PathOp::DirectoryPart(off))
        }
        msg::SET_PERMS => {
            let v = wire::strings(payload);
            let (p, perms) = v.split_first().ok_or(StoreError::Invalid)?;
            (
                utf8(p)?,
                PathOp::SetPerms(Perms::parse(perms.iter().copied())?),
            )
        }
        _ => return Ok(None),
    }))
}

/// Runs a path operation on a view; returns the reply payload.
fn run_path_op(
    v: &mut impl View,
    dom: DomId,
    p: &str,
    op: PathOp<'_>,
    changes: &mut Vec<watch::Change>,
) -> Result<Vec<u8>, StoreError> {
    match op {
        PathOp::Read => tree::read(v, dom, p),
        PathOp::Write(value) => tree::write(v, dom, p, value, changes).map(|()| OK.to_vec()),
        PathOp::Mkdir => tree::mkdir(v, dom, p, changes).map(|()| OK.to_vec()),
        PathOp::Rm => tree::rm(v, dom, p, changes).map(|()| OK.to_vec()),
        PathOp::Directory => names(&tree::directory(v, dom, p)?.1),
        PathOp::DirectoryPart(off) => {
            let (generation, list) = tree::directory(v, dom, p)?;
            directory_part(generation, &list, off)
        }
        PathOp::GetPerms => {
            let perms = tree::get_perms(v, dom, p)?;
            let list: Vec<String> = perms.strings().collect();
            names(&list)
        }
        PathOp::SetPerms(perms) => tree::set_perms(v, dom, p, perms, changes).map(|()| OK.to_vec()),
    }
}

impl Store {
    /// The reply to `dom`'s request (a whole message: the header with the request's ids,
    /// then the payload; or `XS_ERROR`).
    pub fn answer(&mut self, dom: DomId, h: Header, payload: &[u8]) -> Vec<u8> {
        match self.execute(dom, h, payload) {
            Ok(reply) if reply.len() > PAYLOAD_MAX => {
                wire::error_message(h.req_id, h.tx_id, StoreError::TooBig.errno())
            }
            Ok(reply) => wire::message(h.ty, h.req_id, h.tx_id, &reply),
            Err(e) => wire::error_message(h.req_id, h.tx_id, e.errno()),
        }
    }

    /// Runs `dom`'s request; returns the reply payload.
    pub fn execute(
        &mut self,
        dom: DomId,
        h: Header,
        payload: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        if !self.conns.contains_key(&dom.0) {
            return Err(StoreError::Access);
        }
        if let Some((raw, op)) = path_op(h.ty, payload)? {
            let p = path::resolve(dom, raw)?;
            return self.path_request(dom, h.tx_id, &p, op);
        }
        let dom0 = dom.0 == 0;
        match h.ty {
            msg::WATCH => {
                let (raw, token) = two(payload)?;
                self.watch(dom, raw, token)
            }
            msg::UNWATCH => {
                let (raw, token) = two(payload)?;
                let p = path::resolve_watch(dom, raw)?;
                let c = self.conn(dom)?;
                let at = c
                    .watches
                    .iter()
                    .position(|w| w.path == p && w.token == token)
                    .ok_or(StoreError::NoEntry)?;
                c.watches.remove(at);
                Ok(OK.to_vec())
            }
            msg::RESET_WATCHES => {
                let c = self.conn(dom)?;
                c.watches.clear();
                c.transactions.clear();
                Ok(OK.to_vec())
            }
            msg::TRANSACTION_START => {
                if h.tx_id != 0 {
                    return Err(StoreError::Invalid);
                }
                let c = self.conn(dom)?;
                if !dom0 && c.transactions.len() >= TRANSACTIONS_MAX {
                    return Err(QuotaError::Transactions.into());
                }
                let mut id = c.next_tx.wrapping_add(1).max(1);
                while c.transactions.contains_key(&id) {
                    id = id.wrapping_add(1).max(1);
                }
                c.next_tx = id;
                c.transactions.insert(id, Transaction::default());
                let mut out = alloc::format!("{id}").into_bytes();
                out.push(0);
                Ok(out)
            }
            msg::TRANSACTION_END => {
                let commit = match one(payload)? {
                    "T" => true,
                    "F" => false,
                    _ => return Err(StoreError::Invalid),
                };
                let tx = self
                    .conn(dom)?
                    .transactions
                    .remove(&h.tx_id)
                    .ok_or(StoreError::NoEntry)?;
                if commit {
                    let changes = tx.commit(&mut self.tree)?;
                    self.fire(&changes);
                }
                Ok(OK.to_vec())
            }
            msg::INTRODUCE if dom0 => {
                let v = wire::strings(payload);
                if v.len() < 3 {
                    return Err(StoreError::Invalid);
                }
                let target = domid(payload)?;
                if target.0 == 0 {
                    return Err(StoreError::Invalid);
                }
                self.introduce(target);
                Ok(OK.to_vec())
            }
            msg::RELEASE if dom0 => {
                let target = domid(payload)?;
                if target.0 == 0 {
                    return Err(StoreError::Invalid);
                }
                self.release(target);
                Ok(OK.to_vec())
            }
            msg::INTRODUCE | msg::RELEASE | msg::RESUME | msg::SET_TARGET | msg::CONTROL
                if !dom0 =>
            {
                Err(StoreError::Access)
            }
            msg::GET_DOMAIN_PATH => {
                let mut out = path::home(domid(payload)?).into_bytes();
                out.push(0);
                Ok(out)
            }
            msg::IS_DOMAIN_INTRODUCED => {
                let yes = self.is_introduced(domid(payload)?);
                Ok(if yes { b"T\0" } else { b"F\0" }.to_vec())
            }
            msg::CONTROL | msg::RESUME | msg::SET_TARGET => Err(StoreError::NoSys),
            _ => Err(StoreError::Invalid),
        }
    }

    fn conn(&mut self, dom: DomId) -> Result<&mut super::Conn, StoreError> {
        self.conns.get_mut(&dom.0).ok_or(StoreError::Access)
    }

    /// A path operation, in transaction `tx_id` or on the tree.
    fn path_request(
        &mut self,
        dom: DomId,
        tx_id: u32,
        p: &str,
        op: PathOp<'_>,
    ) -> Result<Vec<u8>, StoreError> {
        if tx_id == 0 {
            let mut changes = Vec::new();
            let reply = run_path_op(&mut self.view(dom), dom, p, op, &mut changes)?;
            self.fire(&changes);
            return Ok(reply);
        }
        let conn = self.conns.get_mut(&dom.0).ok_or(StoreError::Access)?;
        let extra = conn.extra(tx_id);
        let tx = conn
            .transactions
            .get_mut(&tx_id)
            .ok_or(StoreError::NoEntry)?;
        let mut changes = core::mem::take(tx.changes_mut());
        let mut view = TxView {
            tx,
            tree: &self.tree,
            caller: dom,
            extra,
        };
        let reply = run_path_op(&mut view, dom, p, op, &mut changes);
        *view.tx.changes_mut() = changes;
        reply
    }

    /// `WATCH`: adds the watch and fires it once.
    fn watch(&mut self, dom: DomId, raw: &str, token: &str) -> Result<Vec<u8>, StoreError> {
        let p = path::resolve_watch(dom, raw)?;
        let relative = !raw.starts_with('/') && !path::is_special(raw);
        let w = Watch {
            path: p,
            token: String::from(token),
            relative,
        };
        let usage = self.usage(dom);
        let c = self.conn(dom)?;
        if c.watches
            .iter()
            .any(|x| x.path == w.path && x.token == w.token)
        {
            return Err(StoreError::Exists);
        }
        if dom.0 != 0 {
            if c.watches.len() >= WATCHES_MAX {
                return Err(QuotaError::Watches.into());
            }
            usage.check_bytes(w.cost())?;
        }
        let first = watch::event_message(dom, &w, &w.path);
        c.watches.push(w);
        super::queue_event(c, first);
        Ok(OK.to_vec())
    }
}
