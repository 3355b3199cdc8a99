//! The hypercall page of a 64-bit PV guest: one 32-byte stub per hypercall that saves the
//! registers `syscall` clobbers, loads the number and enters the hypervisor. The `iret` stub is
//! jumped to, not called: it pushes RAX on top of the guest's `iret_context` and never returns.

/// Bytes per stub.
pub const STUB_SIZE: usize = 32;

/// Fills `page` with stubs; unused bytes are `int3`.
pub fn fill(page: &mut [u8; 4096]) {
    page.fill(0xcc);
    for (nr, stub) in page.chunks_exact_mut(STUB_SIZE).enumerate() {
        let nr = nr as u32;
        if nr == guest_abi::Hypercall::Iret.raw() {
            // push %rcx; push %r11; push %rax; mov $nr, %eax; syscall
            stub[..4].copy_from_slice(&[0x51, 0x41, 0x53, 0x50]);
            stub[4] = 0xb8;
            stub[5..9].copy_from_slice(&nr.to_le_bytes());
            stub[9..11].copy_from_slice(&[0x0f, 0x05]);
        } else {
            // push %rcx; push %r11; mov $nr, %eax; syscall; pop %r11; pop %rcx; ret
            stub[..3].copy_from_slice(&[0x51, 0x41, 0x53]);
            stub[3] = 0xb8;
            stub[4..8].copy_from_slice(&nr.to_le_bytes());
            stub[8..14].copy_from_slice(&[0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_follow_xen() {
        let mut page = [0u8; 4096];
        fill(&mut page);
        let console_io = &page[18 * 32..18 * 32 + 14];
        assert_eq!(
            console_io,
            [
                0x51, 0x41, 0x53, 0xb8, 18, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3
            ]
        );
        assert_eq!(page[18 * 32 + 14], 0xcc);
        let iret = &page[23 * 32..23 * 32 + 11];
        assert_eq!(
            iret,
            [0x51, 0x41, 0x53, 0x50, 0xb8, 23, 0, 0, 0, 0x0f, 0x05]
        );
    }
}
