//! The GDT, TSS and their loading.
//!
//! The GDT spans Xen's layout: 14 guest-owned pages (empty until a guest calls `set_gdt`), then
//! the hypervisor's page with ring-0 and flat ring-3 segments, the TSS and the LDT slot.

use super::percpu::{CpuLocal, Stack};
use crate::x86::descriptors::{
    self, FIRST_RESERVED_GDT_ENTRY, GDT_LIMIT, HYPERVISOR_CS, HYPERVISOR_DS, LDT_SELECTOR,
    RESERVED_GDT_ENTRIES, TSS_SELECTOR,
};
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::{lgdt, load_tss};
use x86_64::structures::DescriptorTablePointer;
use x86_64::structures::gdt::SegmentSelector;
use x86_64::structures::tss::TaskStateSegment;

/// IST slot (1-based, as in the IDT) for double faults.
pub const IST_DOUBLE_FAULT: u8 = 1;
/// IST slot for NMIs.
pub const IST_NMI: u8 = 2;
/// IST slot for machine checks.
pub const IST_MACHINE_CHECK: u8 = 3;

const IST_STACK_SIZE: usize = 16 * 1024;
const RING0_STACK_SIZE: usize = 32 * 1024;

#[repr(C, align(4096))]
struct Gdt([u64; FIRST_RESERVED_GDT_ENTRY + RESERVED_GDT_ENTRIES]);

static GDT: CpuLocal<Gdt> =
    CpuLocal::new(Gdt([0; FIRST_RESERVED_GDT_ENTRY + RESERVED_GDT_ENTRIES]));
static TSS: CpuLocal<TaskStateSegment> = CpuLocal::new(TaskStateSegment::new());
static DOUBLE_FAULT_STACK: CpuLocal<Stack<IST_STACK_SIZE>> =
    CpuLocal::new(Stack([0; IST_STACK_SIZE]));
static NMI_STACK: CpuLocal<Stack<IST_STACK_SIZE>> = CpuLocal::new(Stack([0; IST_STACK_SIZE]));
static MACHINE_CHECK_STACK: CpuLocal<Stack<IST_STACK_SIZE>> =
    CpuLocal::new(Stack([0; IST_STACK_SIZE]));
/// The stack entered on a ring 3 → ring 0 transition (guest exits).
static RING0_STACK: CpuLocal<Stack<RING0_STACK_SIZE>> = CpuLocal::new(Stack([0; RING0_STACK_SIZE]));

/// Fills and loads the GDT and TSS, and reloads every segment register.
pub fn init() {
    // SAFETY: bring-up of the boot CPU, interrupts off: nothing else accesses the TSS yet.
    let tss = unsafe { &mut *TSS.get() };
    tss.interrupt_stack_table[usize::from(IST_DOUBLE_FAULT - 1)] =
        VirtAddr::new(DOUBLE_FAULT_STACK.top());
    tss.interrupt_stack_table[usize::from(IST_NMI - 1)] = VirtAddr::new(NMI_STACK.top());
    tss.interrupt_stack_table[usize::from(IST_MACHINE_CHECK - 1)] =
        VirtAddr::new(MACHINE_CHECK_STACK.top());
    tss.privilege_stack_table[0] = VirtAddr::new(RING0_STACK.top());

    // SAFETY: as above, the GDT is not loaded yet, so writing it cannot race the CPU.
    let gdt = unsafe { &mut (*GDT.get()).0 };
    let reserved = &mut gdt[FIRST_RESERVED_GDT_ENTRY..];
    reserved.copy_from_slice(&descriptors::reserved_gdt_page());
    let tss_desc = descriptors::tss(TSS.get() as u64, (size_of::<TaskStateSegment>() - 1) as u32);
    let tss_slot = descriptors::slot(TSS_SELECTOR);
    reserved[tss_slot..tss_slot + 2].copy_from_slice(&tss_desc);

    // SAFETY: the GDT is static and filled above; from here on only its guest part changes.
    load(unsafe { &*GDT.get() });
}

/// Gives a started CPU a GDT and TSS of its own (its IST and ring-0 stacks included), from
/// the heap, and loads them. The guest part of its GDT stays empty: no guest runs there yet.
pub fn init_secondary() {
    use alloc::boxed::Box;
    let stack = |size: usize| {
        Box::leak(alloc::vec![0u8; size].into_boxed_slice())
            .as_ptr_range()
            .end as u64
    };
    let tss = Box::leak(Box::new(TaskStateSegment::new()));
    tss.interrupt_stack_table[usize::from(IST_DOUBLE_FAULT - 1)] =
        VirtAddr::new(stack(IST_STACK_SIZE) & !15);
    tss.interrupt_stack_table[usize::from(IST_NMI - 1)] =
        VirtAddr::new(stack(IST_STACK_SIZE) & !15);
    tss.interrupt_stack_table[usize::from(IST_MACHINE_CHECK - 1)] =
        VirtAddr::new(stack(IST_STACK_SIZE) & !15);
    tss.privilege_stack_table[0] = VirtAddr::new(stack(RING0_STACK_SIZE) & !15);
    // SAFETY: an all-zero GDT is valid (every descriptor not present); filled below.
    let gdt: &mut Gdt = Box::leak(unsafe { Box::<Gdt>::new_zeroed().assume_init() });
    let reserved = &mut gdt.0[FIRST_RESERVED_GDT_ENTRY..];
    reserved.copy_from_slice(&descriptors::reserved_gdt_page());
    let tss_desc = descriptors::tss(
        core::ptr::from_ref(tss) as u64,
        (size_of::<TaskStateSegment>() - 1) as u32,
    );
    let tss_slot = descriptors::slot(TSS_SELECTOR);
    reserved[tss_slot..tss_slot + 2].copy_from_slice(&tss_desc);
    load(gdt);
}

/// Loads `gdt` and reloads every segment register and the task register from it.
fn load(gdt: &'static Gdt) {
    let pointer = DescriptorTablePointer {
        limit: GDT_LIMIT,
        base: VirtAddr::new(core::ptr::from_ref(gdt) as u64),
    };
    // SAFETY: the table lives forever and holds valid descriptors at every selector loaded
    // below; its TSS descriptor is available (not busy).
    unsafe {
        lgdt(&pointer);
        CS::set_reg(SegmentSelector(HYPERVISOR_CS));
        SS::set_reg(SegmentSelector(HYPERVISOR_DS));
        DS::set_reg(SegmentSelector(0));
        ES::set_reg(SegmentSelector(0));
        load_tss(SegmentSelector(TSS_SELECTOR));
    }
}

/// The guest part of the GDT (entries below FIRST_RESERVED_GDT_ENTRY).
fn guest_part() -> &'static mut [u64] {
    // SAFETY: only the guest part is handed out; callers run with interrupts off on this CPU
    // and hardware reads descriptors only when a selector is loaded, after they return.
    let gdt = unsafe { &mut (*GDT.get()).0 };
    &mut gdt[..FIRST_RESERVED_GDT_ENTRY]
}

/// Writes guest descriptors starting at entry `at`.
pub fn load_guest_entries_at(at: usize, entries: &[u64]) {
    let part = guest_part();
    let end = at.saturating_add(entries.len()).min(part.len());
    if at < end {
        part[at..end].copy_from_slice(&entries[..end - at]);
    }
}

/// Clears guest entries `[from, to)`.
pub fn clear_guest_entries(from: usize, to: usize) {
    let part = guest_part();
    let to = to.min(part.len());
    if from < to {
        part[from..to].fill(0);
    }
}

#[repr(C, align(4096))]
struct Ldt([u64; LDT_ENTRIES]);

/// Entries the LDT may have.
pub const LDT_ENTRIES: usize = 8192;

/// The running vCPU's LDT, copied from its descriptor pages (as the guest GDT is).
static LDT: CpuLocal<Ldt> = CpuLocal::new(Ldt([0; LDT_ENTRIES]));

/// Writes LDT descriptors starting at entry `at`.
pub fn load_ldt_entries_at(at: usize, entries: &[u64]) {
    // SAFETY: interrupts are off on this CPU and the LDT is read by the hardware only when a
    // selector is loaded, after the caller returns.
    let ldt = unsafe { &mut (*LDT.get()).0 };
    let end = at.saturating_add(entries.len()).min(LDT_ENTRIES);
    if at < end {
        ldt[at..end].copy_from_slice(&entries[..end - at]);
    }
}

/// Makes the first `entries` LDT entries the CPU's LDT (none if 0).
pub fn activate_ldt(entries: u32) {
    let entries = (entries as usize).min(LDT_ENTRIES);
    let selector = if entries == 0 {
        0
    } else {
        let desc = descriptors::ldt(LDT.get() as u64, (entries * 8 - 1) as u32);
        let slot = FIRST_RESERVED_GDT_ENTRY + descriptors::slot(LDT_SELECTOR);
        // SAFETY: as for the guest part: interrupts off, and the slot is the LDT's own.
        unsafe { (&mut (*GDT.get()).0)[slot..slot + 2].copy_from_slice(&desc) };
        LDT_SELECTOR
    };
    // SAFETY: the selector is 0 or the LDT descriptor just written, which describes the
    // static LDT table.
    unsafe { core::arch::asm!("lldt {0:x}", in(reg) selector, options(nostack, preserves_flags)) };
}

/// Top of the ring-0 stack that guest exits land on (`TSS.rsp0`).
pub fn ring0_stack_top() -> u64 {
    RING0_STACK.top()
}

/// Reads back the access rights of `selector` with `lar`, to check at boot that the flat
/// selectors resolve as guests expect. Returns `None` if the selector is not accessible.
pub fn access_rights(selector: u16) -> Option<u32> {
    let rights: u32;
    let valid: u8;
    // SAFETY: `lar` only reads the descriptor table and sets ZF; it cannot fault in ring 0.
    unsafe {
        core::arch::asm!(
            "lar {r:e}, {s:e}",
            "setz {v}",
            s = in(reg) u32::from(selector),
            r = out(reg) rights,
            v = out(reg_byte) valid,
            options(nostack),
        );
    }
    (valid != 0).then_some(rights)
}
