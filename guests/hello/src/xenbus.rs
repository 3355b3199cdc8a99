//! A minimal xenbus client, for the toolstack's tests of graceful shutdown: it talks to the
//! store over the domain's xenstore ring (`start_info.store_mfn`, notified on
//! `store_evtchn`), as Linux's xenbus does, one request at a time.
//!
//! With the command-line word `xenbus`, hello says it acts on `control/shutdown`
//! (`control/feature-poweroff` and `feature-reboot` = `1`), watches it, and when the
//! toolstack writes `poweroff` or `reboot` there, clears it and shuts down with that reason.
//!
//! Safety: the ring page is the domain's own frame, mapped in the bootstrap region; dom0
//! reads and writes it concurrently, so it is only reached through volatile accesses of
//! single bytes and indexes, with fences between the data and the indexes.

use core::sync::atomic::{Ordering, fence};

use guest_abi::arch::MACH2PHYS_VIRT_START;
use guest_abi::runtime::{events, hypercall, virt_base};
use guest_abi::sched::ShutdownReason;
use guest_abi::xen::StartInfo;
use guest_abi::xenstore::{
    XENSTORE_RING_SIZE, XS_ERROR, XS_READ, XS_WATCH, XS_WATCH_EVENT, XS_WRITE,
    XenstoreDomainInterface as Iface,
};
use guest_abi::{EvtchnPort, XenError, println};

const RING: u32 = XENSTORE_RING_SIZE;
const REQ: u64 = Iface::REQ as u64;
const RSP: u64 = Iface::RSP as u64;
const REQ_CONS: u64 = Iface::REQ_CONS as u64;
const REQ_PROD: u64 = Iface::REQ_PROD as u64;
const RSP_CONS: u64 = Iface::RSP_CONS as u64;
const RSP_PROD: u64 = Iface::RSP_PROD as u64;

/// The longest payload kept; longer replies are read and dropped.
const KEEP: usize = 64;

/// A message read from the ring: its type, request id, and up to [`KEEP`] payload bytes.
struct Message {
    ty: u32,
    id: u32,
    len: usize,
    payload: [u8; KEEP],
}

impl Message {
    fn payload(&self) -> &[u8] {
        &self.payload[..self.len.min(KEEP)]
    }
}

/// The domain's end of its xenstore ring.
pub struct Xenbus {
    base: u64,
    port: EvtchnPort,
    next_id: u32,
}

impl Xenbus {
    /// The ring `start_info` names, if it names one with an event channel.
    pub fn new(si: &StartInfo) -> Option<Self> {
        if si.store_mfn == 0 || si.store_evtchn == 0 {
            return None;
        }
        // SAFETY: the hypervisor maps the read-only M2P at MACH2PHYS_VIRT_START and the
        // store frame is ours, so its entry exists.
        let pfn = unsafe {
            (MACH2PHYS_VIRT_START as *const u64)
                .add(si.store_mfn as usize)
                .read_volatile()
        };
        Some(Self {
            base: virt_base() + (pfn << 12),
            port: EvtchnPort(si.store_evtchn),
            next_id: 1,
        })
    }

    fn load(&self, off: u64) -> u32 {
        // SAFETY: an index word of the ring page (module safety).
        unsafe { ((self.base + off) as *const u32).read_volatile() }
    }

    fn store(&self, off: u64, v: u32) {
        // SAFETY: as in `load`.
        unsafe { ((self.base + off) as *mut u32).write_volatile(v) }
    }

    fn byte(&self, ring: u64, at: u32) -> u8 {
        // SAFETY: a byte of one of the two rings (the index is masked).
        unsafe { ((self.base + ring + u64::from(at % RING)) as *const u8).read_volatile() }
    }

    fn put_byte(&self, at: u32, b: u8) {
        // SAFETY: as in `byte`.
        unsafe { ((self.base + REQ + u64::from(at % RING)) as *mut u8).write_volatile(b) }
    }

    /// Waits for dom0's next notification.
    fn wait(&self) -> Result<(), XenError> {
        events::wait(self.port)
    }

    /// Writes `parts` as one request of type `ty`; returns its id.
    fn send(&mut self, ty: u32, parts: &[&[u8]]) -> Result<u32, XenError> {
        let len: u32 = parts.iter().map(|p| p.len() as u32).sum();
        let id = self.next_id;
        self.next_id += 1;
        let mut header = [0u8; 16];
        for (i, w) in [ty, id, 0, len].iter().enumerate() {
            header[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        let bytes = core::iter::once(&header[..])
            .chain(parts.iter().copied())
            .flatten();
        let mut prod = self.load(REQ_PROD);
        for &b in bytes {
            while prod.wrapping_sub(self.load(REQ_CONS)) >= RING {
                self.store(REQ_PROD, prod);
                hypercall::evtchn_send(self.port.0)?;
                self.wait()?;
            }
            self.put_byte(prod, b);
            prod = prod.wrapping_add(1);
        }
        fence(Ordering::SeqCst);
        self.store(REQ_PROD, prod);
        hypercall::evtchn_send(self.port.0)?;
        Ok(id)
    }

    /// Reads the next whole message, waiting for it.
    fn recv(&mut self) -> Result<Message, XenError> {
        let mut cons = self.load(RSP_CONS);
        let mut next = |this: &mut Self| -> Result<u8, XenError> {
            while this.load(RSP_PROD) == cons {
                this.store(RSP_CONS, cons);
                this.wait()?;
            }
            fence(Ordering::SeqCst);
            let b = this.byte(RSP, cons);
            cons = cons.wrapping_add(1);
            Ok(b)
        };
        let mut header = [0u8; 16];
        for b in header.iter_mut() {
            *b = next(self)?;
        }
        let word =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let mut m = Message {
            ty: word(0),
            id: word(4),
            len: word(12) as usize,
            payload: [0; KEEP],
        };
        for i in 0..m.len {
            let b = next(self)?;
            if let Some(slot) = m.payload.get_mut(i) {
                *slot = b;
            }
        }
        fence(Ordering::SeqCst);
        self.store(RSP_CONS, cons);
        hypercall::evtchn_send(self.port.0)?;
        Ok(m)
    }

    /// One request and its reply (watch events that come first are dropped: the caller
    /// reads the node again after each wait anyway).
    fn request(&mut self, ty: u32, parts: &[&[u8]]) -> Result<Message, XenError> {
        let id = self.send(ty, parts)?;
        loop {
            let m = self.recv()?;
            if m.ty != XS_WATCH_EVENT && m.id == id {
                return Ok(m);
            }
        }
    }

    /// Waits for the next watch event.
    fn event(&mut self) -> Result<(), XenError> {
        while self.recv()?.ty != XS_WATCH_EVENT {}
        Ok(())
    }
}

/// `xenbus` mode: says it acts on `control/shutdown`, then does what is written there.
pub fn serve(si: &StartInfo) -> Result<(), XenError> {
    let Some(mut xb) = Xenbus::new(si) else {
        println!("hello: no xenstore ring with an event channel");
        return Err(XenError::NoDev);
    };
    for feature in [
        &b"control/feature-poweroff\0"[..],
        b"control/feature-reboot\0",
    ] {
        let m = xb.request(XS_WRITE, &[feature, b"1"])?;
        if m.ty == XS_ERROR {
            println!(
                "hello: writing {} failed: {}",
                feature.escape_ascii(),
                m.payload().escape_ascii()
            );
        }
    }
    xb.request(XS_WATCH, &[b"control/shutdown\0s\0"])?;
    println!("hello: xenbus connected, watching control/shutdown");
    loop {
        let m = xb.request(XS_READ, &[b"control/shutdown\0"])?;
        let reason = match m.payload() {
            b"poweroff" if m.ty == XS_READ => Some(ShutdownReason::Poweroff),
            b"reboot" if m.ty == XS_READ => Some(ShutdownReason::Reboot),
            _ => None,
        };
        if let Some(reason) = reason {
            xb.request(XS_WRITE, &[b"control/shutdown\0"])?;
            println!(
                "hello: control/shutdown says {}: shutting down",
                m.payload().escape_ascii()
            );
            hypercall::shutdown(reason)
        }
        xb.event()?;
    }
}
