//! `pci.*`: the hardware domain's view of the machine's devices. PCI configuration mechanism
//! #1 through ports `0xcf8`/`0xcfc` (the address latched and read back, the host bridge's
//! vendor id readable), a device's memory BAR mapped uncached with `update_va_mapping` and read
//! and written through the mapping (a virtio-blk device, when QEMU has one: its modern common
//! configuration's feature window), and the MSI/local APIC window refused.
//!
//! Safety: port I/O runs with the I/O privilege `set_iopl(1)` gives the guest kernel; the
//! device page is mapped over a page of our own image that nothing in Rust refers to, and the
//! image's frame is mapped back before returning.

use guest_abi::arch::PteFlags;
use guest_abi::runtime::AsmCell;
use guest_abi::runtime::hypercall;
use guest_abi::xen::{StartInfo, UVMF_INVLPG};
use guest_abi::{VirtAddr, XenError};

use crate::check::{Report, Why, eq, ok};
use crate::domain::mfn_of;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The page whose mapping is replaced by a device's registers.
static WINDOW: AsmCell<Page> = AsmCell::new(Page([0; 4096]));

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;
const ENABLE: u32 = 1 << 31;

/// Virtio's PCI vendor, the transitional and modern block device ids.
const VIRTIO_VENDOR: u16 = 0x1af4;
const VIRTIO_BLK_IDS: [u16; 2] = [0x1001, 0x1042];
/// A vendor-specific capability; virtio's common configuration structure type.
const CAP_VENDOR: u8 = 0x09;
const VIRTIO_PCI_CAP_COMMON_CFG: u8 = 1;
/// `VIRTIO_F_VERSION_1`, bit 0 of the second feature word.
const VERSION_1: u32 = 1;

fn outl(port: u16, value: u32) {
    // SAFETY: a port write under the I/O privilege `run` set; the hypervisor emulates it.
    unsafe { core::arch::asm!("out dx, eax", in("dx") port, in("eax") value, options(nostack)) };
}

fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: as for `outl`.
    unsafe { core::arch::asm!("in eax, dx", in("dx") port, out("eax") value, options(nostack)) };
    value
}

/// The dword at register `reg` of bus 0, device `dev`, function 0.
fn config_read(dev: u32, reg: u32) -> u32 {
    outl(CONFIG_ADDRESS, ENABLE | (dev << 11) | (reg & 0xfc));
    inl(CONFIG_DATA)
}

/// The first virtio-blk device on bus 0.
fn find_virtio_blk() -> Option<u32> {
    (0..32).find(|&dev| {
        let id = config_read(dev, 0);
        id as u16 == VIRTIO_VENDOR && VIRTIO_BLK_IDS.contains(&((id >> 16) as u16))
    })
}

/// The physical address of the device's common configuration structure: its virtio
/// capability's BAR base plus offset.
fn common_config(dev: u32) -> Option<u64> {
    let has_caps = config_read(dev, 4) & (1 << 20) != 0;
    let mut cap = (config_read(dev, 0x34) & 0xfc) as u8;
    for _ in 0..48 {
        if !has_caps || cap == 0 {
            return None;
        }
        let head = config_read(dev, u32::from(cap));
        if head as u8 == CAP_VENDOR && (head >> 24) as u8 == VIRTIO_PCI_CAP_COMMON_CFG {
            let bar = config_read(dev, u32::from(cap) + 4) & 0xff;
            let offset = config_read(dev, u32::from(cap) + 8);
            return Some(bar_address(dev, bar)? + u64::from(offset));
        }
        cap = ((head >> 8) & 0xfc) as u8;
    }
    None
}

/// The base of memory BAR `bar` (a 64-bit BAR's high half included).
fn bar_address(dev: u32, bar: u32) -> Option<u64> {
    if bar > 5 {
        return None;
    }
    let low = config_read(dev, 0x10 + 4 * bar);
    if low & 1 != 0 {
        return None;
    }
    let high = if (low >> 1) & 3 == 2 && bar < 5 {
        config_read(dev, 0x14 + 4 * bar)
    } else {
        0
    };
    Some((u64::from(high) << 32) | u64::from(low & !0xf))
}

/// Maps machine address `maddr`'s frame uncached over [`WINDOW`].
fn map_device(maddr: u64) -> Result<u64, XenError> {
    let flags = PteFlags::PRESENT
        | PteFlags::RW
        | PteFlags::ACCESSED
        | PteFlags::DIRTY
        | PteFlags::PCD
        | PteFlags::PWT;
    let pte = (maddr & PteFlags::ADDR_MASK) | flags.bits();
    // SAFETY: WINDOW is this module's page; nothing in Rust refers to its contents.
    unsafe { hypercall::update_va_mapping(VirtAddr(WINDOW.addr()), pte, UVMF_INVLPG) }
}

/// Maps [`WINDOW`]'s own frame back.
fn unmap_device(si: &StartInfo) -> Result<u64, XenError> {
    let va = WINDOW.addr();
    let flags = PteFlags::PRESENT | PteFlags::RW | PteFlags::ACCESSED | PteFlags::DIRTY;
    let pte = (mfn_of(si, va) << 12) | flags.bits();
    // SAFETY: as for `map_device`; this restores the image's own mapping.
    unsafe { hypercall::update_va_mapping(VirtAddr(va), pte, UVMF_INVLPG) }
}

/// Reads the second feature word of the virtio common configuration at `maddr` through a
/// mapping: writes `device_feature_select` (offset 0) and reads `device_feature` (offset 4).
fn virtio_features_high(si: &StartInfo, maddr: u64) -> Result<u32, Why> {
    ok("update_va_mapping of the BAR", map_device(maddr))?;
    let base = WINDOW.addr() + (maddr & 0xfff);
    // SAFETY: `base` is inside WINDOW, which now maps the device's registers; volatile, as
    // device registers must be accessed.
    let features = unsafe {
        (base as *mut u32).write_volatile(1);
        ((base + 4) as *const u32).read_volatile()
    };
    ok("mapping the image's page back", unmap_device(si))?;
    Ok(features)
}

pub fn run(r: &mut Report, si: &StartInfo) {
    if let Err(e) = hypercall::set_iopl(1) {
        r.check(
            "pci.set_iopl(1)",
            Err(Why::Xen {
                what: "set_iopl",
                err: e,
            }),
        );
        return;
    }
    outl(CONFIG_ADDRESS, ENABLE | 0x10);
    r.check(
        "pci.config address latched and read back",
        eq(
            "0xcf8",
            inl(CONFIG_ADDRESS).into(),
            u64::from(ENABLE | 0x10),
        ),
    );
    let vendor = config_read(0, 0) as u16;
    r.check(
        "pci.host bridge vendor id readable",
        if vendor == 0xffff || vendor == 0 {
            Err(Why::Text("no device at 00:00.0"))
        } else {
            Ok(())
        },
    );
    let lapic = map_device(0xfee0_0000);
    if lapic.is_ok() {
        let _ = unmap_device(si);
    }
    r.check_eq(
        "pci.mapping the MSI/local APIC window refused",
        lapic,
        Err(XenError::Perm),
    );

    let Some(dev) = find_virtio_blk() else { return };
    r.check(
        "pci.virtio-blk BAR mapped: VERSION_1 offered",
        common_config(dev)
            .ok_or(Why::Text("no virtio common configuration in a memory BAR"))
            .and_then(|maddr| virtio_features_high(si, maddr))
            .and_then(|f| eq("device_feature[1] & VERSION_1", u64::from(f & VERSION_1), 1)),
    );
}
