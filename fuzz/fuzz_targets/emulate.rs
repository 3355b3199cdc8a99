//! The privileged-instruction emulator (`hypervisor::pv::emulate::emulate`): random instruction
//! bytes, registers and vCPU state over a fake machine and a small guest memory window. Checks
//! what the emulator may never do whatever the guest says: touch a port the domain was not
//! granted, reach PCI configuration space as a domU or without the enable bit or across a
//! dword, do port I/O or `cli`/`sti` without enough virtual IOPL, change state outside guest
//! kernel mode except through the allowed MSRs, load XCR0 without x87 or with bits the host
//! lacks, set a non-canonical segment base, or move `rip` on a refused instruction.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use fuzz::Window;
use hypervisor::pv::emulate::{Outcome, PrivHost, emulate, fetch, iopl_ok};
use hypervisor::pv::guest_mem::is_canonical;
use hypervisor::pv::io_ports::GuestPorts;
use hypervisor::pv::vcpu::PvVcpu;
use hypervisor::x86::regs::Regs;
use libfuzzer_sys::fuzz_target;

/// The only port the fake domain was granted.
const GRANTED: u16 = 0x80;
const XCR0_SUPPORTED: u64 = 7;

#[derive(Default)]
struct Host {
    /// Whether the fake domain is the hardware domain (reaches PCI configuration space).
    hardware: bool,
    cf8: u32,
    port_ops: u32,
    xcr0: Option<u64>,
    fs_base: Option<u64>,
    synced: u32,
}

impl GuestPorts for Host {
    fn port_permitted(&self, port: u16, size: u8) -> bool {
        port == GRANTED && size == 1
    }
    fn port_in(&mut self, port: u16, size: u8) -> u32 {
        assert!(
            self.port_permitted(port, size),
            "in from port {port:#x}/{size}"
        );
        self.port_ops += 1;
        0x5a
    }
    fn port_out(&mut self, port: u16, size: u8, _: u32) {
        assert!(
            self.port_permitted(port, size),
            "out to port {port:#x}/{size}"
        );
        self.port_ops += 1;
    }
    fn pci_cf8(&self) -> u32 {
        self.cf8
    }
    fn set_pci_cf8(&mut self, value: u32) {
        self.cf8 = value;
    }
    fn pci_config_permitted(&self) -> bool {
        self.hardware
    }
    fn pci_config_read(&mut self, address: u32, size: u8) -> u32 {
        self.config_access(address, size);
        0x1234_5678
    }
    fn pci_config_write(&mut self, address: u32, size: u8, _: u32) {
        self.config_access(address, size);
    }
}

impl Host {
    /// A configuration access: only for the hardware domain, enabled, inside one dword,
    /// without reserved address bits.
    fn config_access(&mut self, address: u32, size: u8) {
        assert!(self.hardware, "configuration access by a domU");
        assert!(address & (1 << 31) != 0 && address & 0x7f00_0000 == 0, "address {address:#x}");
        assert!((address & 3) + u32::from(size) <= 4, "{address:#x}/{size} crosses the dword");
        self.port_ops += 1;
    }
}

impl PrivHost for Host {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        [leaf, subleaf, !leaf, !subleaf]
    }
    fn host_cr0(&self) -> u64 {
        0x8005_0033
    }
    fn host_cr4(&self) -> u64 {
        0x0035_06f0
    }
    fn host_efer(&self) -> u64 {
        0xd01
    }
    fn xcr0_supported(&self) -> u64 {
        XCR0_SUPPORTED
    }
    fn set_xcr0(&mut self, value: u64) {
        assert!(
            value & 1 != 0 && value & !XCR0_SUPPORTED == 0,
            "xcr0 {value:#x}"
        );
        self.xcr0 = Some(value);
    }
    fn guest_cr2(&mut self) -> u64 {
        0xbad0
    }
    fn sync_mode(&mut self, vcpu: &PvVcpu) {
        assert!(is_canonical(vcpu.active_gs_base()));
        self.synced += 1;
    }
    fn set_fs_base(&mut self, base: u64) {
        assert!(is_canonical(base), "fs base {base:#x}");
        self.fs_base = Some(base);
    }
    fn set_fpu_trap(&mut self, _: bool) {}
}

#[derive(Arbitrary, Debug)]
struct Input {
    gprs: [u64; 16],
    rip_page: u8,
    rflags: u64,
    kernel_mode: bool,
    iopl: u8,
    ud: bool,
    fs_base: u64,
    hardware: bool,
    cf8: u32,
    bytes: [u8; 15],
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let g = input.gprs;
    // Registers point into (or near) a 256-byte window at 0x1000, so string I/O moves real
    // bytes, and loops stay short.
    let near = |v: u64| 0x1000 + (v & 0x1ff);
    let mut regs = Regs {
        rax: g[0],
        rbx: g[1],
        rcx: g[2] & 0x3ff,
        rdx: g[3],
        rsi: near(g[4]),
        rdi: near(g[5]),
        rbp: g[6],
        r8: g[7],
        r9: g[8],
        r10: g[9],
        r11: g[10],
        r12: g[11],
        r13: g[12],
        r14: g[13],
        r15: g[14],
        rip: 0x4000 + u64::from(input.rip_page) * 0x10,
        cs: 0xe033,
        ss: 0xe02b,
        rflags: input.rflags,
        ..Regs::default()
    };
    let mut vcpu = PvVcpu {
        kernel_mode: input.kernel_mode,
        iopl: input.iopl % 4,
        fs_base: input.fs_base,
        ..PvVcpu::default()
    };
    let mut code = Window {
        base: 0x4000,
        bytes: vec![0; 0x1000],
    };
    let at = usize::from(input.rip_page) * 0x10;
    let n = input.bytes.len().min(0x1000 - at);
    code.bytes[at..at + n].copy_from_slice(&input.bytes[..n]);
    let mut buf = [0u8; 15];
    let len = fetch(&mut code, regs.rip, &mut buf);
    let mut mem = Window {
        base: 0x1000,
        bytes: vec![0xa5; 0x100],
    };
    let mut host = Host {
        hardware: input.hardware,
        cf8: input.cf8,
        ..Host::default()
    };
    let before_regs = regs;
    let before = vcpu.clone();
    let outcome = emulate(
        &mut regs,
        &mut vcpu,
        &buf[..len],
        input.ud,
        &mut mem,
        &mut host,
    );
    if outcome == Outcome::Fault {
        assert_eq!(
            regs.rip, before_regs.rip,
            "rip moved on a refused instruction"
        );
    }
    if host.port_ops > 0 {
        assert!(iopl_ok(&before), "port I/O without IOPL");
    }
    if !before.kernel_mode {
        // Guest user mode: only cpuid, rdmsr of readable MSRs, the allowed port I/O and
        // cli/sti under IOPL 3 may succeed; nothing of the vCPU changes but rip.
        assert!(
            host.xcr0.is_none() && host.synced == 0,
            "user mode changed the machine"
        );
        assert_eq!(vcpu.fs_base, before.fs_base);
        assert_eq!(vcpu.gs_base_kernel, before.gs_base_kernel);
        assert_eq!(vcpu.gs_base_user, before.gs_base_user);
        assert_eq!(vcpu.fpu_ts, before.fpu_ts);
        assert_ne!(outcome, Outcome::Block, "hlt from user mode");
    }
    for base in [vcpu.fs_base, vcpu.gs_base_kernel, vcpu.gs_base_user] {
        assert!(
            is_canonical(base) || [before.fs_base, 0].contains(&base),
            "non-canonical base {base:#x}"
        );
    }
    assert_eq!(vcpu.iopl, before.iopl, "emulation changed IOPL");
    assert_eq!(
        vcpu.kernel_mode, before.kernel_mode,
        "emulation changed the mode"
    );
});
