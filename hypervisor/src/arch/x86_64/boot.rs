//! The multiboot2 header and the 32-bit entry: check that we were booted by a multiboot2 loader
//! on a 64-bit CPU, map the first 4 GiB identically, at the image window and at the direct map
//! with 2 MiB pages, enter long mode and jump to `kernel_main` in the high half.
//!
//! GRUB enters at `_start32` with paging off, EAX = multiboot2 magic, EBX = info address.

core::arch::global_asm!(
    r#"
.section .multiboot2_header, "a"
.balign 8
mb2_header:
    .long 0xe85250d6
    .long 0
    .long mb2_header_end - mb2_header
    .long 0x100000000 - (0xe85250d6 + (mb2_header_end - mb2_header))
    /* Entry address tag: enter at the physical address of _start32. */
    .balign 8
    .short 3
    .short 0
    .long 12
    .long _start32
    .balign 8
    .short 0
    .short 0
    .long 8
mb2_header_end:

.section .boot.text, "ax"
.code32
.global _start32
_start32:
    cli
    cld
    mov $boot_stack32_top, %esp
    mov %eax, %edi
    mov %ebx, %esi
    cmp $0x36d76289, %edi
    jne 90f

    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb 91f
    mov $0x80000001, %eax
    cpuid
    bt $29, %edx
    jnc 91f
    mov %edx, %ebp

    /* Zero PML4, PDPT and the four PDs (6 pages). */
    push %edi
    mov $boot_pml4, %edi
    mov $(6 * 1024), %ecx
    xor %eax, %eax
    rep stosl
    pop %edi

    /* One PDPT serves identity (slot 0), image window (261) and direct map (262). */
    mov $boot_pdpt, %eax
    or $0x3, %eax
    mov %eax, boot_pml4
    mov %eax, boot_pml4 + 261 * 8
    mov %eax, boot_pml4 + 262 * 8
    mov $boot_pd, %eax
    or $0x3, %eax
    mov %eax, boot_pdpt
    add $0x1000, %eax
    mov %eax, boot_pdpt + 8
    add $0x1000, %eax
    mov %eax, boot_pdpt + 16
    add $0x1000, %eax
    mov %eax, boot_pdpt + 24

    /* 2048 entries of 2 MiB: present, writable, large. */
    xor %ecx, %ecx
1:
    mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, boot_pd(, %ecx, 8)
    inc %ecx
    cmp $2048, %ecx
    jb 1b

    mov %cr4, %eax
    or $(1 << 5), %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3

    mov $0xc0000080, %ecx
    rdmsr
    or $(1 << 8), %eax
    bt $20, %ebp
    jnc 2f
    or $(1 << 11), %eax
2:
    wrmsr

    mov %cr0, %eax
    or $0x80010001, %eax
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $start64_low

90:
    mov $msg_not_multiboot2, %ebx
    jmp 95f
91:
    mov $msg_no_long_mode, %ebx
95:
    mov $0x3f8, %dx
96:
    movb (%ebx), %al
    test %al, %al
    jz 97f
    outb %al, %dx
    inc %ebx
    jmp 96b
97:
    cli
    hlt
    jmp 97b

.code64
start64_low:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    mov %edi, %edi
    mov %esi, %esi
    movabs $start64_high, %rax
    jmp *%rax

.section .boot.data, "aw"
.balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_ptr:
    .short boot_gdt_ptr - boot_gdt - 1
    .long boot_gdt
msg_not_multiboot2:
    .asciz "hypervisor: not started by a multiboot2 loader\r\n"
msg_no_long_mode:
    .asciz "hypervisor: this CPU has no 64-bit long mode\r\n"

.section .boot.bss, "aw", @nobits
.balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4 * 4096
    .skip 1024
boot_stack32_top:

.section .text.start64, "ax"
.code64
start64_high:
    movabs $BOOT_STACK_TOP, %rsp
    xor %ebp, %ebp
    call {kernel_main}
    ud2

.section .bss.boot_stack, "aw", @nobits
.balign 4096
.global BOOT_STACK_GUARD
BOOT_STACK_GUARD:
    .skip 4096
.global BOOT_STACK_BOTTOM
BOOT_STACK_BOTTOM:
    .skip 65536
.global BOOT_STACK_TOP
BOOT_STACK_TOP:
"#,
    kernel_main = sym crate::boot::start::kernel_main,
    options(att_syntax)
);
