//! The start-of-day layout: a real kernel built by the system toolchain (`cc` and `ld`
//! with a linker script, Xen notes written in assembly the way Linux writes them), the
//! invariants `xen.h` promises, and property tests that no request makes it panic.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use common::elf::{Image, Seg, VIRT_BASE};
use guest_abi::arch::{FLAT_KERNEL_CS, PteFlags};
use guest_abi::boot::{BootLayout, BootRequest, LayoutError, StartInfoParams, plan_boot};
use guest_abi::elfnote::ElfNoteType as T;
use guest_abi::image::KernelImage;
use guest_abi::xen::SifFlags;
use guest_abi::{EvtchnPort, Mfn, PAGE_SIZE, Pfn, VirtAddr};
use proptest::prelude::*;

const KERNEL_ASM: &str = r#"
    .macro begin type
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4, 2f - 1f, \type
    .asciz "Xen"
    .balign 4
1:
    .endm
    .macro end
2:  .balign 4
    .popsection
    .endm

    begin 6; .asciz "toolchain-kernel"; end
    begin 5; .asciz "xen-3.0"; end
    begin 8; .asciz "generic"; end
    begin 3; .quad 0xffffffff80000000; end
    begin 4; .quad 0; end
    begin 1; .quad _start; end
    begin 2; .quad hypercall_page; end
    begin 17; .long 1 << 11; end

    .text
    .globl _start
_start:
    hlt
    jmp _start
    .balign 4096
hypercall_page:
    .fill 4096, 1, 0xcc
    .data
    .quad 42
    .bss
    .fill 3 * 4096 + 100
"#;

const KERNEL_LDS: &str = r#"
ENTRY(_start)
PHDRS { text PT_LOAD FLAGS(5); data PT_LOAD FLAGS(6); note PT_NOTE FLAGS(4); }
SECTIONS {
    . = 0xffffffff80200000;
    .text : AT(0x200000) { *(.text) } :text
    .note : { *(.note.Xen) } :text :note
    . = ALIGN(4096);
    .data : { *(.data) } :data
    .bss : { *(.bss) } :data
    /DISCARD/ : { *(.note.gnu.*) *(.comment) }
}
"#;

/// Builds the toolchain kernel once per test binary run.
fn toolchain_kernel() -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("toolchain-kernel");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kernel.S"), KERNEL_ASM).unwrap();
    std::fs::write(dir.join("kernel.lds"), KERNEL_LDS).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(cc)
        .current_dir(&dir)
        .args([
            "-nostdlib",
            "-static",
            "-no-pie",
            "-Wl,-T,kernel.lds",
            "-Wl,--build-id=none",
        ])
        .args(["-o", "kernel", "kernel.S"])
        .output()
        .expect("cc runs");
    assert!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join("kernel")).unwrap()
}

fn dom0(nr_pages: u64, ramdisk_len: u64) -> BootRequest {
    BootRequest {
        nr_pages,
        ramdisk_len,
        flags: SifFlags::PRIVILEGED | SifFlags::INITDOMAIN,
    }
}

fn domu(nr_pages: u64, ramdisk_len: u64) -> BootRequest {
    BootRequest {
        nr_pages,
        ramdisk_len,
        flags: SifFlags::empty(),
    }
}

/// Everything `xen.h` promises about the layout, checked on `l`.
fn check_invariants(l: &BootLayout, kernel: &KernelImage<'_>, req: &BootRequest) {
    // The elements, in order, page aligned, packed.
    let mut order = vec![l.kernel];
    order.extend(l.ramdisk);
    if l.p2m_mapping.is_none() {
        order.push(l.p2m);
    }
    order.push(l.start_info);
    order.extend(l.xenstore);
    order.extend(l.console);
    order.extend([l.page_tables, l.stack]);
    for pair in order.windows(2) {
        assert_eq!(pair[0].end(), pair[1].start, "elements are packed in order");
    }
    for r in &order {
        assert_eq!(r.start.0 % PAGE_SIZE, 0);
    }
    assert!(l.kernel.start.0 <= kernel.virt_kstart && kernel.virt_kend <= l.kernel.end().0);
    assert_eq!(l.virt_base.0, kernel.virt_base);
    assert!(l.p2m.pages * PAGE_SIZE >= req.nr_pages * 8);
    assert_eq!(l.ramdisk.is_some(), req.ramdisk_len > 0);
    assert!(
        l.ramdisk
            .is_none_or(|r| r.pages * PAGE_SIZE >= req.ramdisk_len)
    );
    let dom0 = req.flags.contains(SifFlags::INITDOMAIN);
    assert_eq!(l.xenstore.is_none(), dom0);
    assert_eq!(l.console.is_none(), dom0);
    // A 4 MiB aligned end with at least 512 KiB of padding.
    assert_eq!(l.virt_end.0 % (4 << 20), 0);
    assert!(l.virt_end.0 - l.stack.end().0 >= 512 << 10);
    let p2m_frames = l.p2m_mapping.map_or(0, |m| m.frames());
    assert!(l.mapped_pages() + p2m_frames <= req.nr_pages);
    assert_eq!(l.tables_per_level.iter().sum::<u64>(), l.page_tables.pages);
    assert_eq!(l.tables_per_level[3], 1);

    // The page tables map every page of the region once, to its own PFN, writable except
    // the page tables themselves; each table entry is set once.
    let frames: BTreeMap<Pfn, u32> = l.page_table_frames().collect();
    let p2m_tables = l
        .p2m_mapping
        .map_or(0, |m| m.tables_per_level.iter().sum::<u64>());
    assert_eq!(frames.len() as u64, l.page_tables.pages + p2m_tables);
    assert_eq!(frames[&l.l4_pfn()], 4);
    let mut seen = std::collections::BTreeSet::new();
    let mut leaf = BTreeMap::new();
    for e in l.page_table_entries() {
        assert_eq!(
            frames.get(&e.table),
            Some(&e.level),
            "entry in a table of the right level"
        );
        assert!(seen.insert((e.table, e.index)), "entry set twice");
        if e.level == 1 {
            leaf.insert(e.target, e.flags);
        } else {
            assert_eq!(frames.get(&e.target), Some(&(e.level - 1)));
        }
    }
    assert_eq!(
        leaf.len() as u64,
        l.mapped_pages() + l.p2m_mapping.map_or(0, |m| m.list_pages)
    );
    // Walk the tables for a few addresses, as the MMU would.
    let entries: BTreeMap<(Pfn, usize), (Pfn, PteFlags)> = l
        .page_table_entries()
        .map(|e| ((e.table, e.index), (e.target, e.flags)))
        .collect();
    let walk = |va: VirtAddr| {
        let mut step = (l.l4_pfn(), PteFlags::empty());
        for level in (1..=4).rev() {
            step = entries[&(step.0, va.table_index(level))];
        }
        step
    };
    for va in [
        l.virt_base,
        l.start_info.start,
        l.page_tables.start,
        VirtAddr(l.virt_end.0 - PAGE_SIZE),
    ] {
        let (pfn, flags) = walk(va);
        assert_eq!(pfn, l.pfn_of(va));
        assert_eq!(flags.contains(PteFlags::RW), !l.page_tables.contains(va));
    }
    // The P2M list at INIT_P2M: its frames after the region's, in order, writable.
    if let Some(m) = l.p2m_mapping {
        assert_eq!(m.first_pfn.0, l.mapped_pages());
        assert_eq!(l.p2m.start, m.va);
        assert!(l.p2m.end().0 <= l.virt_base.0);
        for i in [0, m.list_pages - 1] {
            let (pfn, flags) = walk(VirtAddr(m.va.0 + i * PAGE_SIZE));
            assert_eq!(pfn.0, m.first_pfn.0 + i);
            assert!(flags.contains(PteFlags::RW));
        }
        assert!(frames.keys().all(|f| f.0 < m.first_pfn.0 + m.frames()));
    }
}

#[test]
fn toolchain_kernel_as_dom0() {
    let bytes = toolchain_kernel();
    let k = KernelImage::parse(&bytes).unwrap();
    assert_eq!(k.notes.guest_os, Some(&b"toolchain-kernel"[..]));
    assert_eq!(k.virt_kstart, VIRT_BASE + 0x20_0000);
    assert_eq!(k.hypercall_page.map(|h| h % PAGE_SIZE), Some(0));
    assert!(k.features.supports(guest_abi::XenFeature::Dom0));
    assert_eq!(k.segments().count(), 2);

    let req = dom0(16384, 0x12345);
    let l = plan_boot(&k, &req).unwrap();
    check_invariants(&l, &k, &req);
    // 2 MiB of gap + the kernel, 64 MiB of P2M entries: all within one L2.
    assert_eq!(l.kernel.start.0, VIRT_BASE + 0x20_0000);
    assert_eq!(l.tables_per_level, [l.tables_per_level[0], 1, 1, 1]);

    let regs = l.initial_registers();
    assert_eq!(
        (regs.rip, regs.rsp, regs.rsi),
        (k.entry, l.stack.end().0, l.start_info.start.0)
    );
    assert_eq!(regs.cs, FLAT_KERNEL_CS);

    let params = StartInfoParams {
        shared_info_maddr: 0x1234_5000,
        store_evtchn: EvtchnPort(1),
        console_evtchn: EvtchnPort(2),
        cmdline: b"console=hvc0 hello",
    };
    let si = l.start_info(&params, |pfn| Mfn(pfn.0 + 0x1000));
    assert_eq!(si.magic(), b"xen-3.0-x86_64");
    assert_eq!(si.nr_pages, 16384);
    assert_eq!(si.shared_info, 0x1234_5000);
    assert_eq!(si.sif_flags(), SifFlags::PRIVILEGED | SifFlags::INITDOMAIN);
    assert_eq!((si.store_mfn, si.store_evtchn), (0, 0));
    assert_eq!(
        (si.console.dom0_info_off(), si.console.dom0_info_size()),
        (0, 0)
    );
    assert_eq!(si.pt_base, l.page_tables.start.0);
    assert_eq!(si.nr_pt_frames, l.page_tables.pages);
    assert_eq!(si.mfn_list, l.p2m.start.0);
    assert_eq!(
        (si.mod_start, si.mod_len),
        (l.ramdisk.unwrap().start.0, 0x12345)
    );
    assert_eq!(si.cmdline(), b"console=hvc0 hello");
}

#[test]
fn domu_gets_store_and_console_pages() {
    let bytes = Image::good().build();
    let k = KernelImage::parse(&bytes).unwrap();
    let req = domu(8192, 0);
    let l = plan_boot(&k, &req).unwrap();
    check_invariants(&l, &k, &req);
    assert!(l.ramdisk.is_none());
    let params = StartInfoParams {
        shared_info_maddr: 0x9000,
        store_evtchn: EvtchnPort(3),
        console_evtchn: EvtchnPort(4),
        cmdline: &[b'x'; 2000],
    };
    let si = l.start_info(&params, |pfn| Mfn(pfn.0 * 2));
    assert_eq!(si.store_mfn, 2 * l.pfn_of(l.xenstore.unwrap().start).0);
    assert_eq!(si.store_evtchn, 3);
    assert_eq!(si.console.mfn, 2 * l.pfn_of(l.console.unwrap().start).0);
    assert_eq!(si.console.evtchn, 4);
    assert_eq!(
        si.cmdline().len(),
        1023,
        "the command line is cut to fit with its NUL"
    );
    assert_eq!((si.mod_start, si.mod_len), (0, 0));
}

#[test]
fn regions_across_table_boundaries_get_more_tables() {
    // VIRT_BASE 2 MiB below a 512 GiB boundary, in the lower half: two L3s and L2s.
    let base = (1u64 << 39) - (2 << 20);
    let img = Image::good().at(base);
    let bytes = img.build();
    let k = KernelImage::parse(&bytes).unwrap();
    let req = domu(65536, 1 << 20);
    let l = plan_boot(&k, &req).unwrap();
    check_invariants(&l, &k, &req);
    assert_eq!(l.tables_per_level[2], 2);
    assert_eq!(l.tables_per_level[1], 2);
}

#[test]
fn too_little_memory_is_an_error() {
    let bytes = Image::good().build();
    let k = KernelImage::parse(&bytes).unwrap();
    let err = plan_boot(&k, &dom0(512, 0)).unwrap_err();
    assert!(matches!(err, LayoutError::NotEnoughMemory { available: 512, needed } if needed > 512));
    // A ramdisk larger than memory.
    assert!(matches!(
        plan_boot(&k, &dom0(4096, 1 << 30)),
        Err(LayoutError::NotEnoughMemory { .. })
    ));
}

#[test]
fn unaligned_virt_base_is_an_error() {
    let img = Image::good()
        .note(T::VirtBase, (VIRT_BASE + 0x800).to_le_bytes().to_vec())
        .note(T::PaddrOffset, 0x800u64.to_le_bytes().to_vec());
    let bytes = img.build();
    let k = KernelImage::parse(&bytes).unwrap();
    assert_eq!(
        plan_boot(&k, &dom0(1 << 20, 0)),
        Err(LayoutError::VirtBaseUnaligned)
    );
}

#[test]
fn region_running_into_the_hypervisor_or_off_the_end_is_an_error() {
    // A kernel ending just below the hypervisor range, in the lower half: its bootstrap
    // region leaves the canonical lower half.
    let base: u64 = 0x0000_7fff_ffc0_0000;
    let img = Image::good().at(base);
    let bytes = img.build();
    let k = KernelImage::parse(&bytes).unwrap();
    assert_eq!(
        plan_boot(&k, &dom0(1 << 20, 0)),
        Err(LayoutError::AddressOverflow)
    );

    // A kernel right above the hypervisor range whose region would wrap past 2^64.
    let base: u64 = 0xffff_ffff_ffe0_0000;
    let mut img = Image::good()
        .note(T::VirtBase, base.to_le_bytes().to_vec())
        .note(T::Entry, (base + 0x1000).to_le_bytes().to_vec())
        .without(T::HypercallPage);
    img.segs = vec![Seg {
        paddr: 0x1000,
        filesz: 0x1000,
        memsz: 0x1000,
    }];
    let bytes = img.build();
    let k = KernelImage::parse(&bytes).unwrap();
    assert_eq!(
        plan_boot(&k, &dom0(1 << 20, 0)),
        Err(LayoutError::AddressOverflow)
    );

    // A region starting below the hypervisor range and growing into it.
    let base: u64 = 0xffff_7fff_ffe0_0000;
    assert!(
        !VirtAddr(base).is_canonical(),
        "no such kernel parses; the range check is tested in image"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_request_is_laid_out_or_refused_without_panic(
        nr_pages in 0u64..(1 << 22),
        ramdisk_len in prop_oneof![Just(0u64), 0u64..(1 << 28), Just(u64::MAX)],
        kernel_pages in 2u64..2048,
        base_slot in 0u64..4,
        initdomain in any::<bool>(),
        init_p2m in prop::option::of(prop_oneof![
            Just(0x80_0000_0000u64),
            (0u64..(1 << 36)).prop_map(|p| p << 12),
            any::<u64>(),
        ]),
    ) {
        let base = [VIRT_BASE, 0x40_0000, 0x7f_ffc0_0000, 0xffff_8800_0000_0000][base_slot as usize];
        let mut img = Image::good().at(base);
        img.segs[0] = Seg { paddr: 0x10_0000, filesz: 0x1000, memsz: kernel_pages * PAGE_SIZE };
        if let Some(va) = init_p2m.filter(|&va| va < base || va >= base + (16 << 20)) {
            img = img.note(T::InitP2m, va.to_le_bytes().to_vec());
        }
        let bytes = img.build();
        let k = KernelImage::parse(&bytes).unwrap();
        let req = if initdomain { dom0(nr_pages, ramdisk_len) } else { domu(nr_pages, ramdisk_len) };
        if let Ok(l) = plan_boot(&k, &req) {
            check_invariants(&l, &k, &req);
        }
    }
}

fn with_init_p2m(va: u64) -> Vec<u8> {
    Image::good()
        .note(T::InitP2m, va.to_le_bytes().to_vec())
        .build()
}

/// Linux's INIT_P2M (512 GiB, L4 slot 1): the list leaves the region and gets an L3, an
/// L2 and its L1s of its own, after the region's frames; start_info says so.
#[test]
fn init_p2m_maps_the_list_where_the_kernel_asks() {
    let bytes = with_init_p2m(0x80_0000_0000);
    let k = KernelImage::parse(&bytes).unwrap();
    let req = domu(262_144, 0x10_0000); // 1 GiB: 512 pages of list, one L1 table.
    let l = plan_boot(&k, &req).unwrap();
    check_invariants(&l, &k, &req);
    let m = l.p2m_mapping.unwrap();
    assert_eq!((m.va.0, m.list_pages), (0x80_0000_0000, 512));
    assert_eq!(m.tables_per_level, [1, 1, 1]);
    assert_eq!(m.frames(), 515);
    let si = l.start_info(
        &StartInfoParams {
            shared_info_maddr: 0x1000,
            store_evtchn: EvtchnPort(1),
            console_evtchn: EvtchnPort(2),
            cmdline: b"",
        },
        |pfn| Mfn(pfn.0),
    );
    assert_eq!(si.mfn_list, 0x80_0000_0000);
    assert_eq!(
        (si.first_p2m_pfn, si.nr_p2m_frames),
        (l.mapped_pages(), 515)
    );
    // The region is smaller than with the list inside it.
    let inside = plan_boot(&KernelImage::parse(&Image::good().build()).unwrap(), &req).unwrap();
    assert!(l.virt_end.0 <= inside.virt_end.0);
    assert_eq!(inside.p2m_mapping, None);
    // 4 GiB: 8 MiB of list, four L1 tables.
    let l = plan_boot(&k, &domu(1 << 20, 0)).unwrap();
    assert_eq!(l.p2m_mapping.unwrap().tables_per_level, [4, 1, 1]);
}

/// A list just below the region shares the region's tables at the levels where both fall
/// in one table's range, instead of repeating them.
#[test]
fn init_p2m_next_to_the_region_shares_its_tables() {
    let req = domu(4096, 0); // 8 pages of list
    // VIRT_BASE is 1 GiB aligned: the list below it has its own L1 and L2, the L3 is shared.
    let bytes = with_init_p2m(VIRT_BASE - 16 * PAGE_SIZE);
    let k = KernelImage::parse(&bytes).unwrap();
    let l = plan_boot(&k, &req).unwrap();
    check_invariants(&l, &k, &req);
    assert_eq!(l.p2m_mapping.unwrap().tables_per_level, [1, 1, 0]);
    // A region starting 1 MiB into a 2 MiB range: the list shares every table.
    let base = VIRT_BASE + 0x10_0000;
    let bytes = Image::good()
        .at(base)
        .note(T::InitP2m, (base - 16 * PAGE_SIZE).to_le_bytes().to_vec())
        .build();
    let k = KernelImage::parse(&bytes).unwrap();
    let l = plan_boot(&k, &req).unwrap();
    check_invariants(&l, &k, &req);
    assert_eq!(l.p2m_mapping.unwrap().tables_per_level, [0, 0, 0]);
}

#[test]
fn init_p2m_is_ignored_as_xen_does_or_refused_when_it_overlaps() {
    let req = domu(4096, 0);
    // Above VIRT_BASE, unaligned, or for dom0: the list stays in the region.
    for (va, req) in [
        (VIRT_BASE + (1 << 30), req),
        (0x80_0000_0800, req),
        (0x80_0000_0000, dom0(4096, 0)),
    ] {
        let bytes = with_init_p2m(va);
        let l = plan_boot(&KernelImage::parse(&bytes).unwrap(), &req).unwrap();
        assert_eq!(l.p2m_mapping, None, "{va:#x}");
        assert!(l.p2m.start.0 >= l.virt_base.0);
    }
    // Running into the region.
    let bytes = with_init_p2m(VIRT_BASE - PAGE_SIZE);
    assert_eq!(
        plan_boot(&KernelImage::parse(&bytes).unwrap(), &req),
        Err(LayoutError::P2mOverlapsRegion)
    );
    // Its frames count against the domain's memory.
    let bytes = with_init_p2m(0x80_0000_0000);
    let k = KernelImage::parse(&bytes).unwrap();
    let fits = plan_boot(&k, &domu(4096, 0)).unwrap();
    // One page past the region: the list (3 pages for 1025 entries) and its 3 tables do
    // not fit.
    let nr = fits.mapped_pages() + 1;
    assert_eq!(nr, 1025);
    assert_eq!(
        plan_boot(&k, &domu(nr, 0)),
        Err(LayoutError::NotEnoughMemory {
            needed: 1024 + 3 + 3,
            available: nr
        })
    );
}
