//! `ring.*`: a domU against the services dom0 runs for it (issue 13): its xenstore ring
//! flooded with requests whose replies it never takes, its console ring carrying bytes that
//! would forge or hide lines on the operator's terminal, and `console_io` (the hypervisor's
//! console, not a domU's) with a count of 2^32 - 1.
//!
//! Only as a domU (dom0 has no rings). Dom0's toolstack serves the xenstore ring as an empty
//! read-only store and polls it (`store_evtchn` is 0), also whenever the console's event
//! channel fires: the cases notify through that channel to have it serviced at once.
//!
//! Time comes from the TSC and a copy of vCPU 0's pvclock record taken by [`init`] before the
//! other cases: on Xen the `mmu` cases take the shared info frame away from the domain. Every
//! wait is also bounded in rounds, should the clock stand still.

use core::sync::atomic::{Ordering, fence};

use guest_abi::hypercall::Hypercall;
use guest_abi::runtime::AsmCell;
use guest_abi::runtime::console::Console;
use guest_abi::runtime::{events, hypercall};
use guest_abi::xen::{StartInfo, VcpuTimeInfo};
use guest_abi::{XenError, println};

use crate::mem::{self, scratch};
use crate::report::{Report, err};

/// `XENSTORE_RING_SIZE`.
const RING: u32 = 1024;
/// Offsets in the xenstore page (`struct xenstore_domain_interface`).
const REQ: u64 = 0;
const RSP: u64 = 1024;
const REQ_CONS: u64 = 2048;
const REQ_PROD: u64 = 2052;
const RSP_CONS: u64 = 2056;
const RSP_PROD: u64 = 2060;
/// `struct xsd_sockmsg`: type, req_id, tx_id, len.
const HEADER: u32 = 16;
/// `XS_READ`.
const XS_READ: u32 = 2;
/// `XS_ERROR`.
const XS_ERROR: u32 = 16;
/// Rounds of the flood: each announces a whole ring (64 headers) again. Dom0 before the bound
/// kept every reply it could not deliver and ran out of memory after about 4000.
const FLOOD_ROUNDS: u32 = 8192;
/// How long one round waits for dom0 to take the ring; longer means dom0 throttles us, which
/// ends the flood.
const STALL_NS: u64 = 1_000_000_000;
/// How long dom0 may take to answer at all, and to drain what it owes after the flood.
const PATIENCE_NS: u64 = 20_000_000_000;
/// The request id of the probe after the flood.
const PROBE_ID: u32 = 0x5eed;

/// The pvclock record [`init`] copied.
static CLOCK: AsmCell<VcpuTimeInfo> = AsmCell::new(VcpuTimeInfo {
    version: 0,
    pad0: 0,
    tsc_timestamp: 0,
    system_time: 0,
    tsc_to_system_mul: 0,
    tsc_shift: 0,
    flags: 0,
    pad1: [0; 2],
});

/// Copies vCPU 0's pvclock record while the shared info page is still ours.
pub fn init() {
    let Ok(si) = events::shared_info() else {
        return;
    };
    // SAFETY: `si` maps the shared info page; the hypervisor rewrites the record
    // concurrently, hence volatile reads through a raw pointer, checked by its version.
    let record = unsafe { &raw const (*si).vcpu_info[0].time };
    for _ in 0..1000 {
        // SAFETY: as above.
        let time = unsafe { record.read_volatile() };
        fence(Ordering::Acquire);
        // SAFETY: as above.
        let again = unsafe { (&raw const (*record).version).read_volatile() };
        if time.version % 2 == 0 && time.version == again {
            CLOCK.set(time);
            return;
        }
    }
}

/// Nanoseconds since boot, from the TSC and the copied record.
fn now() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter.
    CLOCK
        .get()
        .system_time_at(unsafe { core::arch::x86_64::_rdtsc() })
}

/// The xenstore page, mapped in the bootstrap region.
struct Store {
    base: u64,
    notify: u32,
}

impl Store {
    fn word(&self, off: u64) -> *mut u32 {
        (self.base + off) as *mut u32
    }

    fn load(&self, off: u64) -> u32 {
        // SAFETY: the xenstore page is ours, mapped for the guest's life; dom0 writes it
        // concurrently, so every access is a volatile access of one aligned word.
        let v = unsafe { self.word(off).read_volatile() };
        fence(Ordering::SeqCst);
        v
    }

    fn store(&self, off: u64, v: u32) {
        fence(Ordering::SeqCst);
        // SAFETY: as in `load`.
        unsafe { self.word(off).write_volatile(v) }
    }

    /// Writes `bytes` into the request ring from index `at` (wrapping).
    fn put(&self, at: u32, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            let pos = REQ + u64::from(at.wrapping_add(i as u32) % RING);
            // SAFETY: as in `load`; the byte is in the request ring.
            unsafe { ((self.base + pos) as *mut u8).write_volatile(b) };
        }
    }

    /// Byte `at` (wrapping) of the response ring.
    fn get(&self, at: u32) -> u8 {
        let pos = RSP + u64::from(at % RING);
        // SAFETY: as in `load`; the byte is in the response ring.
        unsafe { ((self.base + pos) as *const u8).read_volatile() }
    }

    fn get_u32(&self, at: u32) -> u32 {
        u32::from_le_bytes(core::array::from_fn(|i| {
            self.get(at.wrapping_add(i as u32))
        }))
    }

    /// Wakes dom0 (through the console's channel) and lets it run for a moment.
    fn kick(&self) {
        let _ = hypercall::evtchn_send(self.notify);
        let _ = hypercall::sched_yield();
    }

    /// Kicks dom0 until `done` holds or `ns` pass (or `ns / 1000` kicks, a kick being longer
    /// than a microsecond); whether it held.
    fn wait(&self, ns: u64, done: impl Fn(&Self) -> bool) -> bool {
        let deadline = now().saturating_add(ns);
        for _ in 0..ns / 1000 {
            if done(self) {
                return true;
            }
            if now() >= deadline {
                break;
            }
            self.kick();
        }
        done(self)
    }
}

pub fn run(r: &mut Report, si: &StartInfo) {
    console(r);
    if si.store_mfn == 0 {
        r.check(
            "ring.xenstore ring given in start_info",
            false,
            format_args!("store_mfn 0"),
        );
        return;
    }
    let store = Store {
        base: mem::va_of(si.store_mfn),
        notify: si.console.evtchn,
    };
    flood(r, &store);
    probe(r, &store);
}

/// Lines with CR, ANSI escapes, backspaces and bytes >= 0x80, and `console_io` with a count
/// of 2^32 - 1.
fn console(r: &mut Report) {
    let lines: [&[u8]; 4] = [
        b"attack: garbage 1 (CR)\r[dom0] forged by attack\n",
        b"attack: garbage 2 (ESC)\x1b[2K\x1b[1Gxl> forged by attack\n",
        b"attack: garbage 3 (BS)\x08\x08\x08\x08\x08\x08\x08\x08[dom0] forged by attack\n",
        b"attack: garbage 4 (>= 0x80) \x9b2K\xc3\xa9\xff forged by attack\n",
    ];
    let mut ok = true;
    for line in lines {
        ok &= Console.write_bytes(line).is_ok();
    }
    r.check(
        "ring.console lines with CR, ESC, BS and bytes >= 0x80 written (the script checks dom0 escapes them)",
        ok,
        format_args!("4 lines"),
    );
    // SAFETY: refused for a domU; were it not, it only reads the guest's own memory from
    // scratch page 22 on, until the first unmapped page.
    let ret = unsafe { hypercall::raw(Hypercall::ConsoleIo, [0, 0xffff_ffff, scratch(22), 0, 0]) };
    r.ret(
        "ring.console_io write of 2^32 - 1 bytes from a domU",
        ret,
        err(XenError::Perm),
    );
}

/// Zero-length `XS_READ`s, a whole ring of them announced again each time dom0 has taken the
/// last, while the responses are never taken.
fn flood(r: &mut Report, s: &Store) {
    let mut prod = s.load(REQ_PROD);
    for k in 0..RING / HEADER {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&XS_READ.to_le_bytes());
        h[4..8].copy_from_slice(&k.to_le_bytes());
        s.put(prod.wrapping_add(k * HEADER), &h);
    }
    let start = now();
    let mut rounds = 0;
    let mut throttled = false;
    while rounds < FLOOD_ROUNDS {
        if !s.wait(STALL_NS, |s| s.load(REQ_CONS) == prod) {
            throttled = true;
            break;
        }
        prod = prod.wrapping_add(RING);
        s.store(REQ_PROD, prod);
        s.kick();
        rounds += 1;
    }
    println!(
        "attack: xenstore flood: {rounds} rounds ({} requests) in {} ms, {}",
        rounds * (RING / HEADER),
        (now() - start) / 1_000_000,
        if throttled {
            "then dom0 stopped taking requests"
        } else {
            "dom0 took every one"
        }
    );
    r.check(
        "ring.xenstore flood of zero-length XS_READs never answered (we are still alive)",
        hypercall::xen_version().is_ok(),
        format_args!("{rounds} rounds"),
    );
}

/// After the flood: take every response dom0 still has for us, then one ordinary `XS_READ`
/// must be answered (`XS_ERROR`, the store is empty) with its request id.
fn probe(r: &mut Report, s: &Store) {
    let mut quiet = 0;
    let mut last = s.load(RSP_PROD);
    // At most PATIENCE_NS in all.
    for _ in 0..PATIENCE_NS / 20_000_000 {
        if quiet >= 5 {
            break;
        }
        s.store(RSP_CONS, last);
        s.wait(20_000_000, |_| false);
        let prod = s.load(RSP_PROD);
        let drained = s.load(REQ_CONS) == s.load(REQ_PROD);
        quiet = if prod == last && drained {
            quiet + 1
        } else {
            0
        };
        last = prod;
    }
    s.store(RSP_CONS, last);
    let path = b"attack/probe\0";
    let mut msg = [0u8; 16 + 13];
    msg[..4].copy_from_slice(&XS_READ.to_le_bytes());
    msg[4..8].copy_from_slice(&PROBE_ID.to_le_bytes());
    msg[12..16].copy_from_slice(&(path.len() as u32).to_le_bytes());
    msg[16..].copy_from_slice(path);
    let prod = s.load(REQ_PROD);
    s.put(prod, &msg);
    s.store(REQ_PROD, prod.wrapping_add(msg.len() as u32));
    let answered = s.wait(PATIENCE_NS, |s| {
        s.load(RSP_PROD).wrapping_sub(last) >= HEADER
    });
    let (ty, id, len) = if answered {
        (s.get_u32(last), s.get_u32(last + 4), s.get_u32(last + 12))
    } else {
        (0, 0, 0)
    };
    if answered && len <= RING - HEADER {
        let end = last.wrapping_add(HEADER + len);
        s.wait(PATIENCE_NS, |s| {
            s.load(RSP_PROD).wrapping_sub(last) >= HEADER + len
        });
        s.store(RSP_CONS, end);
    }
    r.check(
        "ring.xenstore dom0 still answers after the flood (XS_ERROR with our request id)",
        answered && ty == XS_ERROR && id == PROBE_ID,
        format_args!(
            "drained {}, answered {answered}: type {ty}, req_id {id:#x}, len {len}",
            if quiet >= 5 { "yes" } else { "no" }
        ),
    );
}
