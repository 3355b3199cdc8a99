//! Starting the other CPUs the MADT lists (INIT, then two STARTUP IPIs, as Intel's
//! multiprocessor specification describes): each wakes in real mode in a trampoline copied
//! below 1 MiB, climbs to long mode on the boot page tables, switches to the hypervisor's own
//! tables, stacks, GDT/TSS, IDT and local APIC, says it is online, and parks.
//!
//! For now a started CPU runs nothing else: the scheduler and every guest stay on the boot
//! CPU (docs/DESIGN.md, "Several CPUs"). What exists is the bring-up a scheduler across CPUs
//! starts from, and the count of CPUs online.
//!
//! # Safety
//! The trampoline page ([`TRAMPOLINE`]) lies in the first MiB, which the frame allocator never
//! hands out (boot reserves it for this); CPUs are started one at a time, so the handover
//! variables ([`AP_STACK_TOP`], [`AP_CR3`], ...) are written by the boot CPU only while no
//! other CPU reads them, and read by the one starting CPU before it says it is online.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::paging::phys_to_virt;
use super::{apic, gdt, time, trap};

/// Physical address of the trampoline: page 8, so the STARTUP vector is 8.
pub const TRAMPOLINE: u64 = 0x8000;
/// Stack of a started CPU (it only parks for now).
const AP_STACK_SIZE: usize = 16 * 1024;
/// How long a CPU gets to say it is online after its STARTUP IPIs.
const ONLINE_TIMEOUT_NS: u64 = 100_000_000;

/// Top of the stack the CPU being started runs on.
static AP_STACK_TOP: AtomicU64 = AtomicU64::new(0);
/// The boot CPU's CR3, CR4 and CR0, which the starting CPU takes over.
static AP_CR3: AtomicU64 = AtomicU64::new(0);
static AP_CR4: AtomicU64 = AtomicU64::new(0);
static AP_CR0: AtomicU64 = AtomicU64::new(0);
/// CPUs running the hypervisor, the boot CPU included.
static ONLINE: AtomicU32 = AtomicU32::new(1);

/// The number of CPUs online.
pub fn online() -> u32 {
    ONLINE.load(Ordering::Acquire)
}

unsafe extern "C" {
    static AP_TRAMPOLINE_START: u8;
    static AP_TRAMPOLINE_END: u8;
}

core::arch::global_asm!(
    r#"
.section .rodata.ap_trampoline, "a"
.global AP_TRAMPOLINE_START
.global AP_TRAMPOLINE_END
.code16
AP_TRAMPOLINE_START:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    lgdtl (ap_gdt_ptr - AP_TRAMPOLINE_START)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x08, $(0x8000 + ap_pm32 - AP_TRAMPOLINE_START)
.code32
ap_pm32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $(1 << 5), %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0x80000001, %eax
    cpuid
    mov %edx, %ebp
    mov $0xc0000080, %ecx
    rdmsr
    or $(1 << 8), %eax
    bt $20, %ebp
    jnc 1f
    or $(1 << 11), %eax
1:
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax
    mov %eax, %cr0
    ljmp $0x18, $(0x8000 + ap_lm64 - AP_TRAMPOLINE_START)
.code64
ap_lm64:
    movabs $ap_start64_high, %rax
    jmp *%rax
.balign 8
ap_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00af9a000000ffff
ap_gdt_ptr:
    .short ap_gdt_ptr - ap_gdt - 1
    .long 0x8000 + ap_gdt - AP_TRAMPOLINE_START
AP_TRAMPOLINE_END:

.section .text.ap_start64, "ax"
.code64
ap_start64_high:
    movabs ${stack_top}, %rax
    mov (%rax), %rsp
    xor %ebp, %ebp
    call {ap_main}
    ud2
"#,
    stack_top = sym AP_STACK_TOP,
    ap_main = sym ap_main,
    options(att_syntax)
);

/// Starts the CPUs with these local APIC ids (not the boot CPU's), at most `max` CPUs in all
/// with the boot CPU; returns the number online.
pub fn start_secondary_cpus(apic_ids: &[u32], max: usize) -> u32 {
    let (start, end) = (
        &raw const AP_TRAMPOLINE_START as usize,
        &raw const AP_TRAMPOLINE_END as usize,
    );
    let len = end - start;
    // SAFETY: the trampoline's bytes are in the image's read-only data, and its copy goes to
    // the reserved first MiB, direct-mapped (module rules); the two do not overlap.
    unsafe {
        core::ptr::copy_nonoverlapping(
            start as *const u8,
            phys_to_virt(TRAMPOLINE) as *mut u8,
            len,
        );
    }
    AP_CR3.store(
        x86_64::registers::control::Cr3::read_raw()
            .0
            .start_address()
            .as_u64(),
        Ordering::Relaxed,
    );
    AP_CR4.store(
        x86_64::registers::control::Cr4::read_raw(),
        Ordering::Relaxed,
    );
    AP_CR0.store(
        x86_64::registers::control::Cr0::read_raw(),
        Ordering::Relaxed,
    );
    for &id in apic_ids {
        if online() as usize >= max {
            break;
        }
        let stack = Box::leak(Box::new([0u8; AP_STACK_SIZE]));
        AP_STACK_TOP.store(
            stack.as_ptr() as u64 + AP_STACK_SIZE as u64,
            Ordering::Release,
        );
        let before = online();
        apic::send_init(id);
        time::spin_for(10_000_000);
        for _ in 0..2 {
            apic::send_startup(id, (TRAMPOLINE >> 12) as u8);
            time::spin_for(200_000);
        }
        let deadline = time::now().saturating_add(ONLINE_TIMEOUT_NS);
        while online() == before && time::now() < deadline {
            core::hint::spin_loop();
        }
        if online() == before {
            crate::warn!("SMP: CPU with APIC id {id} did not come online");
        }
    }
    online()
}

/// A started CPU's first Rust code, on its own stack and the boot page tables.
extern "C" fn ap_main() -> ! {
    // SAFETY: the boot CPU's control registers: the same paging mode, and tables that map
    // this code and stack (the image and the heap) at the same addresses.
    unsafe {
        x86_64::registers::control::Cr4::write_raw(AP_CR4.load(Ordering::Relaxed));
        core::arch::asm!("mov cr3, {}", in(reg) AP_CR3.load(Ordering::Relaxed), options(nostack));
        x86_64::registers::control::Cr0::write_raw(AP_CR0.load(Ordering::Relaxed));
    }
    gdt::init_secondary();
    trap::load_idt();
    apic::init_secondary();
    ONLINE.fetch_add(1, Ordering::AcqRel);
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
