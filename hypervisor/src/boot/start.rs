//! Boot: from the multiboot2 hand-off to a running machine.
//!
//! The order matters: console first (so anything later can be reported), then descriptor
//! tables (so faults are caught), memory (allocator, final page tables, heap), firmware tables,
//! time and the APIC. Then, until PV domains exist, report what dom0 would be and power off.

use super::cmdline::{Options, PanicTest};
use super::{acpi, madt};
use crate::arch::x86_64::handlers::{self, Handlers};
use crate::arch::x86_64::handoff;
use crate::arch::x86_64::{
    apic, cpu, direct_map, gdt, heap, keyboard, paging, pit, power, serial, smp, time, trap, vga,
};
use crate::console::log;
use crate::kernel::dom0::{self, Dom0Modules};
use crate::kernel::{self, FRAMES};
use crate::mm::frames::{FrameAllocator, find_free_region};
use crate::mm::machine_map::{MACHINE_MAP, MachineMap};
use crate::mm::{PAGE_SIZE, PhysRange};
use crate::x86::descriptors::{FLAT_RING3_CS64, FLAT_RING3_DS};
use crate::{error, info, warn};
use multiboot2::{BootInformation, MemoryAreaType};

const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;
const MAX_REGIONS: usize = 128;
const MAX_RESERVED: usize = 64;
const HEAP_SIZE: u64 = 4 << 20;

/// A fixed-capacity list of ranges, because the heap does not exist yet when we need one.
struct Ranges<const N: usize> {
    items: [PhysRange; N],
    len: usize,
}

impl<const N: usize> Ranges<N> {
    const fn new() -> Self {
        Self {
            items: [PhysRange { start: 0, end: 0 }; N],
            len: 0,
        }
    }

    fn push(&mut self, r: PhysRange) {
        if self.len < N {
            self.items[self.len] = r;
            self.len += 1;
        } else {
            warn!(
                "boot: more than {N} memory ranges; ignoring {:#x}-{:#x}",
                r.start, r.end
            );
        }
    }

    fn as_slice(&self) -> &[PhysRange] {
        &self.items[..self.len]
    }
}

/// The start of the day, called by the boot code (`arch::x86_64::boot`) in the high half.
pub extern "C" fn kernel_main(magic: u32, mbi_phys: u32) -> ! {
    // What the hardware delivers goes to the machine's handlers (before any interrupt is on).
    handlers::register(Handlers {
        guest_syscall: kernel::exit::guest_syscall,
        guest_trap: kernel::exit::guest_trap,
        timer: kernel::resched::timer_tick,
        console_input: kernel::console::input_interrupt,
        bad_return_frame: kernel::exit::bad_return_frame,
    });
    serial::init();
    log::set_sink(serial::print);
    if magic != MULTIBOOT2_MAGIC {
        error!("boot: bad multiboot2 magic {magic:#x}");
        power::crash();
    }
    let boot = match handoff::boot_information(mbi_phys) {
        Ok(b) => b,
        Err(e) => {
            error!("boot: unreadable multiboot2 information: {e:?}");
            power::crash();
        }
    };
    let cmdline = boot
        .command_line_tag()
        .and_then(|t| t.cmdline().ok())
        .unwrap_or("");
    let opts = Options::parse(cmdline, |w| warn!("{w}"));
    log::set_level(opts.loglvl);
    power::set_noreboot(opts.noreboot);
    crate::kernel::exit_clock::PRINT_EXIT_TIMES
        .store(opts.exit_times, core::sync::atomic::Ordering::Relaxed);
    if !opts.serial_console {
        serial::disable();
    }
    if opts.vga_console {
        vga::init();
    }

    info!(
        "Xen-compatible PV hypervisor {} (Xen 4.17 PV ABI, x86-64)",
        crate::VERSION
    );
    info!("Command line: {cmdline}");

    gdt::init();
    trap::init();
    let features = cpu::Features::detect();

    init_memory(&boot, &features);
    crate::pv::emulate::warm_up();
    init_acpi(&boot);
    init_time(&features);
    start_cpus(opts.maxcpus);
    if opts.serial_console {
        pit::unmask_irq(pit::SERIAL_IRQ);
        apic::route_legacy_pic();
        serial::enable_rx_interrupt();
        info!(
            "Serial input: COM1 on IRQ {} (type 'CTRL-a' three times to switch input)",
            pit::SERIAL_IRQ
        );
    }
    if opts.vga_console && keyboard::init() {
        pit::unmask_irq(keyboard::IRQ);
        apic::route_legacy_pic();
        info!("Keyboard input: i8042 on IRQ {}", keyboard::IRQ);
    }
    let cpuid_faulting = cpu::setup_for_guests();
    info!(
        "CPU: SSE/XSAVE on, Xen PAT, CPUID faulting {}",
        if cpuid_faulting { "on" } else { "unavailable" }
    );
    check_flat_selectors();

    match opts.panic_test {
        Some(PanicTest::Fault) => {
            info!("panic-test: reading an unmapped hypervisor address");
            let v = cpu::read_unmapped_for_test();
            info!("panic-test: read {v:#x} (should have faulted)");
        }
        Some(PanicTest::Panic) => panic!("panic-test requested on the command line"),
        Some(PanicTest::StackOverflow) => {
            info!("panic-test: recursing until the stack overflows");
            info!("panic-test: depth {} (should have faulted)", recurse(0));
        }
        None => {}
    }

    start_dom0(&boot, &opts)
}

/// Recurses without bound, keeping a live buffer in every frame so that nothing is optimised
/// away: the boot stack runs into its guard page.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let buf = core::hint::black_box([depth; 64]);
    recurse(depth + 1) + buf[depth as usize % 64]
}

fn init_memory(boot: &BootInformation<'_>, features: &cpu::Features) {
    let Some(mmap) = boot.memory_map_tag() else {
        error!("boot: the boot loader gave no memory map");
        power::crash();
    };
    let mut usable = Ranges::<MAX_REGIONS>::new();
    // Firmware areas and holes, which dom0 may map as I/O memory.
    let mut io = Ranges::<MAX_REGIONS>::new();
    io.push(PhysRange {
        start: 0,
        end: 1 << 20,
    });
    let mut phys_end = 0;
    let mut machine_map = MachineMap::new();
    info!("Physical memory map:");
    for area in mmap.memory_areas() {
        let range = PhysRange {
            start: area.start_address(),
            end: area.end_address(),
        };
        let typ = area.typ();
        if !machine_map.push(range.start, range.len(), typ.val()) {
            warn!(
                "boot: memory map entry {:#x} left out of dom0's machine map",
                range.start
            );
        }
        let name = match typ {
            MemoryAreaType::Available => "usable",
            MemoryAreaType::AcpiAvailable => "ACPI data",
            MemoryAreaType::ReservedHibernate => "ACPI NVS",
            MemoryAreaType::Defective => "defective",
            _ => "reserved",
        };
        info!(" {:016x} - {:016x} {name}", range.start, range.end);
        // Direct-map RAM and firmware tables; reserved holes (MMIO) above them are left out.
        if matches!(
            typ,
            MemoryAreaType::Available
                | MemoryAreaType::AcpiAvailable
                | MemoryAreaType::ReservedHibernate
        ) {
            phys_end = phys_end.max(range.end);
        }
        if typ == MemoryAreaType::Available {
            usable.push(range);
        } else if range.start >= 1 << 20 {
            io.push(range);
        }
    }
    // Holes below the end of RAM (the PCI hole under 4 GiB on a machine with more RAM) hold
    // device BARs as much as reserved areas do.
    for (start, end) in machine_map.holes(1 << 20, phys_end) {
        io.push(PhysRange { start, end });
    }
    MACHINE_MAP.call_once(|| machine_map);

    let mut reserved = Ranges::<MAX_RESERVED>::new();
    // The first MiB holds firmware data (IVT, BDA, EBDA) and will host AP trampolines.
    reserved.push(PhysRange {
        start: 0,
        end: 1 << 20,
    });
    let image = handoff::image_range();
    reserved.push(image);
    let mbi_start = boot.start_address() as u64 - paging::phys_to_virt(0);
    reserved.push(PhysRange::new(
        mbi_start,
        (boot.end_address() - boot.start_address()) as u64,
    ));
    for (i, m) in boot.module_tags().enumerate() {
        let r = PhysRange {
            start: u64::from(m.start_address()),
            end: u64::from(m.end_address()),
        };
        info!(
            "Module {i}: {:#x}-{:#x} ({} bytes) '{}'",
            r.start,
            r.end,
            r.len(),
            m.cmdline().unwrap_or("?")
        );
        reserved.push(r);
    }

    let words =
        FrameAllocator::words_for(usable.as_slice().iter().map(|r| r.end).max().unwrap_or(0));
    let bitmap_bytes = (words * 8) as u64;
    let Some(bitmap_at) = find_free_region(
        usable.as_slice().iter().copied(),
        reserved.as_slice(),
        2 * bitmap_bytes,
        PAGE_SIZE,
    )
    .filter(|a| a + 2 * bitmap_bytes <= 4 << 30) else {
        error!(
            "boot: no room for the frame bitmap ({} bytes)",
            2 * bitmap_bytes
        );
        power::crash();
    };
    reserved.push(PhysRange::new(bitmap_at, 2 * bitmap_bytes));
    let (free_bits, managed_bits) = handoff::frame_bitmaps(bitmap_at, words);
    let mut frames = FrameAllocator::new(
        free_bits,
        managed_bits,
        usable.as_slice().iter().copied(),
        reserved.as_slice(),
    );
    let usable_bytes: u64 = usable.as_slice().iter().map(PhysRange::len).sum();
    info!(
        "RAM: {} MiB usable, {} frames free for allocation",
        usable_bytes >> 20,
        frames.free_frames()
    );
    let free_at_start = frames.free_frames();

    let page_tables_from = frames.free_frames();
    match paging::init(&mut frames, phys_end, features) {
        Ok(mapped) => {
            direct_map::set_limit(mapped / PAGE_SIZE);
            info!(
                "Direct map: {} MiB at {:#x}",
                mapped >> 20,
                paging::phys_to_virt(0)
            )
        }
        Err(e) => {
            error!("boot: cannot build the hypervisor page tables: {e:?}");
            power::crash();
        }
    }

    let page_tables = page_tables_from - frames.free_frames();
    match heap::init(&mut frames, HEAP_SIZE) {
        Ok(start) => info!("Heap: {} KiB at {}", HEAP_SIZE >> 10, start),
        Err(e) => {
            error!("boot: no memory for the heap: {e}");
            power::crash();
        }
    }
    let max_frame = frames.max_frame();
    let tables_from = frames.free_frames();
    if let Err(e) = crate::kernel::mmu::init(&mut frames, max_frame, io.as_slice()) {
        error!("boot: {e}");
        power::crash();
    }
    info!(
        "PV MMU: frame table and M2P for {} frames",
        frames.max_frame() + 1
    );
    // The hypervisor's own frames, for docs/PERFORMANCE.md (scripts/bench.sh reads it).
    let image_frames = image.len().div_ceil(PAGE_SIZE);
    let bitmap_frames = (2 * bitmap_bytes).div_ceil(PAGE_SIZE);
    info!(
        "Hypervisor frames: image {image_frames}, frame bitmaps {bitmap_frames}, page tables \
         {page_tables}, heap {}, frame table and M2P {}; total {}",
        HEAP_SIZE / PAGE_SIZE,
        tables_from - frames.free_frames(),
        image_frames + bitmap_frames + free_at_start - frames.free_frames()
    );
    *FRAMES.lock() = Some(frames);
}

fn init_acpi(boot: &BootInformation<'_>) {
    let root = if let Some(t) = boot.rsdp_v2_tag().filter(|t| t.xsdt_address() != 0) {
        Ok(acpi::RootTable::Xsdt(t.xsdt_address() as u64))
    } else if let Some(t) = boot.rsdp_v1_tag() {
        Ok(acpi::RootTable::Rsdt(t.rsdt_address() as u64))
    } else {
        scan_bios_for_rsdp()
    };
    match root.and_then(|root| madt::read(&paging::DirectMap, root)) {
        Ok(m) => {
            let ids = m.cpus.iter().filter(|c| c.enabled).map(|c| c.apic_id);
            info!(
                "ACPI: {} CPUs (APIC ids {:?}), {} I/O APICs{}",
                m.cpus.iter().filter(|c| c.enabled).count(),
                ids.collect::<alloc::vec::Vec<_>>(),
                m.ioapics.len(),
                m.ioapics
                    .first()
                    .map_or(alloc::string::String::new(), |io| alloc::format!(
                        " (first at {:#x}, GSI {}+)",
                        io.address,
                        io.gsi_base
                    ))
            );
            let masked = crate::arch::x86_64::ioapic::mask_all(&m);
            info!("I/O APIC: {masked} pins masked");
            madt::MACHINE_MADT.call_once(|| m);
        }
        Err(e) => warn!("ACPI: no usable MADT ({e:?}); one CPU, no I/O APIC"),
    }
    match root.and_then(|root| acpi::power_control(&paging::DirectMap, root)) {
        Ok(pc) => {
            info!(
                "ACPI: PM1a_CNT {:#x}, S5 sleep type {}, reset register {}",
                pc.pm1a_cnt,
                pc.s5_sleep_type.0,
                if pc.reset.is_some() {
                    "present"
                } else {
                    "absent"
                }
            );
            power::set_acpi(pc);
        }
        Err(e) => {
            warn!("ACPI: power control unavailable ({e:?}); power off falls back to debug-exit")
        }
    }
}

fn scan_bios_for_rsdp() -> Result<acpi::RootTable, acpi::AcpiError> {
    const BIOS_AREA: u64 = 0xe0000;
    const BIOS_AREA_LEN: usize = 0x20000;
    // The BIOS read-only area, below 1 MiB.
    let area = direct_map::boot_bytes(BIOS_AREA, BIOS_AREA_LEN);
    let at = acpi::scan_for_rsdp(area).ok_or(acpi::AcpiError::NoRsdp)?;
    acpi::parse_rsdp(&area[at..(at + 36).min(area.len())])
}

/// Starts the other CPUs the MADT lists (up to `maxcpus`); they park (arch/x86_64/smp.rs).
fn start_cpus(maxcpus: Option<u32>) {
    let boot_cpu = apic::current_id();
    let others: alloc::vec::Vec<u32> =
        madt::MACHINE_MADT
            .get()
            .map_or_else(alloc::vec::Vec::new, |m| {
                m.cpus
                    .iter()
                    .filter(|c| c.enabled && c.apic_id != boot_cpu)
                    .map(|c| c.apic_id)
                    .collect()
            });
    let max = maxcpus.map_or(usize::MAX, |n| n as usize);
    let online = smp::start_secondary_cpus(&others, max);
    info!(
        "SMP: {online} of {} CPUs online (boot CPU APIC id {boot_cpu}); guests run on the boot CPU",
        others.len() + 1
    );
}

fn init_time(features: &cpu::Features) {
    pit::disable_legacy_pic();
    let mut samples = [0u64; 3];
    for s in &mut samples {
        *s = pit::measure_tsc_hz(10);
    }
    samples.sort_unstable();
    let tsc_hz = samples[1];
    time::init(tsc_hz);
    info!(
        "TSC: {}.{:03} MHz (calibrated against the PIT{})",
        tsc_hz / 1_000_000,
        (tsc_hz / 1000) % 1000,
        if features.invariant_tsc {
            ", invariant"
        } else {
            ""
        }
    );
    let wc = time::boot_wallclock();
    info!("Wallclock: {} s since 1970 at boot (CMOS RTC)", wc.sec);
    let (kind, id, ticks_per_ms) = apic::init(features);
    info!("Local APIC: {kind}, id {id}, timer {ticks_per_ms} ticks/ms");

    // Prove the timer interrupt path: arm a one-shot and sleep until it fires.
    const ONESHOT_NS: u64 = 5_000_000;
    let before = apic::timer_interrupts();
    let start = time::now();
    apic::arm_oneshot(ONESHOT_NS);
    while apic::timer_interrupts() == before && time::now() - start < 1_000_000_000 {
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
    }
    let waited = time::now() - start;
    if apic::timer_interrupts() == before {
        error!(
            "Timer: no interrupt within 1 s of arming a {} ms one-shot",
            ONESHOT_NS / 1_000_000
        );
    } else {
        info!(
            "Timer: {} ms one-shot fired after {} us",
            ONESHOT_NS / 1_000_000,
            waited / 1000
        );
    }
}

/// Checks, with `lar`, that Xen's flat ring-3 selectors resolve to what PV guests expect.
fn check_flat_selectors() {
    const PRESENT: u32 = 1 << 15;
    const DPL3: u32 = 3 << 13;
    const CODE: u32 = 1 << 11;
    const LONG: u32 = 1 << 21;
    let cs = gdt::access_rights(FLAT_RING3_CS64).unwrap_or(0);
    let ss = gdt::access_rights(FLAT_RING3_DS).unwrap_or(0);
    let cs_ok = cs & (PRESENT | DPL3 | CODE | LONG) == PRESENT | DPL3 | CODE | LONG;
    let ss_ok = ss & (PRESENT | DPL3 | CODE) == PRESENT | DPL3;
    if cs_ok && ss_ok {
        info!("GDT: {FLAT_RING3_CS64:#x} is ring-3 64-bit code, {FLAT_RING3_DS:#x} is ring-3 data");
    } else {
        error!("GDT: flat selectors wrong (cs rights {cs:#x}, ss rights {ss:#x})");
    }
}

/// Builds dom0 from module 0 (module 1 is its ramdisk) and runs it; without a kernel module
/// there is nothing to run and the machine powers off.
fn start_dom0(boot: &BootInformation<'_>, opts: &Options) -> ! {
    let module = |i: usize| {
        boot.module_tags().nth(i).map(|m| {
            let len = m.end_address().saturating_sub(m.start_address()) as usize;
            // The module lies in memory the frame allocator never hands out.
            let bytes = direct_map::boot_bytes(u64::from(m.start_address()), len);
            (bytes, m.cmdline().unwrap_or(""))
        })
    };
    let Some((kernel, cmdline)) = module(0) else {
        warn!("dom0: no kernel module given; nothing to start");
        power::power_off()
    };
    let modules = Dom0Modules {
        kernel,
        cmdline,
        ramdisk: module(1).map(|(b, _)| b),
    };
    let mut guard = FRAMES.lock();
    let Some(frames) = guard.as_mut() else {
        power::crash()
    };
    let pages = opts.dom0_mem.pages(frames.free_frames());
    let max_mfn = frames.max_frame();
    drop(guard);
    let built = dom0::build(&modules, pages);
    match built {
        Ok((domain, regs)) => dom0::start(domain, regs, max_mfn),
        Err(e) => {
            error!("dom0: {e}");
            power::dom0_crashed()
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    x86_64::instructions::interrupts::disable();
    serial::print_emergency(format_args!("\n(HV) PANIC: {}", info.message()));
    if let Some(loc) = info.location() {
        serial::print_emergency(format_args!(" at {}:{}", loc.file(), loc.line()));
    }
    serial::print_emergency(format_args!("\n"));
    trap::print_backtrace(panic as *const () as u64, cpu::frame_pointer());
    power::crash()
}
