//! A fixture for host tests of the hypercall handlers: the shared fake machine
//! ([`crate::testing::host`]), a sparse guest memory and the real register path.

use super::{Action, Ctx, DomainInfo, HcResult};
use crate::event::shared::SharedInfo;
use crate::pv::guest_mem::GuestMemory;
use crate::pv::guest_mem::fake::FakeGuest;
use crate::pv::vcpu::PvVcpu;
use crate::x86::regs::Regs;
use guest_abi::Hypercall;
use std::vec;
use std::vec::Vec;

pub use crate::testing::host::{FakeDoms, FakeHost, domain_info, guest_regs};

/// Guest memory with helpers that map what they touch.
pub struct Mem(pub FakeGuest);

impl Mem {
    pub fn write_bytes(&mut self, va: u64, bytes: &[u8]) {
        self.0.map(va, bytes.len() as u64);
        self.0.write(va, bytes).unwrap();
    }
    pub fn read_bytes(&mut self, va: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.0.read(va, &mut v).unwrap();
        v
    }
}

impl GuestMemory for Mem {
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), crate::pv::guest_mem::GuestFault> {
        self.0.read(va, buf)
    }
    fn write(&mut self, va: u64, buf: &[u8]) -> Result<(), crate::pv::guest_mem::GuestFault> {
        self.0.write(va, buf)
    }
}

/// One vCPU of one domain, with a mapped scratch area at 0x1000..0x9000.
pub struct Fixture {
    pub regs: Regs,
    pub vcpu: PvVcpu,
    pub domain: DomainInfo,
    pub mem: Mem,
    pub host: FakeHost,
    pub action: Action,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    pub fn new() -> Self {
        let shared: &'static SharedInfo =
            std::boxed::Box::leak(std::boxed::Box::new(SharedInfo::new()));
        let mut mem = Mem(FakeGuest::default());
        mem.0.map(0x1000, 0x8000);
        Self {
            regs: Regs {
                rsp: 0x8000,
                ..guest_regs()
            },
            vcpu: PvVcpu::default(),
            domain: domain_info(true),
            mem,
            host: FakeHost::new(shared),
            action: Action::Resume,
        }
    }
}

/// Runs hypercall `nr` with `args` through the real register path and returns its result.
pub fn call(f: &mut Fixture, nr: Hypercall, args: [u64; 5]) -> HcResult {
    f.regs.rax = u64::from(nr.raw());
    [f.regs.rdi, f.regs.rsi, f.regs.rdx, f.regs.r10, f.regs.r8] = args;
    let mut ctx = Ctx {
        regs: &mut f.regs,
        vcpu: &mut f.vcpu,
        vcpu_id: 0,
        domain: &mut f.domain,
        mem: &mut f.mem,
        host: &mut f.host,
        action: Action::Resume,
        regs_loaded: false,
    };
    super::handle(&mut ctx);
    f.action = ctx.action;
    let rax = f.regs.rax as i64;
    if (-4095..0).contains(&rax) {
        let e = i32::try_from(-rax)
            .ok()
            .and_then(guest_abi::XenError::from_raw);
        Err(e.expect("a Xen errno"))
    } else {
        Ok(rax as u64)
    }
}
