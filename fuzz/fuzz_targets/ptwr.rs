//! The writable-page-table emulator (`hypervisor::pv::ptwr::emulate`) on arbitrary instruction
//! bytes, registers, fault address and old entry: never panics; an emulated write changes only
//! the bytes of the entry at the faulting address, within that one entry; `rip` moves forward
//! by at most an instruction's length; and nothing but `rip`, `rflags` and general registers
//! changes.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use hypervisor::pv::ptwr::{Bases, emulate};
use hypervisor::x86::regs::Regs;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    bytes: [u8; 15],
    gprs: [u64; 16],
    rflags: u64,
    fault_va: u64,
    old_entry: u64,
    fs: u64,
    gs: u64,
}

fuzz_target!(|data: &[u8]| {
    let Ok(i) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let [
        rax,
        rcx,
        rdx,
        rbx,
        rsp,
        rbp,
        rsi,
        rdi,
        r8,
        r9,
        r10,
        r11,
        r12,
        r13,
        r14,
        r15,
    ] = i.gprs;
    let regs = Regs {
        rax,
        rcx,
        rdx,
        rbx,
        rsp,
        rbp,
        rsi,
        rdi,
        r8,
        r9,
        r10,
        r11,
        r12,
        r13,
        r14,
        r15,
        rip: 0xffff_ffff_8000_1000,
        rflags: i.rflags,
        cs: 0xe033,
        ss: 0xe02b,
        ..Regs::default()
    };
    let bases = Bases { fs: i.fs, gs: i.gs };
    let Ok(done) = emulate(&i.bytes, &regs, bases, i.fault_va, i.old_entry) else {
        return;
    };
    assert!(
        done.regs.rip > regs.rip && done.regs.rip - regs.rip <= 15,
        "rip moved oddly"
    );
    assert_eq!((done.regs.cs, done.regs.ss), (regs.cs, regs.ss));
    if let Some(new) = done.new_entry {
        let offset = (i.fault_va & 7) * 8;
        // Bytes below the written ones are kept.
        let below = if offset == 0 { 0 } else { (1u64 << offset) - 1 };
        assert_eq!(
            new & below,
            i.old_entry & below,
            "bytes below the write changed"
        );
    }
});
