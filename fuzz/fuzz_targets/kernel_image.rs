//! The PV kernel loader: `guest_abi::image::KernelImage::parse` on any bytes, then, for an
//! accepted image, `guest_abi::boot::plan_boot` with a fuzzed request, and checks of the layout
//! it returns: every region inside the mapped bootstrap region and clear of the hypervisor,
//! no two regions overlapping, every bootstrap page-table entry inside the tables and the mapped
//! frames, a P2M list at `INIT_P2M` below the region with its frames after the region's, and
//! `start_info` agreeing with the layout.
#![no_main]

use guest_abi::arch::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};
use guest_abi::boot::{BootRequest, Region, StartInfoParams, plan_boot};
use guest_abi::image::KernelImage;
use guest_abi::xen::SifFlags;
use guest_abi::{EvtchnPort, Mfn, PAGE_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The last 13 bytes, if any, are the request; the rest is the image.
    let (image, req) = match data.len().checked_sub(13) {
        Some(at) => data.split_at(at),
        None => (data, &[0u8; 13][..]),
    };
    let Ok(kernel) = KernelImage::parse(image) else {
        return;
    };
    let _ = kernel.notes.feature_set();
    for seg in kernel.segments() {
        let end = seg
            .dest
            .0
            .checked_add(seg.mem_size)
            .expect("segment end overflows");
        assert!(
            seg.dest.0 >= kernel.virt_kstart && end <= kernel.virt_kend,
            "{seg:?}"
        );
        assert!(seg.data.len() as u64 <= seg.mem_size);
    }
    let nr_pages = u64::from(u32::from_le_bytes(req[..4].try_into().unwrap()));
    let ramdisk_len = u64::from_le_bytes(req[4..12].try_into().unwrap()) >> (req[12] & 63);
    let flags = if req[12] & 64 != 0 {
        SifFlags::INITDOMAIN | SifFlags::PRIVILEGED
    } else {
        SifFlags::empty()
    };
    let request = BootRequest {
        nr_pages,
        ramdisk_len,
        flags,
    };
    let Ok(layout) = plan_boot(&kernel, &request) else {
        return;
    };
    let (base, end) = (layout.virt_base.0, layout.virt_end.0);
    assert!(base < end && base.is_multiple_of(PAGE_SIZE));
    assert!(end <= HYPERVISOR_VIRT_START || base >= HYPERVISOR_VIRT_END);
    let p2m_frames = layout.p2m_mapping.map_or(0, |m| m.frames());
    assert!(
        layout.mapped_pages() + p2m_frames <= nr_pages,
        "maps more than the domain owns"
    );
    let mut regions: Vec<Region> = vec![
        layout.kernel,
        layout.start_info,
        layout.page_tables,
        layout.stack,
    ];
    match layout.p2m_mapping {
        None => regions.push(layout.p2m),
        Some(m) => {
            assert!(flags.is_empty(), "dom0 keeps its P2M in the region");
            assert_eq!(layout.p2m.start, m.va);
            assert!(
                layout.p2m.end().0 <= base,
                "the P2M list runs into the region"
            );
            assert_eq!(m.first_pfn.0, layout.mapped_pages());
        }
    }
    regions.extend(layout.ramdisk);
    regions.extend(layout.xenstore);
    regions.extend(layout.console);
    for r in &regions {
        assert!(
            r.start.0 >= base && r.end().0 <= end,
            "{r:?} outside the region"
        );
    }
    for (i, a) in regions.iter().enumerate() {
        for b in &regions[i + 1..] {
            let disjoint =
                a.end().0 <= b.start.0 || b.end().0 <= a.start.0 || a.pages == 0 || b.pages == 0;
            assert!(disjoint, "{a:?} overlaps {b:?}");
        }
    }
    assert!(
        layout.p2m.pages * PAGE_SIZE >= nr_pages * 8,
        "P2M too small"
    );
    if let Some(r) = layout.ramdisk {
        assert!(r.pages * PAGE_SIZE >= ramdisk_len);
    }
    // The bootstrap tables: bounded so that one input stays fast.
    if layout.mapped_pages() <= 1 << 16 {
        let first = layout.l4_pfn().0;
        let region_tables = first..first + layout.page_tables.pages;
        let (p2m_pfns, p2m_list) = match layout.p2m_mapping {
            Some(m) => (
                m.first_pfn.0..m.first_pfn.0 + m.frames(),
                m.first_pfn.0..m.first_pfn.0 + m.list_pages,
            ),
            None => (0..0, 0..0),
        };
        let tables = |pfn: &u64| {
            region_tables.contains(pfn) || (p2m_pfns.contains(pfn) && !p2m_list.contains(pfn))
        };
        let mut l4s = 0;
        for e in layout.page_table_entries() {
            assert!(tables(&e.table.0), "{e:?}: table outside the tables");
            assert!(e.index < 512 && (1..=4).contains(&e.level));
            if e.level == 1 {
                assert!(
                    e.target.0 < layout.mapped_pages() || p2m_list.contains(&e.target.0),
                    "{e:?}: maps beyond the region and the P2M list"
                );
            } else {
                assert!(tables(&e.target.0), "{e:?}: next table outside the tables");
            }
            if e.level == 4 {
                l4s += 1;
                assert_eq!(e.table.0, first, "L4 entry not in the L4");
            }
        }
        assert!(l4s >= 1);
        let p2m_tables = p2m_pfns.end - p2m_pfns.start - (p2m_list.end - p2m_list.start);
        assert_eq!(
            layout.page_table_frames().count() as u64,
            layout.page_tables.pages + p2m_tables,
            "every table frame listed once"
        );
    }
    let si = layout.start_info(
        &StartInfoParams {
            shared_info_maddr: 0x1000,
            store_evtchn: EvtchnPort(1),
            console_evtchn: EvtchnPort(2),
            cmdline: image.get(..2000).unwrap_or(image),
        },
        |pfn| Mfn(pfn.0 + 0x100),
    );
    assert_eq!(si.nr_pages, nr_pages);
    assert_eq!(si.pt_base, layout.page_tables.start.0);
    assert_eq!(si.mfn_list, layout.p2m.start.0);
    assert_eq!(si.nr_p2m_frames, p2m_frames);
    assert_eq!(*si.cmd_line.last().unwrap(), 0, "command line unterminated");
    let _ = layout.initial_registers();
});
