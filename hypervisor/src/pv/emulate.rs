//! Emulation of the privileged instructions a PV kernel executes in ring 3, following Xen's
//! `pv/emul-priv-op.c` and `pv/emul-inv-op.c`: `cpuid` (plain, when CPUID faulting traps it,
//! and behind the forced-emulation prefix `ud2; .ascii "xen"`), `rdmsr`/`wrmsr` of the segment
//! base MSRs and a small safe set, reads of CR0/CR2/CR3/CR4 and writes of CR0.TS and CR4,
//! `xsetbv`, `clts`, port I/O under the virtual IOPL, and `cli`/`sti`/`hlt`/`wbinvd`.
//! Anything else is not emulated and the fault goes back to the guest as it was.

use super::cpuid::guest_cpuid;
use super::guest_mem::GuestMemory;
use super::io_ports::{self, GuestPorts};
use super::vcpu::PvVcpu;
use crate::x86::regs::Regs;
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

/// Xen's forced-emulation prefix: `ud2` followed by the bytes `"xen"`.
pub const FORCED_EMULATION_PREFIX: [u8; 5] = [0x0f, 0x0b, b'x', b'e', b'n'];

/// The PAT value Xen gives PV guests (and programs on the host).
pub const XEN_PAT: u64 = 0x0000_0501_0007_0406;

const MSR_EFER: u32 = 0xc000_0080;
const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_SHADOW_GS_BASE: u32 = 0xc000_0102;
const MSR_PAT: u32 = 0x277;

/// What the machine provides to the emulator (its ports and PCI configuration space included).
pub trait PrivHost: GuestPorts {
    /// The host's raw CPUID.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4];
    /// The host's CR0 and CR4.
    fn host_cr0(&self) -> u64;
    /// The host's CR4.
    fn host_cr4(&self) -> u64;
    /// The host's EFER.
    fn host_efer(&self) -> u64;
    /// The XCR0 bits the host supports.
    fn xcr0_supported(&self) -> u64;
    /// Loads XCR0.
    fn set_xcr0(&mut self, value: u64);
    /// The virtual CR2 (from `vcpu_info`).
    fn guest_cr2(&mut self) -> u64;
    /// Loads the hardware state of the vCPU's mode (segment bases changed).
    fn sync_mode(&mut self, vcpu: &PvVcpu);
    /// Loads a new FS base.
    fn set_fs_base(&mut self, base: u64);
    /// Sets or clears hardware CR0.TS.
    fn set_fpu_trap(&mut self, ts: bool);
}

/// How an emulation attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done; the guest continues after the instruction.
    Emulated,
    /// `hlt`: block until an event arrives, then continue after it.
    Block,
    /// Not something we emulate (or not allowed): deliver the original fault.
    Fault,
    /// Part of a `rep` instruction was done: the guest resumes at the same instruction with
    /// the count updated (so one exit stays short).
    Partial,
}

/// Most `rep ins`/`rep outs` repetitions emulated in one exit.
pub const MAX_REPS_PER_EXIT: u64 = 256;

/// CR4 bits a PV guest sees; the rest are the hypervisor's business.
const GUEST_CR4_VISIBLE: u64 = (1 << 5) | (1 << 9) | (1 << 10) | (1 << 18); // PAE, OSFXSR, OSXMMEXCPT, OSXSAVE
/// CR0.TS.
const CR0_TS: u64 = 1 << 3;

/// Whether the vCPU's current mode may do port I/O or `cli`/`sti` (Xen's `iopl_ok`): the
/// guest kernel counts as ring 1, guest user as ring 3.
pub fn iopl_ok(vcpu: &PvVcpu) -> bool {
    let cpl = if vcpu.kernel_mode { 1 } else { 3 };
    vcpu.iopl >= cpl
}

/// Reads up to 15 instruction bytes at `rip`, fewer if the next page is not readable.
pub fn fetch(mem: &mut impl GuestMemory, rip: u64, buf: &mut [u8; 15]) -> usize {
    if mem.read(rip, buf).is_ok() {
        return 15;
    }
    let to_page_end = (4096 - (rip & 0xfff)) as usize;
    let n = to_page_end.min(15);
    if mem.read(rip, &mut buf[..n]).is_ok() {
        n
    } else {
        0
    }
}

/// Builds the instruction decoder's tables, which it otherwise builds on first use (millions
/// of instructions): called at boot, so that no guest exit pays for it.
pub fn warm_up() {
    let _ = Decoder::with_ip(64, &[0x90], 0, DecoderOptions::NONE).decode();
}

/// Emulates the instruction at `regs.rip` that raised #GP (or #UD, for the forced-emulation
/// prefix). `bytes` are the instruction bytes fetched from `rip`.
pub fn emulate(
    regs: &mut Regs,
    vcpu: &mut PvVcpu,
    bytes: &[u8],
    ud: bool,
    mem: &mut impl GuestMemory,
    host: &mut impl PrivHost,
) -> Outcome {
    if ud {
        // Only `cpuid` may follow the prefix.
        if bytes.len() >= 7 && bytes[..5] == FORCED_EMULATION_PREFIX && bytes[5..7] == [0x0f, 0xa2]
        {
            do_cpuid(regs, host);
            regs.rip = regs.rip.wrapping_add(7);
            return Outcome::Emulated;
        }
        return Outcome::Fault;
    }
    let mut decoder = Decoder::with_ip(64, bytes, regs.rip, DecoderOptions::NONE);
    let insn = decoder.decode();
    if insn.is_invalid() {
        return Outcome::Fault;
    }
    let outcome = match insn.mnemonic() {
        Mnemonic::Cpuid => {
            do_cpuid(regs, host);
            Outcome::Emulated
        }
        // Xen refuses every MSR access from guest user mode.
        Mnemonic::Rdmsr if vcpu.kernel_mode => rdmsr(regs, vcpu, host),
        Mnemonic::Wrmsr if vcpu.kernel_mode => wrmsr(regs, vcpu, host),
        Mnemonic::Mov if vcpu.kernel_mode => mov_cr(&insn, regs, vcpu, host),
        Mnemonic::Clts if vcpu.kernel_mode => {
            vcpu.fpu_ts = false;
            host.set_fpu_trap(false);
            Outcome::Emulated
        }
        Mnemonic::Xsetbv if vcpu.kernel_mode => xsetbv(regs, host),
        Mnemonic::In | Mnemonic::Out => port_io(&insn, regs, vcpu, host),
        Mnemonic::Insb
        | Mnemonic::Insw
        | Mnemonic::Insd
        | Mnemonic::Outsb
        | Mnemonic::Outsw
        | Mnemonic::Outsd => string_io(&insn, regs, vcpu, mem, host),
        // Xen treats these as no-ops for a guest with enough I/O privilege.
        Mnemonic::Cli | Mnemonic::Sti if iopl_ok(vcpu) => Outcome::Emulated,
        Mnemonic::Wbinvd | Mnemonic::Invd if vcpu.kernel_mode => Outcome::Emulated,
        Mnemonic::Hlt if vcpu.kernel_mode => Outcome::Block,
        _ => Outcome::Fault,
    };
    if matches!(outcome, Outcome::Emulated | Outcome::Block) {
        regs.rip = insn.next_ip();
    }
    outcome
}

fn do_cpuid(regs: &mut Regs, host: &impl PrivHost) {
    let (leaf, sub) = (regs.rax as u32, regs.rcx as u32);
    let [a, b, c, d] = guest_cpuid(leaf, sub, host.cpuid(leaf, sub));
    regs.rax = u64::from(a);
    regs.rbx = u64::from(b);
    regs.rcx = u64::from(c);
    regs.rdx = u64::from(d);
}

fn rdmsr(regs: &mut Regs, vcpu: &PvVcpu, host: &impl PrivHost) -> Outcome {
    let value = match regs.rcx as u32 {
        MSR_FS_BASE => vcpu.fs_base,
        MSR_GS_BASE if vcpu.kernel_mode => vcpu.gs_base_kernel,
        MSR_SHADOW_GS_BASE if vcpu.kernel_mode => vcpu.gs_base_user,
        MSR_PAT => XEN_PAT,
        MSR_EFER => host.host_efer() & ((1 << 0) | (1 << 8) | (1 << 10) | (1 << 11)),
        _ => return Outcome::Fault,
    };
    regs.rax = value & 0xffff_ffff;
    regs.rdx = value >> 32;
    Outcome::Emulated
}

fn wrmsr(regs: &mut Regs, vcpu: &mut PvVcpu, host: &mut impl PrivHost) -> Outcome {
    let value = (regs.rdx << 32) | (regs.rax & 0xffff_ffff);
    let canonical = super::guest_mem::is_canonical(value);
    match regs.rcx as u32 {
        MSR_FS_BASE if vcpu.kernel_mode && canonical => {
            vcpu.fs_base = value;
            host.set_fs_base(value);
        }
        MSR_GS_BASE if vcpu.kernel_mode && canonical => {
            vcpu.gs_base_kernel = value;
            host.sync_mode(vcpu);
        }
        MSR_SHADOW_GS_BASE if vcpu.kernel_mode && canonical => vcpu.gs_base_user = value,
        // Writing the value it already has is harmless; anything else is refused.
        MSR_PAT if value == XEN_PAT => {}
        _ => return Outcome::Fault,
    }
    Outcome::Emulated
}

fn gpr(regs: &mut Regs, r: Register) -> Option<&mut u64> {
    // `mov` to and from control registers always uses 64-bit registers in long mode.
    Some(match r {
        Register::RAX => &mut regs.rax,
        Register::RBX => &mut regs.rbx,
        Register::RCX => &mut regs.rcx,
        Register::RDX => &mut regs.rdx,
        Register::RSI => &mut regs.rsi,
        Register::RDI => &mut regs.rdi,
        Register::RBP => &mut regs.rbp,
        Register::R8 => &mut regs.r8,
        Register::R9 => &mut regs.r9,
        Register::R10 => &mut regs.r10,
        Register::R11 => &mut regs.r11,
        Register::R12 => &mut regs.r12,
        Register::R13 => &mut regs.r13,
        Register::R14 => &mut regs.r14,
        Register::R15 => &mut regs.r15,
        _ => return None,
    })
}

fn mov_cr(
    insn: &Instruction,
    regs: &mut Regs,
    vcpu: &mut PvVcpu,
    host: &mut impl PrivHost,
) -> Outcome {
    let (dst, src) = (insn.op0_register(), insn.op1_register());
    if matches!(
        dst,
        Register::CR0 | Register::CR2 | Register::CR3 | Register::CR4 | Register::CR8
    ) {
        let Some(&mut value) = gpr(regs, src) else {
            return Outcome::Fault;
        };
        match dst {
            Register::CR0 => {
                // Only TS is the guest's to change.
                let expect = (host.host_cr0() & !CR0_TS) | (value & CR0_TS);
                if value != expect {
                    return Outcome::Fault;
                }
                vcpu.fpu_ts = value & CR0_TS != 0;
                host.set_fpu_trap(vcpu.fpu_ts);
            }
            // Writes of CR4 are accepted and ignored, as Xen does for bits the guest may not own.
            Register::CR4 => {}
            _ => return Outcome::Fault,
        }
        return Outcome::Emulated;
    }
    let value = match src {
        Register::CR0 => (host.host_cr0() & !CR0_TS) | if vcpu.fpu_ts { CR0_TS } else { 0 },
        Register::CR2 => host.guest_cr2(),
        Register::CR3 => vcpu.active_table().map_or(0, |m| m.addr()),
        Register::CR4 => host.host_cr4() & GUEST_CR4_VISIBLE,
        _ => return Outcome::Fault,
    };
    match gpr(regs, dst) {
        Some(r) => {
            *r = value;
            Outcome::Emulated
        }
        None => Outcome::Fault,
    }
}

fn xsetbv(regs: &mut Regs, host: &mut impl PrivHost) -> Outcome {
    let value = (regs.rdx << 32) | (regs.rax & 0xffff_ffff);
    // XCR0 only; x87 must stay on; AVX needs SSE; nothing the host lacks.
    if regs.rcx as u32 != 0
        || value & 1 == 0
        || value & !host.xcr0_supported() != 0
        || (value & 4 != 0 && value & 2 == 0)
    {
        return Outcome::Fault;
    }
    host.set_xcr0(value);
    Outcome::Emulated
}

fn access_size(r: Register) -> u8 {
    match r {
        Register::AL => 1,
        Register::AX => 2,
        _ => 4,
    }
}

fn port_io(
    insn: &Instruction,
    regs: &mut Regs,
    vcpu: &PvVcpu,
    host: &mut impl PrivHost,
) -> Outcome {
    if !iopl_ok(vcpu) {
        return Outcome::Fault;
    }
    let is_in = insn.mnemonic() == Mnemonic::In;
    let (port_op, data_reg) = if is_in {
        (1, insn.op0_register())
    } else {
        (0, insn.op1_register())
    };
    let port = match insn.op_kind(port_op) {
        OpKind::Immediate8 => u16::from(insn.immediate8()),
        _ => regs.rdx as u16,
    };
    let size = access_size(data_reg);
    if is_in {
        // Ports the domain has not been granted read as all-ones.
        let v = io_ports::read(host, port, size);
        let mask = match size {
            1 => 0xff,
            2 => 0xffff,
            _ => 0xffff_ffff,
        };
        regs.rax = if size == 4 {
            u64::from(v)
        } else {
            (regs.rax & !mask) | (u64::from(v) & mask)
        };
    } else {
        io_ports::write(host, port, size, regs.rax as u32);
    }
    Outcome::Emulated
}

fn string_io(
    insn: &Instruction,
    regs: &mut Regs,
    vcpu: &PvVcpu,
    mem: &mut impl GuestMemory,
    host: &mut impl PrivHost,
) -> Outcome {
    if !iopl_ok(vcpu) {
        return Outcome::Fault;
    }
    let size: u8 = match insn.mnemonic() {
        Mnemonic::Insb | Mnemonic::Outsb => 1,
        Mnemonic::Insw | Mnemonic::Outsw => 2,
        _ => 4,
    };
    let is_in = matches!(
        insn.mnemonic(),
        Mnemonic::Insb | Mnemonic::Insw | Mnemonic::Insd
    );
    let port = regs.rdx as u16;
    let rep = insn.has_rep_prefix();
    let step = if regs.rflags & (1 << 10) != 0 {
        -i64::from(size)
    } else {
        i64::from(size)
    };
    let mut count = if rep { regs.rcx } else { 1 };
    let stop_at = count.saturating_sub(MAX_REPS_PER_EXIT);
    while count > stop_at {
        let n = usize::from(size);
        if is_in {
            let v = io_ports::read(host, port, size);
            if mem.write(regs.rdi, &v.to_le_bytes()[..n]).is_err() {
                return Outcome::Fault;
            }
            regs.rdi = regs.rdi.wrapping_add(step as u64);
        } else {
            let mut b = [0u8; 4];
            if mem.read(regs.rsi, &mut b[..n]).is_err() {
                return Outcome::Fault;
            }
            io_ports::write(host, port, size, u32::from_le_bytes(b));
            regs.rsi = regs.rsi.wrapping_add(step as u64);
        }
        count -= 1;
        if rep {
            regs.rcx = count;
        }
    }
    if count > 0 {
        Outcome::Partial
    } else {
        Outcome::Emulated
    }
}

#[cfg(test)]
mod tests {
    use super::super::guest_mem::fake::FakeGuest;
    use super::*;
    use std::vec::Vec;

    #[derive(Default)]
    struct FakePriv {
        outs: Vec<(u16, u8, u32)>,
        xcr0: u64,
        fs: u64,
        ts: bool,
        synced: u32,
        pci: crate::pv::io_ports::fake::FakePorts,
    }

    impl GuestPorts for FakePriv {
        fn port_permitted(&self, port: u16, _: u8) -> bool {
            port == 0x80
        }
        fn port_in(&mut self, _: u16, _: u8) -> u32 {
            0x1234_5678
        }
        fn port_out(&mut self, port: u16, size: u8, value: u32) {
            self.outs.push((port, size, value));
        }
        fn pci_cf8(&self) -> u32 {
            self.pci.pci_cf8()
        }
        fn set_pci_cf8(&mut self, value: u32) {
            self.pci.set_pci_cf8(value);
        }
        fn pci_config_permitted(&self) -> bool {
            self.pci.pci_config_permitted()
        }
        fn pci_config_read(&mut self, address: u32, size: u8) -> u32 {
            self.pci.pci_config_read(address, size)
        }
        fn pci_config_write(&mut self, address: u32, size: u8, value: u32) {
            self.pci.pci_config_write(address, size, value);
        }
    }

    impl PrivHost for FakePriv {
        fn cpuid(&self, _: u32, _: u32) -> [u32; 4] {
            [u32::MAX; 4]
        }
        fn host_cr0(&self) -> u64 {
            0x8005_0033
        }
        fn host_cr4(&self) -> u64 {
            0x0004_06a0 | (1 << 20)
        }
        fn host_efer(&self) -> u64 {
            0xd01
        }
        fn xcr0_supported(&self) -> u64 {
            7
        }
        fn set_xcr0(&mut self, v: u64) {
            self.xcr0 = v;
        }
        fn guest_cr2(&mut self) -> u64 {
            0xbad
        }
        fn sync_mode(&mut self, _: &PvVcpu) {
            self.synced += 1;
        }
        fn set_fs_base(&mut self, b: u64) {
            self.fs = b;
        }
        fn set_fpu_trap(&mut self, ts: bool) {
            self.ts = ts;
        }
    }

    fn run(bytes: &[u8], regs: &mut Regs, vcpu: &mut PvVcpu, host: &mut FakePriv) -> Outcome {
        let mut mem = FakeGuest::default();
        mem.map(0x1000, 0x100);
        emulate(regs, vcpu, bytes, false, &mut mem, host)
    }

    fn kernel() -> PvVcpu {
        PvVcpu {
            iopl: 1,
            ..PvVcpu::default()
        }
    }

    #[test]
    fn cpuid_plain_and_forced() {
        let mut host = FakePriv::default();
        let mut regs = Regs {
            rax: 1,
            rip: 0x1000,
            ..Regs::default()
        };
        let mut vcpu = kernel();
        assert_eq!(
            run(&[0x0f, 0xa2], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated
        );
        assert_eq!(regs.rip, 0x1002);
        assert_eq!(regs.rcx & (1 << 5), 0, "VMX hidden");
        let mut regs = Regs {
            rax: 1,
            rip: 0x1000,
            ..Regs::default()
        };
        let forced = [0x0f, 0x0b, b'x', b'e', b'n', 0x0f, 0xa2];
        let mut mem = FakeGuest::default();
        assert_eq!(
            emulate(&mut regs, &mut vcpu, &forced, true, &mut mem, &mut host),
            Outcome::Emulated
        );
        assert_eq!(regs.rip, 0x1007);
        assert_eq!(
            emulate(
                &mut regs,
                &mut vcpu,
                &[0x0f, 0x0b, 0, 0, 0, 0, 0],
                true,
                &mut mem,
                &mut host
            ),
            Outcome::Fault
        );
    }

    #[test]
    fn msrs_of_segment_bases_and_pat() {
        let mut host = FakePriv::default();
        let mut vcpu = kernel();
        // wrmsr GS_BASE
        let mut regs = Regs {
            rcx: 0xc000_0101,
            rax: 0x8000_0000,
            rdx: 0xffff_8880,
            ..Regs::default()
        };
        assert_eq!(
            run(&[0x0f, 0x30], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated
        );
        assert_eq!(vcpu.gs_base_kernel, 0xffff_8880_8000_0000);
        assert_eq!(host.synced, 1);
        // rdmsr PAT
        let mut regs = Regs {
            rcx: 0x277,
            ..Regs::default()
        };
        assert_eq!(
            run(&[0x0f, 0x32], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated
        );
        assert_eq!((regs.rdx << 32) | regs.rax, XEN_PAT);
        // Non-canonical base, unknown MSR, user-mode write: the fault goes back.
        let mut regs = Regs {
            rcx: 0xc000_0100,
            rdx: 0x8000,
            ..Regs::default()
        };
        assert_eq!(
            run(&[0x0f, 0x30], &mut regs, &mut vcpu, &mut host),
            Outcome::Fault
        );
        let mut regs = Regs {
            rcx: 0x1b,
            ..Regs::default()
        };
        assert_eq!(
            run(&[0x0f, 0x32], &mut regs, &mut vcpu, &mut host),
            Outcome::Fault
        );
        let mut regs = Regs {
            rcx: 0x10,
            ..Regs::default()
        };
        assert_eq!(
            run(&[0x0f, 0x30], &mut regs, &mut vcpu, &mut host),
            Outcome::Fault,
            "wrmsr TSC"
        );
    }

    #[test]
    fn control_registers() {
        let mut host = FakePriv::default();
        let mut vcpu = PvVcpu {
            fpu_ts: true,
            ..kernel()
        };
        let mut regs = Regs::default();
        // mov %cr0, %rax
        assert_eq!(
            run(&[0x0f, 0x20, 0xc0], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated
        );
        assert_eq!(regs.rax & CR0_TS, CR0_TS);
        // mov %cr4, %rbx: SMAP and friends are not shown
        assert_eq!(
            run(&[0x0f, 0x20, 0xe3], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated
        );
        assert_eq!(regs.rbx & (1 << 20), 0);
        assert_ne!(regs.rbx & (1 << 9), 0);
        // mov %cr2, %rcx
        assert_eq!(
            run(&[0x0f, 0x20, 0xd1], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated
        );
        assert_eq!(regs.rcx, 0xbad);
        // mov %rax, %cr0 with TS cleared: allowed
        regs.rax = 0x8005_0033;
        assert_eq!(
            run(&[0x0f, 0x22, 0xc0], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated
        );
        assert!(!vcpu.fpu_ts);
        // mov %rax, %cr0 turning paging off: refused
        regs.rax = 0x33;
        assert_eq!(
            run(&[0x0f, 0x22, 0xc0], &mut regs, &mut vcpu, &mut host),
            Outcome::Fault
        );
        // mov %rax, %cr3: refused (use mmuext_op)
        assert_eq!(
            run(&[0x0f, 0x22, 0xd8], &mut regs, &mut vcpu, &mut host),
            Outcome::Fault
        );
        // user mode may not read CRs
        vcpu.kernel_mode = false;
        assert_eq!(
            run(&[0x0f, 0x20, 0xc0], &mut regs, &mut vcpu, &mut host),
            Outcome::Fault
        );
    }

    #[test]
    fn port_io_follows_iopl_and_grants() {
        let mut host = FakePriv::default();
        let mut vcpu = kernel();
        let mut regs = Regs {
            rax: 0xaaaa_aaaa_aaaa_aaaa,
            rdx: 0x3f8,
            ..Regs::default()
        };
        // in %dx, %al from a port not granted: all-ones in AL only
        assert_eq!(
            run(&[0xec], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated
        );
        assert_eq!(regs.rax, 0xaaaa_aaaa_aaaa_aaff);
        // in $0x80, %eax from a granted port: zero-extended
        assert_eq!(
            run(&[0xe5, 0x80], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated
        );
        assert_eq!(regs.rax, 0x1234_5678);
        // out %al, $0x80 goes through; out to a port not granted is dropped
        assert_eq!(
            run(&[0xe6, 0x80], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated
        );
        assert_eq!(
            run(&[0xee], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated
        );
        assert_eq!(host.outs, [(0x80, 1, 0x1234_5678)]);
        // Without I/O privilege: #GP goes back to the guest.
        vcpu.iopl = 0;
        assert_eq!(
            run(&[0xec], &mut regs, &mut vcpu, &mut host),
            Outcome::Fault
        );
        assert_eq!(
            run(&[0xfa], &mut regs, &mut vcpu, &mut host),
            Outcome::Fault,
            "cli"
        );
        vcpu.iopl = 1;
        assert_eq!(
            run(&[0xfa], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated,
            "cli"
        );
    }

    #[test]
    fn pci_configuration_through_cf8_and_cfc() {
        let mut host = FakePriv::default();
        host.pci.hardware = true;
        host.pci.config.insert(3 << 11, 0xf4);
        host.pci.config.insert((3 << 11) | 1, 0x1a);
        let mut vcpu = kernel();
        // out %eax, %dx to 0xcf8: latched, not written to the machine
        let mut regs = Regs {
            rax: 0x8000_1800,
            rdx: 0xcf8,
            ..Regs::default()
        };
        assert_eq!(
            run(&[0xef], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated
        );
        assert!(host.outs.is_empty());
        // in %dx, %ax from 0xcfc: the vendor id of the latched device
        regs.rdx = 0xcfc;
        regs.rax = 0xaaaa_aaaa;
        assert_eq!(
            run(&[0x66, 0xed], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated
        );
        assert_eq!(regs.rax, 0xaaaa_1af4);
        // A domU's data reads are all-ones.
        host.pci.hardware = false;
        assert_eq!(
            run(&[0xed], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated
        );
        assert_eq!(regs.rax, 0xffff_ffff);
        assert_eq!(host.pci.config_log.len(), 1);
    }

    #[test]
    fn long_rep_outs_is_done_in_bounded_steps() {
        let mut host = FakePriv::default();
        let mut vcpu = kernel();
        let mut mem = FakeGuest::default();
        mem.map(0x1000, 0x1000);
        let mut regs = Regs {
            rip: 0x500,
            rsi: 0x1000,
            rcx: 1000,
            rdx: 0x3f8,
            ..Regs::default()
        };
        assert_eq!(
            emulate(
                &mut regs,
                &mut vcpu,
                &[0xf3, 0x6e],
                false,
                &mut mem,
                &mut host
            ),
            Outcome::Partial
        );
        assert_eq!(
            (regs.rip, regs.rcx, regs.rsi),
            (0x500, 1000 - MAX_REPS_PER_EXIT, 0x1000 + MAX_REPS_PER_EXIT)
        );
        while regs.rcx > 0 {
            emulate(
                &mut regs,
                &mut vcpu,
                &[0xf3, 0x6e],
                false,
                &mut mem,
                &mut host,
            );
        }
        assert_eq!(regs.rip, 0x502, "done: past the instruction");
    }

    #[test]
    fn user_mode_msr_access_faults() {
        let mut host = FakePriv::default();
        let mut vcpu = PvVcpu {
            kernel_mode: false,
            ..kernel()
        };
        let mut regs = Regs {
            rcx: 0x277,
            ..Regs::default()
        };
        assert_eq!(
            run(&[0x0f, 0x32], &mut regs, &mut vcpu, &mut host),
            Outcome::Fault
        );
        assert_eq!(
            run(&[0x0f, 0x30], &mut regs, &mut vcpu, &mut host),
            Outcome::Fault
        );
    }

    #[test]
    fn rep_outs_and_xsetbv_and_hlt() {
        let mut host = FakePriv::default();
        let mut vcpu = kernel();
        let mut mem = FakeGuest::default();
        mem.map(0x1000, 0x10);
        mem.write(0x1000, b"abc").unwrap();
        let mut regs = Regs {
            rsi: 0x1000,
            rcx: 3,
            rdx: 0x80,
            ..Regs::default()
        };
        assert_eq!(
            emulate(
                &mut regs,
                &mut vcpu,
                &[0xf3, 0x6e],
                false,
                &mut mem,
                &mut host
            ),
            Outcome::Emulated
        );
        assert_eq!(
            host.outs.iter().map(|o| o.2 as u8).collect::<Vec<_>>(),
            b"abc"
        );
        assert_eq!((regs.rsi, regs.rcx), (0x1003, 0));
        let mut regs = Regs {
            rax: 7,
            ..Regs::default()
        };
        assert_eq!(
            run(&[0x0f, 0x01, 0xd1], &mut regs, &mut vcpu, &mut host),
            Outcome::Emulated
        );
        assert_eq!(host.xcr0, 7);
        regs.rax = 0xf;
        assert_eq!(
            run(&[0x0f, 0x01, 0xd1], &mut regs, &mut vcpu, &mut host),
            Outcome::Fault,
            "unsupported bit"
        );
        regs.rax = 5;
        assert_eq!(
            run(&[0x0f, 0x01, 0xd1], &mut regs, &mut vcpu, &mut host),
            Outcome::Fault,
            "AVX without SSE"
        );
        assert_eq!(
            run(&[0xf4], &mut regs, &mut vcpu, &mut host),
            Outcome::Block
        );
        assert_eq!(
            run(&[0x0f, 0x01, 0xf8], &mut regs, &mut vcpu, &mut host),
            Outcome::Fault,
            "swapgs"
        );
        assert_eq!(
            run(&[], &mut regs, &mut vcpu, &mut host),
            Outcome::Fault,
            "nothing fetched"
        );
    }
}
