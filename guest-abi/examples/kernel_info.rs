//! Prints what guest-abi reads from a PV kernel image and where `plan_boot` puts the
//! start-of-day elements, one `name start [end]` line each, in the terms of Xen's own
//! dom0 builder log ("VIRTUAL MEMORY ARRANGEMENT"), so that `scripts/xen-tests.sh` can
//! compare our layout with real Xen's.
//!
//! ```text
//! cargo run -p guest-abi --example kernel_info -- KERNEL [NR_PAGES [RAMDISK_LEN [domu]]]
//! ```

use std::process::ExitCode;

use guest_abi::boot::{BootRequest, plan_boot};
use guest_abi::image::KernelImage;
use guest_abi::xen::SifFlags;

fn text(s: Option<&[u8]>) -> String {
    s.map_or("-".into(), |s| String::from_utf8_lossy(s).into_owned())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: kernel_info KERNEL [NR_PAGES [RAMDISK_LEN [domu]]]");
        return ExitCode::from(64);
    };
    let number = |i: usize, default: u64| args.get(i).map_or(Ok(default), |s| s.parse::<u64>());
    let (Ok(nr_pages), Ok(ramdisk_len)) = (number(1, 16384), number(2, 0)) else {
        eprintln!("kernel_info: NR_PAGES and RAMDISK_LEN are numbers");
        return ExitCode::from(64);
    };
    let flags = match args.get(3).map(String::as_str) {
        Some("domu") => SifFlags::empty(),
        _ => SifFlags::PRIVILEGED | SifFlags::INITDOMAIN,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("kernel_info: {path}: {e}");
            return ExitCode::from(66);
        }
    };
    let kernel = match KernelImage::parse(&bytes) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("kernel_info: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let n = &kernel.notes;
    println!("guest_os {}", text(n.guest_os));
    println!("xen_version {}", text(n.xen_version));
    println!("loader {}", text(n.loader));
    println!(
        "features supported {:#x} required {:#x}",
        kernel.features.supported, kernel.features.required
    );
    println!("virt_base {:x}", kernel.virt_base);
    println!("hypercall_page {:x}", kernel.hypercall_page.unwrap_or(0));
    let layout = match plan_boot(
        &kernel,
        &BootRequest {
            nr_pages,
            ramdisk_len,
            flags,
        },
    ) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kernel_info: cannot lay out {nr_pages} pages: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("kernel_start {:x}", kernel.virt_kstart);
    if let Some(r) = layout.ramdisk {
        println!("ramdisk_start {:x}", r.start.0);
    }
    println!("p2m_start {:x}", layout.p2m.start.0);
    println!("start_info_start {:x}", layout.start_info.start.0);
    if let (Some(store), Some(console)) = (layout.xenstore, layout.console) {
        println!("xenstore_start {:x}", store.start.0);
        println!("console_start {:x}", console.start.0);
    }
    println!(
        "page_tables {:x} {:x}",
        layout.page_tables.start.0,
        layout.page_tables.end().0
    );
    println!(
        "boot_stack {:x} {:x}",
        layout.stack.start.0,
        layout.stack.end().0
    );
    println!("total {:x} {:x}", layout.virt_base.0, layout.virt_end.0);
    println!("entry {:x}", layout.entry.0);
    ExitCode::SUCCESS
}
