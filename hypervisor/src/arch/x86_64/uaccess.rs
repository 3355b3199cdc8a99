//! Copying to and from guest virtual memory through the guest's page tables (loaded in CR3
//! while the hypervisor handles that guest). A fault during the copy does not crash the
//! hypervisor: the page-fault and general-protection handlers see that it happened at
//! [`guest_copy_insn`] and resume at a fixup that reports how many bytes were left.

use crate::pv::guest_mem::{GuestFault, GuestMemory, check_guest_range};
use crate::x86::regs::Regs;

core::arch::global_asm!(
    r#"
.section .text.guest_copy, "ax"
/* guest_copy(dst, src, len) -> bytes not copied. Words first, then the tail bytes. */
.global guest_copy
guest_copy:
    mov %rdx, %rcx
    shr $3, %rcx
.global guest_copy_words_insn
guest_copy_words_insn:
    rep movsq
    mov %edx, %ecx
    and $7, %ecx
.global guest_copy_insn
guest_copy_insn:
    rep movsb
    xor %eax, %eax
    ret
/* A fault in the word copy: %rcx words and the tail are left. */
.global guest_copy_words_fixup
guest_copy_words_fixup:
    shl $3, %rcx
    and $7, %edx
    lea (%rcx, %rdx), %rax
    ret
.global guest_copy_fixup
guest_copy_fixup:
    mov %rcx, %rax
    ret
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn guest_copy(dst: *mut u8, src: *const u8, len: usize) -> usize;
    fn guest_copy_insn();
    fn guest_copy_fixup();
    fn guest_copy_words_insn();
    fn guest_copy_words_fixup();
}

/// If a fault at `regs.rip` came from an instruction that is allowed to fault (a guest copy,
/// a probing MSR read), redirects it to that instruction's fixup and returns `true`; the
/// fault is then the fixup's to report.
pub fn fixup_fault(regs: &mut Regs) -> bool {
    let table: [(unsafe extern "C" fn(), unsafe extern "C" fn()); 3] = [
        (guest_copy_words_insn, guest_copy_words_fixup),
        (guest_copy_insn, guest_copy_fixup),
        (super::cpu::rdmsr_safe_insn, super::cpu::rdmsr_safe_fixup),
    ];
    for (insn, fixup) in table {
        if regs.rip == insn as *const () as u64 {
            regs.rip = fixup as *const () as u64;
            return true;
        }
    }
    false
}

/// The address space of the guest whose page tables are loaded.
pub struct CurrentGuest;

impl GuestMemory for CurrentGuest {
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), GuestFault> {
        check_guest_range(va, buf.len())?;
        // SAFETY: the source range is a canonical guest address range outside the hypervisor's
        // slots (checked above), so the copy can only touch guest mappings; a missing mapping
        // faults and is recovered by `fixup_fault`. `buf` is ours and writable.
        let left = unsafe { guest_copy(buf.as_mut_ptr(), va as *const u8, buf.len()) };
        if left == 0 {
            Ok(())
        } else {
            Err(GuestFault {
                va: va + (buf.len() - left) as u64,
            })
        }
    }

    fn write(&mut self, va: u64, buf: &[u8]) -> Result<(), GuestFault> {
        check_guest_range(va, buf.len())?;
        // SAFETY: as for `read`; CR0.WP is set, so read-only guest mappings fault rather than
        // being written.
        let left = unsafe { guest_copy(va as *mut u8, buf.as_ptr(), buf.len()) };
        if left == 0 {
            Ok(())
        } else {
            Err(GuestFault {
                va: va + (buf.len() - left) as u64,
            })
        }
    }
}
