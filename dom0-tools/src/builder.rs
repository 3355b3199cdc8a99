//! The PV domain builder: what libxenguest (`xc_dom_*`, `xg_dom_x86.c`) does for an
//! x86-64 PV domU, driven through [`Hypervisor`].
//!
//! The start-of-day layout is the one the hypervisor uses for dom0:
//! [`KernelImage::parse`], [`plan_boot`], then [`BootLayout::page_table_entries`],
//! [`BootLayout::start_info`] and [`BootLayout::initial_registers`]. The steps:
//! 1. take the kernel out of a bzImage ([`kernel_file`]), parse it and lay the domain out
//!    (no hypercall yet); check that the host has the memory free;
//! 2. `createdomain`, `max_vcpus`, `max_mem`;
//! 3. `populate_physmap` for every PFN: the P2M;
//! 4. copy the kernel's segments (zeroing their bss) and the ramdisk, write the P2M list,
//!    clear the xenstore and console pages, write the bootstrap page tables;
//! 5. allocate the console and xenstore event channels (`alloc_unbound`, remote dom0), write
//!    `start_info` and the shared info page (every `evtchn_upcall_mask` set, as
//!    `shared_info_x86_64` does);
//! 6. `hypercall_init` if the kernel has a hypercall page (the toolstack never writes the
//!    stubs itself), pin the L4, and `setvcpucontext` vCPU 0 as `vcpu_x86_64` does.
//!
//! The domain is left paused. If any hypercall fails after `createdomain`, the half-built
//! domain is destroyed before the error is returned.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use guest_abi::arch::{FLAT_KERNEL_DS, VcpuGuestContext, VgcfFlags, xen_pfn_to_cr3};
use guest_abi::boot::{BootLayout, BootRequest, LayoutError, StartInfoParams, plan_boot};
use guest_abi::domctl::XenDomctlCreatedomain;
use guest_abi::image::{ImageError, KernelImage};
use guest_abi::version::XenDomainHandle;
use guest_abi::xen::{SharedInfo, SifFlags};
use guest_abi::{DomId, EvtchnPort, Mfn, PAGE_SIZE, Pfn, VcpuId, VirtAddr, XenError};
use zerocopy::{FromZeros, IntoBytes};

use crate::config::DomainConfig;
use crate::hv::Hypervisor;
use crate::kernel_file::{self, UnpackError};

const PAGE: usize = PAGE_SIZE as usize;
static ZERO_PAGE: [u8; PAGE] = [0; PAGE];

/// Pages per MiB.
pub const PAGES_PER_MIB: u64 = (1 << 20) / PAGE_SIZE;
/// Free pages asked for beyond the domain's own, for the hypervisor's per-domain
/// structures (shared info page, vCPU state).
pub const OVERHEAD_PAGES: u64 = 16;
/// PFNs per `populate_physmap` call.
pub const POPULATE_BATCH: usize = 512;
/// `max_evtchn_port` of a new domain (libxl's default `event_channels`).
pub const MAX_EVTCHN_PORT: u32 = 1023;
/// `max_grant_frames` (xl.conf's default).
pub const MAX_GRANT_FRAMES: i32 = 64;
/// `max_maptrack_frames` (xl.conf's default).
pub const MAX_MAPTRACK_FRAMES: i32 = 1024;
/// Grant tables up to version 2 (`XEN_DOMCTL_GRANT_version(2)`, xl's default: the highest
/// the hypervisor offers).
pub const GRANT_OPTS: u32 = 2;

/// Why a domain could not be built. `Display` is one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The kernel file is a bzImage whose kernel cannot be taken out.
    Unpack(UnpackError),
    /// The kernel is not a usable Xen PV64 image.
    Image(ImageError),
    /// The kernel does not fit in the domain's memory.
    Layout(LayoutError),
    /// The host does not have the memory free.
    NotEnoughMemory {
        /// MiB the domain needs.
        needed_mib: u64,
        /// MiB the host has free.
        free_mib: u64,
    },
    /// A hypercall failed.
    Hypercall {
        /// Which.
        op: &'static str,
        /// How.
        error: XenError,
        /// The domain being built, once created: it has been destroyed.
        domid: Option<DomId>,
        /// The result of destroying it.
        cleanup: Result<(), XenError>,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unpack(e) => write!(f, "cannot load the kernel: {e}"),
            Self::Image(e) => match image_problem(e) {
                Some(what) => write!(f, "not a usable Xen PV kernel: {what}"),
                None => write!(f, "not a usable Xen PV kernel: {e}"),
            },
            Self::Layout(e) => write!(f, "cannot lay out the domain: {e}"),
            Self::NotEnoughMemory {
                needed_mib,
                free_mib,
            } => write!(
                f,
                "not enough free memory: the domain needs {needed_mib} MiB, the host has \
                 {free_mib} MiB free"
            ),
            Self::Hypercall {
                op, error, domid, ..
            } => {
                write!(f, "{op} failed: {error}")?;
                match (domid, self.cleanup_error()) {
                    (Some(id), None) => write!(f, "; domain {} destroyed", id.0),
                    (Some(id), Some(e)) => {
                        write!(f, "; destroying domain {} also failed: {e}", id.0)
                    }
                    (None, _) => Ok(()),
                }
            }
        }
    }
}

impl core::error::Error for BuildError {}

/// Plain words for the kernel image problems people meet most.
fn image_problem(e: &ImageError) -> Option<&'static str> {
    Some(match e {
        ImageError::Truncated => "the file is truncated",
        ImageError::NotElf => "not an ELF file",
        ImageError::WrongClass | ImageError::WrongMachine => "not an x86-64 ELF file",
        ImageError::WrongType => "not an ELF executable",
        ImageError::NoXenNotes => "no Xen ELF notes (not built for Xen PV)",
        ImageError::UnsupportedLoader => "the ELF notes name neither the generic loader nor Linux",
        _ => return None,
    })
}

impl BuildError {
    fn cleanup_error(&self) -> Option<XenError> {
        match self {
            Self::Hypercall {
                cleanup: Err(e), ..
            } => Some(*e),
            _ => None,
        }
    }
}

/// A hypercall that failed while the domain was being filled in.
#[derive(Clone, Copy, Debug)]
struct Failed {
    op: &'static str,
    error: XenError,
}

trait Op<T> {
    fn op(self, op: &'static str) -> Result<T, Failed>;
}

impl<T> Op<T> for Result<T, XenError> {
    fn op(self, op: &'static str) -> Result<T, Failed> {
        self.map_err(|error| Failed { op, error })
    }
}

/// A built, paused domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// Its id.
    pub domid: DomId,
    /// Its pages.
    pub nr_pages: u64,
    /// The machine frame of its console ring.
    pub console_frame: Mfn,
    /// Its end of the console event channel.
    pub console_port: EvtchnPort,
    /// The machine frame of its xenstore ring, if the layout has one.
    pub store_frame: Option<Mfn>,
    /// Its end of the xenstore event channel (`start_info.store_evtchn`).
    pub store_port: EvtchnPort,
    /// The peer's port offered to it ([`build_linked`]), if any.
    pub peer_port: Option<EvtchnPort>,
    /// Where everything went.
    pub layout: BootLayout,
}

/// The domain's pseudo-physical memory, written through the hypervisor.
struct Memory<'h, H> {
    hv: &'h mut H,
    dom: DomId,
    p2m: Vec<Mfn>,
    virt_base: u64,
}

impl<H: Hypervisor> Memory<'_, H> {
    fn mfn(&self, pfn: Pfn) -> Result<Mfn, Failed> {
        usize::try_from(pfn.0)
            .ok()
            .and_then(|i| self.p2m.get(i).copied())
            .ok_or(Failed {
                op: "locate a frame",
                error: XenError::Inval,
            })
    }

    /// Writes `bytes` at virtual address `va` of the bootstrap region.
    fn write(&mut self, va: u64, bytes: &[u8], op: &'static str) -> Result<(), Failed> {
        let at = va.checked_sub(self.virt_base).ok_or(Failed {
            op,
            error: XenError::Inval,
        })?;
        self.write_at(at, bytes, op)
    }

    /// Writes `bytes` from byte `at` of the domain's pseudo-physical memory (PFN
    /// `at / PAGE_SIZE`).
    fn write_at(&mut self, mut at: u64, bytes: &[u8], op: &'static str) -> Result<(), Failed> {
        for chunk in split_at_pages(at, bytes) {
            let mfn = self.mfn(Pfn(at / PAGE_SIZE))?;
            let offset = (at % PAGE_SIZE) as usize;
            self.hv.write_frame(self.dom, mfn, offset, chunk).op(op)?;
            at += chunk.len() as u64;
        }
        Ok(())
    }

    /// Writes `len` zero bytes at `va`.
    fn zero(&mut self, va: u64, len: u64, op: &'static str) -> Result<(), Failed> {
        let mut done = 0;
        while done < len {
            let at = va + done;
            let n = (PAGE_SIZE - at % PAGE_SIZE).min(len - done);
            self.write(at, &ZERO_PAGE[..n as usize], op)?;
            done += n;
        }
        Ok(())
    }
}

/// `bytes` cut where the page boundaries after byte offset `start` fall.
fn split_at_pages(start: u64, bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let first = ((PAGE_SIZE - start % PAGE_SIZE) as usize).min(bytes.len());
    let (head, tail) = bytes.split_at(first);
    core::iter::once(head)
        .filter(|h| !h.is_empty())
        .chain(tail.chunks(PAGE))
}

/// Builds a domain from `config`, leaving it paused.
pub fn build<H: Hypervisor>(
    hv: &mut H,
    config: &DomainConfig,
    kernel: &[u8],
    ramdisk: Option<&[u8]>,
    handle: XenDomainHandle,
) -> Result<Built, BuildError> {
    build_linked(hv, config, kernel, ramdisk, handle, None)
}

/// [`build`], and with `peer`, an event channel between the new domain and `peer` (our
/// extension, for `evtchn_peer`; there is no xenstore to publish one): after `createdomain`
/// the builder allocates a port of `peer` that the new domain may bind
/// (`EVTCHNOP_alloc_unbound` on the peer's behalf, which Xen allows dom0) and appends
/// `remote=PEER port=PORT` to the new domain's command line, for it to
/// `EVTCHNOP_bind_interdomain`.
pub fn build_linked<H: Hypervisor>(
    hv: &mut H,
    config: &DomainConfig,
    kernel: &[u8],
    ramdisk: Option<&[u8]>,
    handle: XenDomainHandle,
    peer: Option<DomId>,
) -> Result<Built, BuildError> {
    let kernel = kernel_file::unpack(kernel).map_err(BuildError::Unpack)?;
    let image = KernelImage::parse(&kernel).map_err(BuildError::Image)?;
    let nr_pages = config.memory_mib * PAGES_PER_MIB;
    let req = BootRequest {
        nr_pages,
        ramdisk_len: ramdisk.map_or(0, |r| r.len() as u64),
        flags: SifFlags::empty(),
    };
    let layout = plan_boot(&image, &req).map_err(BuildError::Layout)?;
    let early = |op, error| BuildError::Hypercall {
        op,
        error,
        domid: None,
        cleanup: Ok(()),
    };
    let phys = hv.physinfo().map_err(|e| early("physinfo", e))?;
    if phys.free_pages < nr_pages + OVERHEAD_PAGES {
        return Err(BuildError::NotEnoughMemory {
            needed_mib: (nr_pages + OVERHEAD_PAGES).div_ceil(PAGES_PER_MIB),
            free_mib: phys.free_pages / PAGES_PER_MIB,
        });
    }
    let create = XenDomctlCreatedomain {
        handle,
        max_vcpus: config.vcpus,
        max_evtchn_port: MAX_EVTCHN_PORT,
        max_grant_frames: MAX_GRANT_FRAMES,
        max_maptrack_frames: MAX_MAPTRACK_FRAMES,
        grant_opts: GRANT_OPTS,
        ..XenDomctlCreatedomain::default()
    };
    let domid = hv
        .create_domain(&create)
        .map_err(|e| early("createdomain", e))?;
    match fill(hv, domid, config, &image, layout, ramdisk, peer) {
        Ok((console_frame, (store_frame, store_port), console_port, peer_port)) => Ok(Built {
            domid,
            nr_pages,
            console_frame,
            console_port,
            store_frame,
            store_port,
            peer_port,
            layout,
        }),
        Err(Failed { op, error }) => Err(BuildError::Hypercall {
            op,
            error,
            domid: Some(domid),
            cleanup: hv.destroy_domain(domid),
        }),
    }
}

/// What [`fill`] returns: the console frame, the store frame and port, the console port
/// and the peer's port.
type Filled = (
    Mfn,
    (Option<Mfn>, EvtchnPort),
    EvtchnPort,
    Option<EvtchnPort>,
);

/// Steps 2 to 6 on a created domain; returns its console frame and port, and the peer's
/// port offered to it.
fn fill<H: Hypervisor>(
    hv: &mut H,
    dom: DomId,
    config: &DomainConfig,
    image: &KernelImage<'_>,
    layout: BootLayout,
    ramdisk: Option<&[u8]>,
    peer: Option<DomId>,
) -> Result<Filled, Failed> {
    hv.set_max_vcpus(dom, config.vcpus).op("max_vcpus")?;
    hv.set_max_mem(dom, config.maxmem_mib * 1024)
        .op("max_mem")?;

    let pfns: Vec<Pfn> = (0..layout.nr_pages).map(Pfn).collect();
    let mut p2m = vec![Mfn(0); pfns.len()];
    for (pfns, mfns) in pfns
        .chunks(POPULATE_BATCH)
        .zip(p2m.chunks_mut(POPULATE_BATCH))
    {
        hv.populate_physmap(dom, pfns, mfns)
            .op("populate_physmap")?;
    }
    let mut mem = Memory {
        hv,
        dom,
        p2m,
        virt_base: layout.virt_base.0,
    };

    for seg in image.segments() {
        mem.write(seg.dest.0, seg.data, "copy the kernel")?;
        let bss = seg.mem_size.saturating_sub(seg.data.len() as u64);
        mem.zero(
            seg.dest.0 + seg.data.len() as u64,
            bss,
            "clear the kernel's bss",
        )?;
    }
    if let (Some(region), Some(rd)) = (layout.ramdisk, ramdisk) {
        mem.write(region.start.0, rd, "copy the ramdisk")?;
    }
    let p2m_bytes: Vec<u8> = mem.p2m.iter().flat_map(|m| m.0.to_le_bytes()).collect();
    // In the region, or after it when the kernel maps it at INIT_P2M.
    let p2m_at = layout.p2m_pfn().0 * PAGE_SIZE;
    mem.write_at(p2m_at, &p2m_bytes, "write the P2M list")?;
    for region in [layout.xenstore, layout.console].into_iter().flatten() {
        mem.zero(
            region.start.0,
            PAGE_SIZE,
            "clear the console and xenstore pages",
        )?;
    }
    write_page_tables(&mut mem, &layout)?;

    let console_port = mem
        .hv
        .evtchn_alloc_unbound(dom, DomId(0))
        .op("evtchn_alloc_unbound")?;
    let store_port = mem
        .hv
        .evtchn_alloc_unbound(dom, DomId(0))
        .op("evtchn_alloc_unbound for the store")?;
    let mut cmdline = config.cmdline.clone();
    let peer_port = match peer {
        Some(peer) => {
            let port = mem
                .hv
                .evtchn_alloc_unbound(peer, dom)
                .op("evtchn_alloc_unbound for the peer")?;
            if !cmdline.is_empty() {
                cmdline.push(' ');
            }
            cmdline.push_str(&alloc::format!("remote={} port={}", peer.0, port.0));
            Some(port)
        }
        None => None,
    };
    let shared_info = mem
        .hv
        .domain_info(dom)
        .op("getdomaininfo")?
        .shared_info_frame;
    let mut si = SharedInfo::new_zeroed();
    for v in si.vcpu_info.iter_mut() {
        v.evtchn_upcall_mask = 1;
    }
    mem.hv
        .write_frame(dom, shared_info, 0, si.as_bytes())
        .op("write the shared info page")?;
    let params = StartInfoParams {
        shared_info_maddr: shared_info.addr(),
        store_evtchn: store_port,
        console_evtchn: console_port,
        cmdline: cmdline.as_bytes(),
    };
    let p2m = &mem.p2m;
    let start_info = layout.start_info(&params, |pfn| {
        p2m.get(pfn.0 as usize).copied().unwrap_or(Mfn(0))
    });
    let mut page = [0u8; PAGE];
    page[..start_info.as_bytes().len()].copy_from_slice(start_info.as_bytes());
    mem.write(layout.start_info.start.0, &page, "write start_info")?;

    if let Some(hp) = layout.hypercall_page {
        let mfn = mem.mfn(layout.pfn_of(hp))?;
        mem.hv.hypercall_init(dom, mfn).op("hypercall_init")?;
    }
    let l4 = mem.mfn(layout.l4_pfn())?;
    mem.hv.pin_l4_table(dom, l4).op("pin the L4 table")?;
    let context = vcpu_context(&layout, l4);
    mem.hv
        .set_vcpu_context(dom, VcpuId(0), &context)
        .op("setvcpucontext")?;
    let console = layout.console.map_or(VirtAddr(0), |c| c.start);
    let store = match layout.xenstore {
        Some(s) => Some(mem.mfn(layout.pfn_of(s.start))?),
        None => None,
    };
    Ok((
        mem.mfn(layout.pfn_of(console))?,
        (store, store_port),
        console_port,
        peer_port,
    ))
}

/// Writes every bootstrap page table, whole, from the layout's entries.
fn write_page_tables<H: Hypervisor>(
    mem: &mut Memory<'_, H>,
    layout: &BootLayout,
) -> Result<(), Failed> {
    let mut tables: BTreeMap<u64, [u8; PAGE]> = layout
        .page_table_frames()
        .map(|(pfn, _)| (pfn.0, [0u8; PAGE]))
        .collect();
    for e in layout.page_table_entries() {
        let entry = mem.mfn(e.target)?.addr() | e.flags.bits();
        let table = tables.get_mut(&e.table.0).ok_or(Failed {
            op: "write the page tables",
            error: XenError::Inval,
        })?;
        table[e.index * 8..e.index * 8 + 8].copy_from_slice(&entry.to_le_bytes());
    }
    for (pfn, table) in &tables {
        let mfn = mem.mfn(Pfn(*pfn))?;
        mem.hv
            .write_frame(mem.dom, mfn, 0, table)
            .op("write the page tables")?;
    }
    Ok(())
}

/// vCPU 0's state at the entry point, as `xg_dom_x86.c:vcpu_x86_64` sets it: the layout's
/// registers, flat kernel data selectors, kernel stack = boot stack, CR3 = the L4 (in
/// `xen_pfn_to_cr3` form), in kernel mode and online; no callbacks, no trap table, no
/// LDT or GDT frames (the guest registers them itself).
pub fn vcpu_context(layout: &BootLayout, l4: Mfn) -> VcpuGuestContext {
    let mut ctx = VcpuGuestContext::new_zeroed();
    ctx.user_regs = layout.initial_registers();
    ctx.user_regs.fs = FLAT_KERNEL_DS;
    ctx.user_regs.gs = FLAT_KERNEL_DS;
    ctx.flags = (VgcfFlags::IN_KERNEL | VgcfFlags::ONLINE).bits();
    ctx.ctrlreg[3] = xen_pfn_to_cr3(l4.0);
    ctx.kernel_ss = u64::from(ctx.user_regs.ss);
    ctx.kernel_sp = ctx.user_regs.rsp;
    ctx
}

#[cfg(test)]
mod tests;
