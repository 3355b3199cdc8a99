use alloc::string::ToString;
use alloc::vec::Vec;

use guest_abi::arch::{FLAT_KERNEL_CS, FLAT_KERNEL_SS, xen_pfn_to_cr3};
use guest_abi::image::ImageError;
use guest_abi::xen::{START_INFO_MAGIC_X86_64, SharedInfo};
use zerocopy::FromBytes;

use super::*;
use crate::config;
use crate::fake::{self, FakeHv};

fn config(extra: &str) -> DomainConfig {
    let text = alloc::format!("name='t'\nkernel='k'\nmemory=8\nvcpus=2\n{extra}");
    config::parse("t.cfg", &text, &[]).unwrap().config
}

const RAMDISK: &[u8] = b"a ramdisk of a few bytes, not page aligned";

fn build_one(hv: &mut FakeHv, hypercall_page: bool) -> Built {
    let kernel = fake::kernel_image(hypercall_page);
    let cfg = config("cmdline='console=hvc0 root=/dev/ram0'");
    build(hv, &cfg, &kernel, Some(RAMDISK), [7; 16]).unwrap()
}

/// A domain from the default test configuration, without a ramdisk.
fn build_plain(hv: &mut FakeHv) -> Result<Built, BuildError> {
    build(hv, &config(""), &fake::kernel_image(true), None, [0; 16])
}

#[test]
fn builds_a_domain_the_guest_can_boot_from() {
    let mut hv = FakeHv::new(8192);
    let built = build_one(&mut hv, true);
    let dom = built.domid;
    let d = &hv.domains[&dom.0];
    assert_eq!(d.pages.len() as u64, 8 * 256);
    assert_eq!(d.max_kib, 8 * 1024);
    assert_eq!(d.max_vcpus, 2);
    assert_eq!(d.handle, [7; 16]);
    assert!(d.paused, "the builder leaves the domain paused");

    // vCPU 0 as vcpu_x86_64 sets it.
    let ctx = d.context.unwrap();
    let l = &built.layout;
    let r = &ctx.user_regs;
    assert_eq!(r.rip, fake::KERNEL_ENTRY);
    assert_eq!(r.rsp, l.stack.end().0);
    assert_eq!(r.rsi, l.start_info.start.0);
    assert_eq!((r.cs, r.ss), (FLAT_KERNEL_CS, FLAT_KERNEL_SS));
    assert_eq!((r.ds, r.es, r.fs, r.gs), (0, 0, 0, 0));
    assert_eq!(r.rflags, 1 << 9);
    assert_eq!(ctx.flags, (VgcfFlags::IN_KERNEL | VgcfFlags::ONLINE).bits());
    assert_eq!(
        (ctx.kernel_ss, ctx.kernel_sp),
        (u64::from(FLAT_KERNEL_SS), r.rsp)
    );
    assert_eq!(ctx.ctrlreg[3], xen_pfn_to_cr3(d.pinned_l4.unwrap().0));
    assert_eq!(
        (
            ctx.event_callback_eip,
            ctx.failsafe_callback_eip,
            ctx.syscall_callback_eip
        ),
        (0, 0, 0)
    );

    // start_info, read the way the guest reads it: through its page tables.
    let si = hv.start_info(dom).unwrap();
    assert_eq!(
        &si.magic[..START_INFO_MAGIC_X86_64.len()],
        START_INFO_MAGIC_X86_64
    );
    assert_eq!(si.nr_pages, 8 * 256);
    assert_eq!(
        si.flags, 0,
        "a domU is neither privileged nor the initial domain"
    );
    assert_eq!(si.cmdline(), b"console=hvc0 root=/dev/ram0");
    assert_eq!(si.console.mfn, built.console_frame.0);
    assert_eq!(si.console.evtchn, built.console_port.0);
    assert_ne!(si.console.evtchn, 0);
    assert_eq!(si.store_evtchn, built.store_port.0);
    assert_ne!(si.store_evtchn, 0);
    assert_eq!(si.shared_info, d.shared_info.addr());
    assert_eq!(si.pt_base, l.page_tables.start.0);
    assert_eq!(
        hv.read_virt(dom, si.mod_start, RAMDISK.len()).unwrap(),
        RAMDISK
    );
    assert_eq!(si.mod_len, RAMDISK.len() as u64);

    // The P2M list the guest sees is the hypervisor's.
    let p2m = hv.read_virt(dom, si.mfn_list, 8 * 2048).unwrap();
    let p2m: Vec<u64> = p2m
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let want: Vec<u64> = hv.domains[&dom.0].pages.iter().map(|m| m.0).collect();
    assert_eq!(p2m, want);

    // The kernel is where it was linked, its bss is zero, page tables are read-only.
    let text = hv
        .read_virt(dom, fake::KERNEL_ENTRY, fake::KERNEL_TEXT.len())
        .unwrap();
    assert_eq!(text, fake::KERNEL_TEXT);
    let end = fake::KERNEL_ENTRY + 0x3000;
    assert_eq!(hv.read_virt(dom, end - 4, 4).unwrap(), b"END!");
    assert!(
        hv.read_virt(dom, end, fake::KERNEL_BSS as usize)
            .unwrap()
            .iter()
            .all(|&b| b == 0)
    );
    assert!(
        !hv.translate(dom, si.pt_base).unwrap().1,
        "page tables are read-only"
    );
    assert!(hv.translate(dom, fake::KERNEL_ENTRY).unwrap().1);
    assert_eq!(hv.translate(dom, l.virt_end.0), None);
    assert_eq!(
        hv.translate(dom, l.console.unwrap().start.0).unwrap().0,
        built.console_frame
    );

    // Events masked in every vcpu_info; the hypervisor wrote the hypercall page.
    let si_page = hv.read(d.shared_info, 0, size_of::<SharedInfo>());
    let shared = SharedInfo::read_from_bytes(&si_page).unwrap();
    assert!(shared.vcpu_info.iter().all(|v| v.evtchn_upcall_mask == 1));
    let hp = hv.translate(dom, fake::KERNEL_HYPERCALL_PAGE).unwrap().0;
    assert_eq!(hv.domains[&dom.0].hypercall_page, Some(hp));
}

#[test]
fn no_hypercall_page_without_the_note() {
    let mut hv = FakeHv::new(8192);
    let built = build_one(&mut hv, false);
    assert_eq!(hv.domains[&built.domid.0].hypercall_page, None);
    assert_eq!(built.layout.hypercall_page, None);
}

#[test]
fn refuses_before_creating_anything() {
    let mut hv = FakeHv::new(8192);
    let kernel = fake::kernel_image(false);
    let cases: Vec<(DomainConfig, Vec<u8>, usize, BuildError, &str)> = alloc::vec![
        (
            config(""),
            b"#!/bin/sh\necho hello\n".to_vec(),
            8192,
            BuildError::Image(ImageError::NotElf),
            "not a usable Xen PV kernel: not an ELF file"
        ),
        (
            config(""),
            kernel[..100].to_vec(),
            8192,
            BuildError::Image(ImageError::Truncated),
            "not a usable Xen PV kernel: the file is truncated"
        ),
        (
            config("memory=1"),
            kernel.clone(),
            8192,
            BuildError::Layout(LayoutError::NotEnoughMemory {
                needed: 1024,
                available: 256
            }),
            "cannot lay out the domain: the bootstrap region needs 1024 pages, the domain has 256"
        ),
        (
            config("memory=64"),
            kernel.clone(),
            8192,
            BuildError::NotEnoughMemory {
                needed_mib: 65,
                free_mib: 32
            },
            "not enough free memory: the domain needs 65 MiB, the host has 32 MiB free"
        ),
    ];
    for (cfg, image, _, want, text) in cases {
        let got = build(&mut hv, &cfg, &image, None, [0; 16]).unwrap_err();
        assert_eq!(got, want);
        assert_eq!(got.to_string(), text);
        assert!(hv.domains.is_empty());
        assert_eq!(hv.free_pages(), 8192);
    }
}

/// A hypercall failing at any step destroys the half-built domain and gives back every
/// page.
#[test]
fn a_failure_midway_destroys_the_domain() {
    let ops = [
        "max_vcpus",
        "max_mem",
        "populate_physmap",
        "write_frame",
        "evtchn_alloc_unbound",
        "getdomaininfo",
        "hypercall_init",
        "pin_l4",
        "setvcpucontext",
    ];
    let mut hv = FakeHv::new(8192);
    for op in ops {
        hv.fail_on.push((op, XenError::NoMem));
        let err = build_plain(&mut hv).unwrap_err();
        let BuildError::Hypercall {
            domid: Some(id), ..
        } = err
        else {
            panic!("{op}: {err:?}");
        };
        assert_eq!(
            err.to_string().split(" failed: ").nth(1),
            Some(alloc::format!("ENOMEM (12); domain {} destroyed", id.0).as_str()),
            "{op}: {err}"
        );
        assert!(hv.domains.is_empty(), "{op}");
        assert_eq!(hv.free_pages(), 8192, "{op}");
    }
    hv.fail_on.push(("createdomain", XenError::Perm));
    let err = build_plain(&mut hv).unwrap_err();
    assert_eq!(err.to_string(), "createdomain failed: EPERM (1)");

    hv.fail_on.push(("setvcpucontext", XenError::Inval));
    hv.fail_on.push(("destroydomain", XenError::Busy));
    let err = build_plain(&mut hv).unwrap_err();
    let id = hv.domains.keys().next().copied().unwrap();
    assert_eq!(
        err.to_string(),
        alloc::format!(
            "setvcpucontext failed: EINVAL (22); destroying domain {id} also failed: EBUSY (16)"
        )
    );
}

#[test]
fn split_at_pages_cuts_on_boundaries() {
    let data = [1u8; 10_000];
    let lens: Vec<usize> = split_at_pages(4000, &data).map(<[u8]>::len).collect();
    assert_eq!(lens, [96, 4096, 4096, 1712]);
    let lens: Vec<usize> = split_at_pages(0, &data[..4096]).map(<[u8]>::len).collect();
    assert_eq!(lens, [4096]);
    assert_eq!(split_at_pages(5, &[]).count(), 0);
}

proptest::proptest! {
    /// A damaged kernel either builds or is refused; either way nothing leaks and nothing
    /// panics.
    #[test]
    fn damaged_kernels_never_leak(
        flips in proptest::collection::vec((0usize..0x1200, proptest::prelude::any::<u8>()), 1..4),
        cut in 0x100usize..0x5000,
    ) {
        let mut hv = FakeHv::new(4096);
        let mut kernel = fake::kernel_image(true);
        for (at, value) in flips {
            kernel[at] = value;
        }
        kernel.truncate(cut);
        match build(&mut hv, &config(""), &kernel, Some(RAMDISK), [0; 16]) {
            Ok(built) => {
                hv.destroy_domain(built.domid).unwrap();
            }
            Err(e) => proptest::prop_assert!(!e.to_string().contains('\n')),
        }
        proptest::prop_assert!(hv.domains.is_empty());
        proptest::prop_assert_eq!(hv.free_pages(), 4096);
    }
}

#[test]
fn a_bzimage_is_decompressed_and_built() {
    use crate::kernel_file::tests::{bzimage, lz4};
    let mut hv = FakeHv::new(8192);
    let file = bzimage(&lz4(&fake::kernel_image(true)), 0x020f);
    let built = build(&mut hv, &config(""), &file, None, [0; 16]).unwrap();
    let text = hv
        .read_virt(built.domid, fake::KERNEL_ENTRY, fake::KERNEL_TEXT.len())
        .unwrap();
    assert_eq!(text, fake::KERNEL_TEXT);

    // A truncated payload: one error, nothing created.
    let mut hv = FakeHv::new(8192);
    let short = &file[..file.len() - 200];
    let err = build(&mut hv, &config(""), short, None, [0; 16]).unwrap_err();
    assert_eq!(err, BuildError::Unpack(UnpackError::PayloadOutsideFile));
    assert_eq!(
        err.to_string(),
        "cannot load the kernel: the bzImage's payload lies outside the file"
    );
    assert!(hv.domains.is_empty());
}

/// With `INIT_P2M` the list is mapped at the kernel's address by tables of its own, its
/// frames after the region's, as Xen's builder does.
#[test]
fn the_p2m_list_goes_where_init_p2m_asks() {
    const P2M_VA: u64 = 0x80_0000_0000; // Linux's: 512 GiB, L4 slot 1.
    let mut hv = FakeHv::new(8192);
    let kernel = fake::kernel_image_with(true, Some(P2M_VA));
    let built = build(&mut hv, &config(""), &kernel, Some(RAMDISK), [0; 16]).unwrap();
    let (dom, l) = (built.domid, built.layout);
    let m = l.p2m_mapping.expect("INIT_P2M honoured");
    assert_eq!(l.p2m.start.0, P2M_VA);
    assert_eq!(m.first_pfn.0, l.mapped_pages());
    assert_eq!(m.list_pages, 4); // 2048 entries
    assert_eq!(m.tables_per_level, [1, 1, 1]);

    let si = hv.start_info(dom).unwrap();
    assert_eq!(si.mfn_list, P2M_VA);
    assert_eq!(si.first_p2m_pfn, m.first_pfn.0);
    assert_eq!(si.nr_p2m_frames, 4 + 3);
    // The guest reads the hypervisor's P2M at 512 GiB, writable.
    let p2m = hv.read_virt(dom, P2M_VA, 8 * 2048).unwrap();
    let want: Vec<u8> = hv.domains[&dom.0]
        .pages
        .iter()
        .flat_map(|m| m.0.to_le_bytes())
        .collect();
    assert_eq!(p2m, want);
    assert!(hv.translate(dom, P2M_VA).unwrap().1);
    assert_eq!(hv.translate(dom, P2M_VA + 4 * PAGE_SIZE), None);
    // The region no longer holds it: start_info follows the ramdisk.
    assert_eq!(l.start_info.start, l.ramdisk.unwrap().end());
}
