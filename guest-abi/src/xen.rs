//! The core of `xen.h`: start of day, shared info, MMU updates, multicalls, VIRQs,
//! VM assists and the console hypercall.

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::arch::{ArchSharedInfo, ArchVcpuInfo};
use crate::macros::xen_enum;

/// `XEN_LEGACY_MAX_VCPUS`: vCPUs whose `vcpu_info` lives in the shared info page.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;
/// `MAX_GUEST_CMDLINE`: bytes of command line in `start_info`, NUL included.
pub const MAX_GUEST_CMDLINE: usize = 1024;
/// The `start_info.magic` of a 64-bit PV guest (NUL-padded in the struct).
pub const START_INFO_MAGIC_X86_64: &[u8] = b"xen-3.0-x86_64";
/// `NR_VIRQS`: number of virtual IRQ lines.
pub const NR_VIRQS: u32 = 24;

xen_enum! {
    /// A virtual interrupt (`VIRQ_*`), bound to an event channel with `EVTCHNOP_bind_virq`.
    pub enum Virq: u32, prefix "VIRQ_" {
        /// Per vCPU: timebase update or timeout.
        Timer = 0 => "TIMER",
        /// Per vCPU: request to dump debug info.
        Debug = 1 => "DEBUG",
        /// Global (dom0): bytes on the emergency console.
        Console = 2 => "CONSOLE",
        /// Global (dom0): exceptional event for some domain.
        DomExc = 3 => "DOM_EXC",
        /// Global (dom0): trace buffer has records.
        Tbuf = 4 => "TBUF",
        /// Global (dom0): a domain paused for debugging.
        Debugger = 6 => "DEBUGGER",
        /// Per vCPU: Xenoprof sample.
        Xenoprof = 7 => "XENOPROF",
        /// Global (dom0): bytes received on the console ring.
        ConRing = 8 => "CON_RING",
        /// Global (dom0): physical CPU state changed.
        PcpuState = 9 => "PCPU_STATE",
        /// Global (dom0): memory event.
        MemEvent = 10 => "MEM_EVENT",
        /// Global: Argo message notification.
        Argo = 11 => "ARGO",
        /// Global (dom0): hypervisor low on heap memory.
        Enomem = 12 => "ENOMEM",
        /// Per vCPU: PMC interrupt.
        Xenpmu = 13 => "XENPMU",
        /// Architecture-specific VIRQ 0 (x86: machine check).
        Arch0 = 16 => "ARCH_0",
        /// Architecture-specific VIRQ 1.
        Arch1 = 17 => "ARCH_1",
        /// Architecture-specific VIRQ 2.
        Arch2 = 18 => "ARCH_2",
        /// Architecture-specific VIRQ 3.
        Arch3 = 19 => "ARCH_3",
        /// Architecture-specific VIRQ 4.
        Arch4 = 20 => "ARCH_4",
        /// Architecture-specific VIRQ 5.
        Arch5 = 21 => "ARCH_5",
        /// Architecture-specific VIRQ 6.
        Arch6 = 22 => "ARCH_6",
        /// Architecture-specific VIRQ 7.
        Arch7 = 23 => "ARCH_7",
    }
}

xen_enum! {
    /// `mmu_update.ptr & 3`: what an `mmu_update` request does.
    pub enum MmuUpdateCmd: u32, prefix "MMU_" {
        /// Checked `*ptr = val`; `ptr` is the machine address of a PTE.
        NormalPtUpdate = 0 => "NORMAL_PT_UPDATE",
        /// Set the M2P entry of the frame at `ptr` to `val`.
        MachphysUpdate = 1 => "MACHPHYS_UPDATE",
        /// Like a normal update but keeps the Accessed and Dirty bits.
        PtUpdatePreserveAd = 2 => "PT_UPDATE_PRESERVE_AD",
        /// Normal update whose `val` is never translated.
        PtUpdateNoTranslate = 3 => "PT_UPDATE_NO_TRANSLATE",
    }
}

xen_enum! {
    /// `mmuext_op.cmd`.
    pub enum MmuextCmd: u32, prefix "MMUEXT_" {
        /// Pin an L1 table (`arg1.mfn`).
        PinL1Table = 0 => "PIN_L1_TABLE",
        /// Pin an L2 table.
        PinL2Table = 1 => "PIN_L2_TABLE",
        /// Pin an L3 table.
        PinL3Table = 2 => "PIN_L3_TABLE",
        /// Pin an L4 table.
        PinL4Table = 3 => "PIN_L4_TABLE",
        /// Unpin a table.
        UnpinTable = 4 => "UNPIN_TABLE",
        /// Switch the kernel page-table base.
        NewBaseptr = 5 => "NEW_BASEPTR",
        /// Flush this vCPU's TLB.
        TlbFlushLocal = 6 => "TLB_FLUSH_LOCAL",
        /// Invalidate one page on this vCPU (`arg1.linear_addr`).
        InvlpgLocal = 7 => "INVLPG_LOCAL",
        /// Flush the TLBs of a vCPU set (`arg2.vcpumask`).
        TlbFlushMulti = 8 => "TLB_FLUSH_MULTI",
        /// Invalidate one page on a vCPU set.
        InvlpgMulti = 9 => "INVLPG_MULTI",
        /// Flush all vCPUs' TLBs.
        TlbFlushAll = 10 => "TLB_FLUSH_ALL",
        /// Invalidate one page on all vCPUs.
        InvlpgAll = 11 => "INVLPG_ALL",
        /// Write back and invalidate caches.
        FlushCache = 12 => "FLUSH_CACHE",
        /// Set the LDT (`arg1.linear_addr`, `arg2.nr_ents`).
        SetLdt = 13 => "SET_LDT",
        /// Switch the user page-table base (x86-64).
        NewUserBaseptr = 15 => "NEW_USER_BASEPTR",
        /// Zero a page.
        ClearPage = 16 => "CLEAR_PAGE",
        /// Copy `arg2.src_mfn` to `arg1.mfn`.
        CopyPage = 17 => "COPY_PAGE",
        /// Write back and invalidate caches on all CPUs.
        FlushCacheGlobal = 18 => "FLUSH_CACHE_GLOBAL",
        /// Mark a superpage (obsolete).
        MarkSuper = 19 => "MARK_SUPER",
        /// Unmark a superpage (obsolete).
        UnmarkSuper = 20 => "UNMARK_SUPER",
    }
}

xen_enum! {
    /// `console_io` commands.
    pub enum ConsoleIoCmd: u32, prefix "CONSOLEIO_" {
        /// Write bytes to the console.
        Write = 0 => "write",
        /// Read bytes from the console (dom0 only).
        Read = 1 => "read",
    }
}

xen_enum! {
    /// `vm_assist` commands.
    pub enum VmAssistCmd: u32, prefix "VMASST_CMD_" {
        /// Enable an assist.
        Enable = 0 => "enable",
        /// Disable an assist.
        Disable = 1 => "disable",
    }
}

xen_enum! {
    /// `vm_assist` types.
    pub enum VmAssistType: u32, prefix "VMASST_TYPE_" {
        /// Emulate 4GB segments (x86-32).
        FourGbSegments = 0 => "4gb_segments",
        /// Notify on 4GB segment emulation.
        FourGbSegmentsNotify = 1 => "4gb_segments_notify",
        /// Writable page tables (not on x86-64).
        WritablePagetables = 2 => "writable_pagetables",
        /// Extended CR3 for PAE (x86-32).
        PaeExtendedCr3 = 3 => "pae_extended_cr3",
        /// Architectural IOPL handling.
        ArchitecturalIopl = 4 => "architectural_iopl",
        /// Runstate area update flag.
        RunstateUpdateFlag = 5 => "runstate_update_flag",
        /// Strict M2P handling.
        M2pStrict = 32 => "m2p_strict",
    }
}

/// `UVMF_NONE`: no TLB flush after `update_va_mapping`.
pub const UVMF_NONE: u64 = 0;
/// `UVMF_TLB_FLUSH`: flush the whole TLB.
pub const UVMF_TLB_FLUSH: u64 = 1;
/// `UVMF_INVLPG`: flush only the updated entry.
pub const UVMF_INVLPG: u64 = 2;
/// `UVMF_FLUSHTYPE_MASK`: the flush type bits.
pub const UVMF_FLUSHTYPE_MASK: u64 = 3;
/// `UVMF_MULTI`: flush a vCPU subset (a pointer to the mask is ORed in).
pub const UVMF_MULTI: u64 = 0;
/// `UVMF_LOCAL`: flush this vCPU only.
pub const UVMF_LOCAL: u64 = 0;
/// `UVMF_ALL`: flush all vCPUs.
pub const UVMF_ALL: u64 = 4;

bitflags! {
    /// `start_info.flags` (`SIF_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct SifFlags: u32 {
        /// The domain is privileged.
        const PRIVILEGED = 1 << 0;
        /// The domain is the initial control domain (dom0).
        const INITDOMAIN = 1 << 1;
        /// `mod_start` is a multiboot module list.
        const MULTIBOOT_MOD = 1 << 2;
        /// `mod_start` is a PFN rather than a virtual address.
        const MOD_START_PFN = 1 << 3;
        /// The tools understand a virtually mapped P2M.
        const VIRT_P2M_4TOOLS = 1 << 4;
        /// Power-management bits (dom0).
        const PM_MASK = 0xFF << 8;
    }
}

/// `struct start_info`: what a PV guest finds at `rsi` when it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct StartInfo {
    /// `"xen-3.0-x86_64"`, NUL-padded.
    pub magic: [u8; 32],
    /// Total pages of the domain.
    pub nr_pages: u64,
    /// Machine address of the shared info page.
    pub shared_info: u64,
    /// [`SifFlags`].
    pub flags: u32,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole0: u32,
    /// Machine frame of the xenstore ring.
    pub store_mfn: u64,
    /// Event channel of the xenstore ring.
    pub store_evtchn: u32,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole1: u32,
    /// The console union: a domU's ring page, or dom0's VGA console info.
    pub console: StartInfoConsole,
    /// Virtual address of the bootstrap L4 table.
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// Virtual address of the P2M list (one `u64` MFN per PFN).
    pub mfn_list: u64,
    /// Virtual address (or PFN with `SIF_MOD_START_PFN`) of the ramdisk.
    pub mod_start: u64,
    /// Ramdisk length in bytes.
    pub mod_len: u64,
    /// The command line, NUL-terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First PFN of a relocated initial P2M table (0 if not relocated).
    pub first_p2m_pfn: u64,
    /// Frames of a relocated initial P2M table.
    pub nr_p2m_frames: u64,
}

/// The `start_info.console` union. For a domU it is `{ mfn, evtchn }`; for dom0 the first
/// word holds `{ info_off, info_size }` of the `dom0_vga_console_info` that follows
/// `start_info` in its page.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct StartInfoConsole {
    /// `domU.mfn`: machine frame of the console ring.
    pub mfn: u64,
    /// `domU.evtchn`: event channel of the console ring.
    pub evtchn: u32,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: u32,
}

impl StartInfoConsole {
    /// The dom0 view: offset and size of the VGA console info in the start info page.
    pub const fn dom0(info_off: u32, info_size: u32) -> Self {
        Self {
            mfn: info_off as u64 | (info_size as u64) << 32,
            evtchn: 0,
            _hole: 0,
        }
    }

    /// `dom0.info_off`.
    pub const fn dom0_info_off(&self) -> u32 {
        self.mfn as u32
    }

    /// `dom0.info_size`.
    pub const fn dom0_info_size(&self) -> u32 {
        (self.mfn >> 32) as u32
    }
}

impl StartInfo {
    /// The command line up to its first NUL (all of it if there is none).
    pub fn cmdline(&self) -> &[u8] {
        let len = self
            .cmd_line
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MAX_GUEST_CMDLINE);
        &self.cmd_line[..len]
    }

    /// The magic string up to its first NUL.
    pub fn magic(&self) -> &[u8] {
        let len = self
            .magic
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.magic.len());
        &self.magic[..len]
    }

    /// The flags as [`SifFlags`] (unknown bits kept).
    pub const fn sif_flags(&self) -> SifFlags {
        SifFlags::from_bits_retain(self.flags)
    }
}

/// `struct vcpu_time_info`: the pvclock record of one vCPU.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuTimeInfo {
    /// Odd while Xen updates the record.
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// Nanoseconds since boot at the last update.
    pub system_time: u64,
    /// TSC-to-nanoseconds multiplier (32.32 fixed point, after the shift).
    pub tsc_to_system_mul: u32,
    /// TSC shift applied before the multiplication.
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}

impl VcpuTimeInfo {
    /// The system time (nanoseconds since boot) at TSC value `tsc`, by the pvclock formula:
    /// `system_time + ((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul >> 32`, the
    /// shift being to the right when negative.
    pub const fn system_time_at(&self, tsc: u64) -> u64 {
        let delta = tsc.wrapping_sub(self.tsc_timestamp);
        let shifted = if self.tsc_shift >= 0 {
            delta << (self.tsc_shift as u32 & 63)
        } else {
            delta >> ((-(self.tsc_shift as i32)) as u32 & 63)
        };
        let scaled = ((shifted as u128 * self.tsc_to_system_mul as u128) >> 32) as u64;
        self.system_time.wrapping_add(scaled)
    }
}

/// `XEN_PVCLOCK_TSC_STABLE_BIT`: the TSC is stable across vCPUs.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `XEN_PVCLOCK_GUEST_STOPPED`: the guest was stopped.
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// `struct vcpu_info`: per-vCPU event and time state in the shared info page.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuInfo {
    /// Set by Xen when an event is pending for this vCPU.
    pub evtchn_upcall_pending: u8,
    /// The guest's virtual interrupt flag: non-zero masks upcalls.
    pub evtchn_upcall_mask: u8,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: [u8; 6],
    /// Which words of `evtchn_pending` have pending bits for this vCPU.
    pub evtchn_pending_sel: u64,
    /// Architecture-specific state (CR2).
    pub arch: ArchVcpuInfo,
    /// The pvclock record.
    pub time: VcpuTimeInfo,
}

/// `struct shared_info`: the page shared between Xen and a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SharedInfo {
    /// The first [`XEN_LEGACY_MAX_VCPUS`] vCPUs' `vcpu_info`.
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// Pending bits of the 2-level event channel ABI.
    pub evtchn_pending: [u64; 64],
    /// Mask bits of the 2-level event channel ABI.
    pub evtchn_mask: [u64; 64],
    /// Odd while Xen updates the wallclock.
    pub wc_version: u32,
    /// Wallclock seconds (low 32 bits).
    pub wc_sec: u32,
    /// Wallclock nanoseconds.
    pub wc_nsec: u32,
    /// Wallclock seconds (high 32 bits).
    pub wc_sec_hi: u32,
    /// Architecture-specific state (P2M location for the tools).
    pub arch: ArchSharedInfo,
}

/// `struct mmu_update`: one request of the `mmu_update` hypercall.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MmuUpdate {
    /// Machine address of the PTE, with the [`MmuUpdateCmd`] in the low 2 bits.
    pub ptr: u64,
    /// The new contents.
    pub val: u64,
}

/// `struct mmuext_op`: one request of the `mmuext_op` hypercall.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MmuextOp {
    /// [`MmuextCmd`].
    pub cmd: u32,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: u32,
    /// The `arg1` union: `mfn` or `linear_addr`.
    pub arg1: u64,
    /// The `arg2` union: `nr_ents`, `vcpumask` (a guest handle) or `src_mfn`.
    pub arg2: u64,
}

impl MmuextOp {
    /// A request for command `cmd` (a raw [`MmuextCmd`] value) with its two arguments.
    pub const fn new(cmd: u32, arg1: u64, arg2: u64) -> Self {
        Self {
            cmd,
            _hole: 0,
            arg1,
            arg2,
        }
    }
}

/// `struct multicall_entry`: one call of a multicall batch.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MulticallEntry {
    /// The hypercall number.
    pub op: u64,
    /// The hypercall's return value, written by Xen.
    pub result: u64,
    /// Up to six arguments.
    pub args: [u64; 6],
}

const _: () = assert!(size_of::<StartInfo>() == 1168);
const _: () = assert!(size_of::<VcpuInfo>() == 64);
const _: () = assert!(size_of::<VcpuTimeInfo>() == 32);
const _: () = assert!(size_of::<SharedInfo>() <= crate::PAGE_SIZE as usize);

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn start_info_strings() {
        let mut si = StartInfo::new_zeroed();
        si.magic[..START_INFO_MAGIC_X86_64.len()].copy_from_slice(START_INFO_MAGIC_X86_64);
        si.cmd_line[..5].copy_from_slice(b"hello");
        assert_eq!(si.magic(), b"xen-3.0-x86_64");
        assert_eq!(si.cmdline(), b"hello");
        si.cmd_line = [b'x'; MAX_GUEST_CMDLINE];
        assert_eq!(si.cmdline().len(), MAX_GUEST_CMDLINE);
    }

    #[test]
    fn pvclock_scales_the_tsc() {
        let t = VcpuTimeInfo {
            tsc_timestamp: 1000,
            system_time: 5_000,
            // 2 GHz: half a nanosecond per tick, as 0.5 << 32 after a shift of 0.
            tsc_to_system_mul: 1 << 31,
            ..VcpuTimeInfo::default()
        };
        assert_eq!(t.system_time_at(1000), 5_000);
        assert_eq!(t.system_time_at(3000), 6_000);
        let left = VcpuTimeInfo { tsc_shift: 1, ..t };
        assert_eq!(left.system_time_at(3000), 7_000);
        let right = VcpuTimeInfo { tsc_shift: -1, ..t };
        assert_eq!(right.system_time_at(3000), 5_500);
    }

    #[test]
    fn dom0_console_view() {
        let c = StartInfoConsole::dom0(1168, 56);
        assert_eq!((c.dom0_info_off(), c.dom0_info_size()), (1168, 56));
    }
}
