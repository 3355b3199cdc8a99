//! Writable page tables (`VMASST_TYPE_writable_pagetables`), the instruction part: a guest
//! kernel wrote through a read-only mapping of one of its own L1 tables, and the write is
//! carried out on its behalf, as Xen's `ptwr` emulation does. This module decodes the write
//! and computes the entry it would leave and the registers it would change; the caller has
//! the new entry validated by the PV MMU and commits the registers only if it was accepted.
//!
//! The writes generic Linux code makes to page tables: `mov` (set), `xchg` (get and clear),
//! `cmpxchg` (compare and set), `lock and/or/xor` (clear or set flag bits, often byte-sized)
//! and `lock bts/btr/btc` with an immediate bit. The write must lie within one 8-byte entry.

use crate::x86::regs::Regs;
use iced_x86::{Decoder, DecoderOptions, Instruction, MemorySize, Mnemonic, OpKind, Register};

/// Why a write is not emulated (the page fault then goes to the guest as it was).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unhandled {
    /// The bytes are not one of the instructions above writing memory.
    Instruction,
    /// The write is not where the fault was, or crosses an entry.
    Address,
    /// An operand this emulator does not take (a high byte register, a bit beyond the entry).
    Operand,
}

/// A write to emulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Emulated {
    /// The entry after the write; `None` when the instruction does not write (a `cmpxchg`
    /// whose comparison failed).
    pub new_entry: Option<u64>,
    /// The registers after the instruction (`rip` past it, flags and outputs).
    pub regs: Regs,
}

/// The segment bases an operand may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bases {
    /// FS base.
    pub fs: u64,
    /// GS base (the live one).
    pub gs: u64,
}

const CF: u64 = 1 << 0;
const PF: u64 = 1 << 2;
const AF: u64 = 1 << 4;
const ZF: u64 = 1 << 6;
const SF: u64 = 1 << 7;
const OF: u64 = 1 << 11;
const ARITH_FLAGS: u64 = CF | PF | AF | ZF | SF | OF;

/// Emulates the instruction in `bytes` (at `regs.rip`), which faulted writing `fault_va`
/// where the entry `old_entry` is.
pub fn emulate(
    bytes: &[u8],
    regs: &Regs,
    bases: Bases,
    fault_va: u64,
    old_entry: u64,
) -> Result<Emulated, Unhandled> {
    let mut decoder = Decoder::with_ip(64, bytes, regs.rip, DecoderOptions::NONE);
    let insn = decoder.decode();
    if insn.is_invalid() || insn.op0_kind() != OpKind::Memory {
        return Err(Unhandled::Instruction);
    }
    let size = match insn.memory_size() {
        MemorySize::UInt8 | MemorySize::Int8 => 1,
        MemorySize::UInt16 | MemorySize::Int16 => 2,
        MemorySize::UInt32 | MemorySize::Int32 => 4,
        MemorySize::UInt64 | MemorySize::Int64 => 8,
        _ => return Err(Unhandled::Instruction),
    };
    let va = insn
        .virtual_address(0, 0, |r, _, _| register(regs, bases, r))
        .ok_or(Unhandled::Address)?;
    let offset = (va & 7) as usize;
    if va != fault_va || offset + size > 8 {
        return Err(Unhandled::Address);
    }
    let bits = size as u32 * 8;
    let mask = if size == 8 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let shift = offset as u32 * 8;
    let old = (old_entry >> shift) & mask;
    let mut out = *regs;
    out.rip = insn.next_ip();
    let source = |out: &Regs| source_value(&insn, out, size);
    let new = match insn.mnemonic() {
        Mnemonic::Mov => Some(source(&out)?),
        Mnemonic::Xchg => {
            let value = source(&out)?;
            write_register(&mut out, insn.op1_register(), old)?;
            Some(value)
        }
        Mnemonic::Cmpxchg => {
            let acc = out.rax & mask;
            let value = source(&out)?;
            set_flags(&mut out, sub_flags(acc, old, bits));
            if acc == old {
                Some(value)
            } else {
                write_register(&mut out, accumulator(size), old)?;
                None
            }
        }
        m @ (Mnemonic::And | Mnemonic::Or | Mnemonic::Xor) => {
            let value = source(&out)?;
            let result = match m {
                Mnemonic::And => old & value,
                Mnemonic::Or => old | value,
                _ => old ^ value,
            } & mask;
            set_flags(&mut out, logic_flags(result, bits));
            Some(result)
        }
        m @ (Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc) => {
            if insn.op1_kind() != OpKind::Immediate8 {
                return Err(Unhandled::Operand);
            }
            let bit = u32::from(insn.immediate8()) % bits;
            let was = (old >> bit) & 1;
            out.rflags = (out.rflags & !CF) | was;
            Some(match m {
                Mnemonic::Bts => old | (1 << bit),
                Mnemonic::Btr => old & !(1 << bit),
                _ => old ^ (1 << bit),
            })
        }
        _ => return Err(Unhandled::Instruction),
    };
    let new_entry = new.map(|v| (old_entry & !(mask << shift)) | ((v & mask) << shift));
    Ok(Emulated {
        new_entry,
        regs: out,
    })
}

/// The value of the instruction's source operand (a register or an immediate), `size` bytes.
fn source_value(insn: &Instruction, regs: &Regs, size: usize) -> Result<u64, Unhandled> {
    let mask = if size == 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    };
    let value = match insn.op1_kind() {
        OpKind::Register => read_register(regs, insn.op1_register())?,
        OpKind::Immediate8 | OpKind::Immediate16 | OpKind::Immediate32 => insn.immediate(1),
        OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32to64 => insn.immediate(1),
        _ => return Err(Unhandled::Operand),
    };
    Ok(value & mask)
}

/// The accumulator of the given width.
fn accumulator(size: usize) -> Register {
    match size {
        1 => Register::AL,
        2 => Register::AX,
        4 => Register::EAX,
        _ => Register::RAX,
    }
}

/// A general register as the full 64-bit register it is part of (0 = rax ... 15 = r15) and
/// its width in bytes.
fn reg_info(r: Register) -> Option<(usize, usize)> {
    use Register::*;
    const BY_WIDTH: [(usize, [Register; 16]); 4] = [
        (
            8,
            [
                RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15,
            ],
        ),
        (
            4,
            [
                EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI, R8D, R9D, R10D, R11D, R12D, R13D, R14D,
                R15D,
            ],
        ),
        (
            2,
            [
                AX, CX, DX, BX, SP, BP, SI, DI, R8W, R9W, R10W, R11W, R12W, R13W, R14W, R15W,
            ],
        ),
        (
            1,
            [
                AL, CL, DL, BL, SPL, BPL, SIL, DIL, R8L, R9L, R10L, R11L, R12L, R13L, R14L, R15L,
            ],
        ),
    ];
    BY_WIDTH
        .iter()
        .find_map(|(w, regs)| regs.iter().position(|&x| x == r).map(|i| (i, *w)))
}

fn slot(regs: &mut Regs, index: usize) -> &mut u64 {
    match index {
        0 => &mut regs.rax,
        1 => &mut regs.rcx,
        2 => &mut regs.rdx,
        3 => &mut regs.rbx,
        4 => &mut regs.rsp,
        5 => &mut regs.rbp,
        6 => &mut regs.rsi,
        7 => &mut regs.rdi,
        8 => &mut regs.r8,
        9 => &mut regs.r9,
        10 => &mut regs.r10,
        11 => &mut regs.r11,
        12 => &mut regs.r12,
        13 => &mut regs.r13,
        14 => &mut regs.r14,
        _ => &mut regs.r15,
    }
}

/// High-byte registers (`ah`...) are not taken.
fn is_high_byte(r: Register) -> bool {
    matches!(r, Register::AH | Register::BH | Register::CH | Register::DH)
}

fn read_register(regs: &Regs, r: Register) -> Result<u64, Unhandled> {
    if is_high_byte(r) {
        return Err(Unhandled::Operand);
    }
    let (index, _) = reg_info(r).ok_or(Unhandled::Operand)?;
    let mut copy = *regs;
    Ok(*slot(&mut copy, index))
}

/// Writes `value` to `r` as the CPU does: a 32-bit write zero-extends, 8- and 16-bit writes
/// keep the rest.
fn write_register(regs: &mut Regs, r: Register, value: u64) -> Result<(), Unhandled> {
    if is_high_byte(r) {
        return Err(Unhandled::Operand);
    }
    let (index, size) = reg_info(r).ok_or(Unhandled::Operand)?;
    let full = slot(regs, index);
    *full = match size {
        8 | 4 => value,
        n => {
            let mask = (1u64 << (n * 8)) - 1;
            (*full & !mask) | (value & mask)
        }
    };
    Ok(())
}

/// Register values for the address computation.
fn register(regs: &Regs, bases: Bases, r: Register) -> Option<u64> {
    match r {
        Register::FS => Some(bases.fs),
        Register::GS => Some(bases.gs),
        Register::ES | Register::CS | Register::SS | Register::DS => Some(0),
        Register::RIP => Some(regs.rip),
        r => read_register(regs, r).ok(),
    }
}

fn set_flags(regs: &mut Regs, flags: u64) {
    regs.rflags = (regs.rflags & !ARITH_FLAGS) | flags;
}

fn parity(v: u64) -> u64 {
    if (v as u8).count_ones().is_multiple_of(2) {
        PF
    } else {
        0
    }
}

fn sign_zero(result: u64, bits: u32) -> u64 {
    let mut f = parity(result);
    if result == 0 {
        f |= ZF;
    }
    if (result >> (bits - 1)) & 1 != 0 {
        f |= SF;
    }
    f
}

/// Flags of `and`/`or`/`xor`: CF and OF clear.
fn logic_flags(result: u64, bits: u32) -> u64 {
    sign_zero(result, bits)
}

/// Flags of `a - b` at `bits` width (what `cmp`/`cmpxchg` set).
fn sub_flags(a: u64, b: u64, bits: u32) -> u64 {
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let result = a.wrapping_sub(b) & mask;
    let mut f = sign_zero(result, bits);
    if b > a {
        f |= CF;
    }
    if (a ^ b ^ result) & 0x10 != 0 {
        f |= AF;
    }
    let sign = 1u64 << (bits - 1);
    if (a ^ b) & (a ^ result) & sign != 0 {
        f |= OF;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const VA: u64 = 0xffff_8880_0012_3458;
    const ENTRY: u64 = 0x8000_0000_1234_5067;

    fn regs() -> Regs {
        Regs {
            rip: 0x1000,
            rdi: VA,
            rax: 0x1111,
            rsi: 0xabcd_e063,
            rflags: 0x202,
            ..Regs::default()
        }
    }

    fn run(bytes: &[u8], r: &Regs) -> Result<Emulated, Unhandled> {
        emulate(bytes, r, Bases::default(), VA, ENTRY)
    }

    #[test]
    fn mov_sets_the_entry_and_moves_rip() {
        // mov [rdi], rsi
        let e = run(&[0x48, 0x89, 0x37], &regs()).unwrap();
        assert_eq!(e.new_entry, Some(0xabcd_e063));
        assert_eq!(e.regs.rip, 0x1003);
        // mov qword [rdi], 0 (imm32 sign-extended)
        let e = run(&[0x48, 0xc7, 0x07, 0, 0, 0, 0], &regs()).unwrap();
        assert_eq!(e.new_entry, Some(0));
    }

    #[test]
    fn xchg_returns_the_old_entry() {
        // xchg [rdi], rax
        let mut r = regs();
        r.rax = 0;
        let e = run(&[0x48, 0x87, 0x07], &r).unwrap();
        assert_eq!(e.new_entry, Some(0));
        assert_eq!(e.regs.rax, ENTRY);
    }

    #[test]
    fn cmpxchg_writes_only_on_a_match() {
        // lock cmpxchg [rdi], rsi
        let bytes = [0xf0, 0x48, 0x0f, 0xb1, 0x37];
        let mut r = regs();
        r.rax = ENTRY;
        let e = run(&bytes, &r).unwrap();
        assert_eq!(e.new_entry, Some(0xabcd_e063));
        assert_ne!(e.regs.rflags & ZF, 0);
        r.rax = 5;
        let e = run(&bytes, &r).unwrap();
        assert_eq!(e.new_entry, None);
        assert_eq!(e.regs.rflags & ZF, 0);
        assert_eq!(e.regs.rax, ENTRY, "the accumulator gets the current entry");
    }

    #[test]
    fn byte_and_clears_a_flag_in_place() {
        // lock and byte [rdi], 0xfd (clear RW, bit 1)
        let e = run(&[0xf0, 0x80, 0x27, 0xfd], &regs()).unwrap();
        assert_eq!(e.new_entry, Some(ENTRY & !2));
        // lock btr qword [rdi], 1
        let e = run(&[0xf0, 0x48, 0x0f, 0xba, 0x37, 0x01], &regs()).unwrap();
        assert_eq!(e.new_entry, Some(ENTRY & !2));
        assert_eq!(e.regs.rflags & CF, 1, "the bit was set");
    }

    #[test]
    fn a_write_elsewhere_or_across_entries_is_not_emulated() {
        // mov [rdi+8], rsi: not the faulting address.
        assert_eq!(
            run(&[0x48, 0x89, 0x77, 0x08], &regs()),
            Err(Unhandled::Address)
        );
        // mov dword [rdi] at 6 bytes into the entry: crosses into the next one.
        let mut r = regs();
        r.rdi = VA + 6;
        let e = emulate(&[0x89, 0x37], &r, Bases::default(), VA + 6, ENTRY);
        assert_eq!(e, Err(Unhandled::Address));
        // A read (mov rax, [rdi]) and garbage are not writes.
        assert_eq!(
            run(&[0x48, 0x8b, 0x07], &regs()),
            Err(Unhandled::Instruction)
        );
        assert_eq!(run(&[0xff, 0xff], &regs()), Err(Unhandled::Instruction));
        // xchg with a high byte register.
        assert_eq!(run(&[0x86, 0x27], &regs()), Err(Unhandled::Operand));
    }

    #[test]
    fn partial_writes_merge_into_the_entry() {
        // mov dword [rdi+4], esi: the entry's high half.
        let e = emulate(
            &[0x89, 0x77, 0x04],
            &regs(),
            Bases::default(),
            VA + 4,
            ENTRY,
        );
        assert_eq!(
            e.map(|e| e.new_entry),
            Ok(Some((ENTRY & 0xffff_ffff) | (0xabcd_e063 << 32)))
        );
    }
}
