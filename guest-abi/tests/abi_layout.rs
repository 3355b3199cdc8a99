//! Checks guest-abi against Xen's own public headers (Debian's `libxen-dev`,
//! `/usr/include/xen`).
//!
//! One Rust-side list below names every ABI struct with its C type and every field with its
//! C path, and every constant with its C name. From that list the test writes a C probe,
//! compiles it against the headers with `cc`, runs it, and compares each `sizeof`,
//! `_Alignof`, `offsetof` and constant value the probe prints with Rust's `size_of`,
//! `align_of`, `offset_of!` and values. The expected numbers therefore come from the
//! headers at test time; nothing here types them in.
//!
//! Two completeness checks keep the list honest: every field of every `#[repr(C)]` struct
//! in `src/` must be listed (fields named `_hole*` are Rust's spelling of C's implicit
//! padding, which the size and offsets of the neighbours already check), and every
//! hypercall and sub-op number the headers define must exist on the Rust side.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use guest_abi::arch::*;
use guest_abi::callback::*;
use guest_abi::console::*;
use guest_abi::domctl::*;
use guest_abi::elfnote::*;
use guest_abi::event_channel::*;
use guest_abi::features::*;
use guest_abi::grant_table::*;
use guest_abi::hypercall::*;
use guest_abi::io::blkif::*;
use guest_abi::io::ring::*;
use guest_abi::memory::*;
use guest_abi::payload::Payload;
use guest_abi::sched::*;
use guest_abi::sysctl::*;
use guest_abi::vcpu::*;
use guest_abi::version::*;
use guest_abi::xen::*;
use guest_abi::xenstore::*;
use guest_abi::{DomId, XenError};

const XEN_INCLUDE: &str = "/usr/include/xen";

/// One number the probe prints and the Rust side knows.
struct Check {
    what: String,
    c_expr: String,
    rust: u64,
}

#[derive(Default)]
struct Checks {
    list: Vec<Check>,
    /// (Rust struct, first component of each listed Rust field path).
    fields: BTreeSet<(String, String)>,
    structs: BTreeSet<String>,
}

impl Checks {
    fn push(&mut self, what: String, c_expr: String, rust: u64) {
        self.list.push(Check { what, c_expr, rust });
    }

    fn size(&mut self, rust: &str, c: &str, size: usize, align: usize) {
        self.structs.insert(rust.to_string());
        self.push(format!("sizeof({c})"), format!("sizeof({c})"), size as u64);
        self.push(
            format!("_Alignof({c})"),
            format!("_Alignof({c})"),
            align as u64,
        );
    }

    fn field(&mut self, rust: &str, rust_path: &str, c: &str, c_path: &str, offset: usize) {
        let path: String = rust_path.chars().filter(|c| !c.is_whitespace()).collect();
        let first = path.split('.').next().unwrap_or_default().to_string();
        self.fields.insert((rust.to_string(), first));
        let c_path = if c_path.is_empty() {
            path.clone()
        } else {
            c_path.to_string()
        };
        self.push(
            format!("offsetof({c}, {c_path}) [{rust}.{path}]"),
            format!("offsetof({c}, {c_path})"),
            offset as u64,
        );
    }

    fn constant(&mut self, c_name: &str, rust: u64) {
        self.push(c_name.to_string(), c_name.to_string(), rust);
    }
}

/// `layout!(checks; RustType = "struct c_type" { field, a.b, rust_name => "c.path", ... })`
macro_rules! layout {
    ($checks:ident; $($rust:ty = $c:literal { $($fields:tt)* })*) => {
        $(
            $checks.size(stringify!($rust), $c, size_of::<$rust>(), align_of::<$rust>());
            layout!(@fields $checks, $rust, $c; $($fields)*);
        )*
    };
    (@fields $checks:ident, $rust:ty, $c:literal; ) => {};
    (@fields $checks:ident, $rust:ty, $c:literal; $f:ident $(. $g:ident)* => $cf:literal, $($rest:tt)*) => {
        $checks.field(stringify!($rust), stringify!($f $(.$g)*), $c, $cf, offset_of!($rust, $f $(.$g)*));
        layout!(@fields $checks, $rust, $c; $($rest)*);
    };
    (@fields $checks:ident, $rust:ty, $c:literal; $f:ident $(. $g:ident)*, $($rest:tt)*) => {
        $checks.field(stringify!($rust), stringify!($f $(.$g)*), $c, "", offset_of!($rust, $f $(.$g)*));
        layout!(@fields $checks, $rust, $c; $($rest)*);
    };
}

/// `consts!(checks; RUST_NAME, RUST_NAME => "C_name", ...)`
macro_rules! consts {
    ($checks:ident; $($name:ident $(=> $c:literal)?),* $(,)?) => {
        $( $checks.constant(consts!(@c $name $($c)?), $name as u64); )*
    };
    (@c $name:ident) => { stringify!($name) };
    (@c $name:ident $c:literal) => { $c };
}

/// `enums!(checks; Enum, ...)`: every value of each enum under its C name.
macro_rules! enums {
    ($checks:ident; $($e:ty),* $(,)?) => {
        $( for v in <$e>::ALL { $checks.constant(v.c_name(), *v as i64 as u64); } )*
    };
}

/// `flags!(checks; Flags, "PREFIX_", lowercase)`: every named flag under its C name.
fn flag_checks<F: bitflags::Flags<Bits = B>, B: Into<u64> + Copy>(
    checks: &mut Checks,
    prefix: &str,
    c_case: fn(&str) -> String,
) {
    for flag in F::FLAGS {
        checks.constant(
            &format!("{prefix}{}", c_case(flag.name())),
            flag.value().bits().into(),
        );
    }
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

fn same(s: &str) -> String {
    s.to_string()
}

fn gtf_case(s: &str) -> String {
    if matches!(s, "PWT" | "PCD" | "PAT") {
        s.to_string()
    } else {
        s.to_lowercase()
    }
}

fn all_checks() -> Checks {
    let mut c = Checks::default();
    layout!(c;
        StartInfo = "struct start_info" {
            magic, nr_pages, shared_info, flags, store_mfn, store_evtchn,
            console.mfn => "console.domU.mfn",
            console.evtchn => "console.domU.evtchn",
            console => "console.dom0.info_off",
            pt_base, nr_pt_frames, mfn_list, mod_start, mod_len, cmd_line,
            first_p2m_pfn, nr_p2m_frames,
        }
        StartInfoConsole = "__typeof__(((struct start_info *)0)->console.domU)" { mfn, evtchn, }
        VcpuTimeInfo = "struct vcpu_time_info" {
            version, pad0, tsc_timestamp, system_time, tsc_to_system_mul, tsc_shift, flags, pad1,
        }
        VcpuInfo = "struct vcpu_info" {
            evtchn_upcall_pending, evtchn_upcall_mask, evtchn_pending_sel, arch, time,
        }
        SharedInfo = "struct shared_info" {
            vcpu_info, evtchn_pending, evtchn_mask, wc_version, wc_sec, wc_nsec, wc_sec_hi, arch,
        }
        MmuUpdate = "struct mmu_update" { ptr, val, }
        MmuextOp = "struct mmuext_op" {
            cmd, arg1 => "arg1.mfn", arg1 => "arg1.linear_addr",
            arg2 => "arg2.nr_ents", arg2 => "arg2.vcpumask", arg2 => "arg2.src_mfn",
        }
        MulticallEntry = "struct multicall_entry" { op, result, args, }
        TrapInfo = "struct trap_info" { vector, flags, cs, address, }
        CpuUserRegs = "struct cpu_user_regs" {
            r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi,
            error_code, entry_vector, rip, cs, _pad0, saved_upcall_mask, _pad1, rflags, rsp,
            ss, _pad2, es, _pad3, ds, _pad4, fs, _pad5, gs, _pad6,
        }
        IretContext = "struct iret_context" { rax, r11, rcx, flags, rip, cs, rflags, rsp, ss, }
        VcpuGuestContext = "struct vcpu_guest_context" {
            fpu_ctxt, flags, user_regs, trap_ctxt, ldt_base, ldt_ents, gdt_frames, gdt_ents,
            kernel_ss, kernel_sp, ctrlreg, debugreg, event_callback_eip, failsafe_callback_eip,
            syscall_callback_eip, vm_assist, fs_base, gs_base_kernel, gs_base_user,
        }
        ArchVcpuInfo = "struct arch_vcpu_info" { cr2, pad, }
        ArchSharedInfo = "struct arch_shared_info" {
            max_pfn, pfn_to_mfn_frame_list_list, nmi_reason, p2m_cr3, p2m_vaddr, p2m_generation,
        }
        EvtchnAllocUnbound = "struct evtchn_alloc_unbound" { dom, remote_dom, port, }
        EvtchnBindInterdomain = "struct evtchn_bind_interdomain" { remote_dom, remote_port, local_port, }
        EvtchnBindVirq = "struct evtchn_bind_virq" { virq, vcpu, port, }
        EvtchnBindPirq = "struct evtchn_bind_pirq" { pirq, flags, port, }
        EvtchnBindIpi = "struct evtchn_bind_ipi" { vcpu, port, }
        EvtchnPortArg = "struct evtchn_close" { port, }
        EvtchnSend = "struct evtchn_send" { port, }
        EvtchnUnmask = "struct evtchn_unmask" { port, }
        EvtchnStatus = "struct evtchn_status" {
            dom, port, status, vcpu, u => "u.unbound.dom", u => "u.interdomain.dom",
            u => "u.pirq", u => "u.virq",
        }
        EvtchnBindVcpu = "struct evtchn_bind_vcpu" { port, vcpu, }
        EvtchnReset = "struct evtchn_reset" { dom, }
        SchedShutdown = "struct sched_shutdown" { reason, }
        SchedPoll = "struct sched_poll" { ports, nr_ports, timeout, }
        SchedRemoteShutdown = "struct sched_remote_shutdown" { domain_id, reason, }
        SchedWatchdog = "struct sched_watchdog" { id, timeout, }
        SchedPinOverride = "struct sched_pin_override" { pcpu, }
        VcpuRunstateInfo = "struct vcpu_runstate_info" { state, state_entry_time, time, }
        VcpuRegisterMemoryArea = "struct vcpu_register_runstate_memory_area" {
            addr => "addr.h", addr => "addr.v", addr => "addr.p",
        }
        VcpuSetPeriodicTimer = "struct vcpu_set_periodic_timer" { period_ns, }
        VcpuSetSingleshotTimer = "struct vcpu_set_singleshot_timer" { timeout_abs_ns, flags, }
        VcpuRegisterVcpuInfo = "struct vcpu_register_vcpu_info" { mfn, offset, rsvd, }
        VcpuGetPhysid = "struct vcpu_get_physid" { phys_id, }
        XenMemoryReservation = "struct xen_memory_reservation" {
            extent_start, nr_extents, extent_order, mem_flags, domid,
        }
        XenMemoryExchange = "struct xen_memory_exchange" { in_ => "in", out, nr_exchanged, }
        XenMachphysMapping = "struct xen_machphys_mapping" { v_start, v_end, max_mfn, }
        XenMachphysMfnList = "struct xen_machphys_mfn_list" {
            max_extents, extent_start, nr_extents,
        }
        XenAddToPhysmap = "struct xen_add_to_physmap" { domid, size, space, idx, gpfn, }
        XenMemoryMap = "struct xen_memory_map" { nr_entries, buffer, }
        XenForeignMemoryMap = "struct xen_foreign_memory_map" { domid, map, }
        E820Entry = "struct boot_e820_entry" { addr, size, type_ => "type", }
        XenCompileInfo = "struct xen_compile_info" { compiler, compile_by, compile_domain, compile_date, }
        XenPlatformParameters = "struct xen_platform_parameters" { virt_start, }
        XenFeatureInfo = "struct xen_feature_info" { submap_idx, submap, }
        XenExtraversion = "xen_extraversion_t" {}
        XenCapabilitiesInfo = "xen_capabilities_info_t" {}
        XenChangesetInfo = "xen_changeset_info_t" {}
        XenCommandline = "xen_commandline_t" {}
        XenDomainHandle = "xen_domain_handle_t" {}
        CallbackRegister = "struct callback_register" { type_ => "type", flags, address, }
        CallbackUnregister = "struct callback_unregister" { type_ => "type", _unused, }
        PhysdevSetIopl = "struct physdev_set_iopl" { iopl, }
        GrantEntryV1 = "struct grant_entry_v1" { flags, domid, frame, }
        GnttabMapGrantRef = "struct gnttab_map_grant_ref" {
            host_addr, flags, ref_ => "ref", dom, status, handle, dev_bus_addr,
        }
        GnttabUnmapGrantRef = "struct gnttab_unmap_grant_ref" { host_addr, dev_bus_addr, handle, status, }
        GnttabUnmapAndReplace = "struct gnttab_unmap_and_replace" { host_addr, new_addr, handle, status, }
        GnttabSetupTable = "struct gnttab_setup_table" { dom, nr_frames, status, frame_list, }
        GnttabCopyPtr = "struct gnttab_copy_ptr" { u, domid, offset, }
        GnttabCopy = "struct gnttab_copy" {
            source, dest, len, flags, status, source.domid, dest.offset,
        }
        GnttabQuerySize = "struct gnttab_query_size" { dom, nr_frames, max_nr_frames, status, }
        GnttabSetVersion = "struct gnttab_set_version" { version, }
        GnttabGetVersion = "struct gnttab_get_version" { dom, pad, version, }
        GnttabGetStatusFrames = "struct gnttab_get_status_frames" { nr_frames, dom, status, frame_list, }
        BlkifRequestSegment = "struct blkif_request_segment" { gref, first_sect, last_sect, }
        BlkifRequest = "struct blkif_request" {
            operation, nr_segments, handle, id, sector_number, seg,
        }
        BlkifRequestDiscard = "struct blkif_request_discard" {
            operation, flag, handle, id, sector_number, nr_sectors,
        }
        BlkifRequestIndirect = "struct blkif_request_indirect" {
            operation, indirect_op, nr_segments, id, sector_number, handle, indirect_grefs,
        }
        BlkifResponse = "struct blkif_response" { id, operation, status, }
        XenconsInterface = "struct xencons_interface" {
            in_ => "in", out, in_cons, in_prod, out_cons, out_prod,
        }
        XenstoreDomainInterface = "struct xenstore_domain_interface" {
            req, rsp, req_cons, req_prod, rsp_cons, rsp_prod, server_features, connection, error,
        }
        XsdSockmsg = "struct xsd_sockmsg" { type_ => "type", req_id, tx_id, len, }
        XenDomctl = "struct xen_domctl" {
            cmd, interface_version, domain, _pad, u, u => "u.createdomain",
            u => "u.getdomaininfo", u => "u.max_mem", u => "u.vcpucontext", u => "u.max_vcpus",
        }
        XenArchDomainconfig = "struct xen_arch_domainconfig" { emulation_flags, misc_flags, }
        XenDomctlCreatedomain = "struct xen_domctl_createdomain" {
            ssidref, handle, flags, iommu_opts, max_vcpus, max_evtchn_port, max_grant_frames,
            max_maptrack_frames, grant_opts, vmtrace_size, cpupool_id, arch,
        }
        XenDomctlGetdomaininfo = "struct xen_domctl_getdomaininfo" {
            domain, pad1, flags, tot_pages, max_pages, outstanding_pages, shr_pages, paged_pages,
            shared_info_frame, cpu_time, nr_online_vcpus, max_vcpu_id, ssidref, handle, cpupool,
            gpaddr_bits, pad2, arch_config,
        }
        XenDomctlMaxMem = "struct xen_domctl_max_mem" { max_memkb, }
        XenDomctlVcpucontext = "struct xen_domctl_vcpucontext" { vcpu, ctxt, }
        XenDomctlMaxVcpus = "struct xen_domctl_max_vcpus" { max, }
        XenSysctl = "struct xen_sysctl" {
            cmd, interface_version, u, u => "u.physinfo", u => "u.getdomaininfolist",
        }
        XenSysctlPhysinfo = "struct xen_sysctl_physinfo" {
            threads_per_core, cores_per_socket, nr_cpus, max_cpu_id, nr_nodes, max_node_id,
            cpu_khz, capabilities, arch_capabilities, pad, total_pages, free_pages, scrub_pages,
            outstanding_pages, max_mfn, hw_cap,
        }
        XenSysctlGetdomaininfolist = "struct xen_sysctl_getdomaininfolist" {
            first_domain, max_domains, buffer, num_domains,
        }
    );
    // The shared ring header: C's struct ends in the entries, so its size is not ours; the
    // offsets, where the entries start and how many fit in one and in 16 pages are checked.
    for (field, offset) in [
        ("req_prod", offset_of!(SringHeader, req_prod)),
        ("req_event", offset_of!(SringHeader, req_event)),
        ("rsp_prod", offset_of!(SringHeader, rsp_prod)),
        ("rsp_event", offset_of!(SringHeader, rsp_event)),
        ("pvt", offset_of!(SringHeader, pvt)),
        ("__pad", offset_of!(SringHeader, pad)),
        ("ring", RING_ENTRIES_OFFSET),
    ] {
        c.push(
            format!("offsetof(struct blkif_sring, {field})"),
            format!("offsetof(struct blkif_sring, {field})"),
            offset as u64,
        );
    }
    for pages in [1usize, 16] {
        c.push(
            format!("__CONST_RING_SIZE(blkif, {pages} pages)"),
            format!("__CONST_RING_SIZE(blkif, {})", pages * 4096),
            u64::from(ring_size(pages * 4096, BLKIF_ENTRY_SIZE)),
        );
    }
    // The dom0 view of the start_info console union shares the domU `mfn` word.
    c.push(
        "offsetof(struct start_info, console.dom0.info_size)".into(),
        "offsetof(struct start_info, console.dom0.info_size)".into(),
        (offset_of!(StartInfo, console) + 4) as u64,
    );
    c.push(
        "offsetof(struct evtchn_status, u.interdomain.port)".into(),
        "offsetof(struct evtchn_status, u.interdomain.port)".into(),
        (offset_of!(EvtchnStatus, u) + 4) as u64,
    );

    enums!(c;
        Hypercall, Virq, MmuUpdateCmd, MmuextCmd, ConsoleIoCmd, VmAssistCmd, VmAssistType,
        EvtchnOp, EvtchnStat, SchedOp, ShutdownReason, VcpuOp, Runstate, MemoryOp, MapSpace,
        XenVersionOp, CallbackType, CallbackOp, PhysdevOp, GnttabOp, GntStatus, XenFeature,
        ElfNoteType, DomctlCmd, SysctlCmd,
    );
    flag_checks::<SifFlags, u32>(&mut c, "SIF_", same);
    flag_checks::<VgcfFlags, u64>(&mut c, "VGCF_", lower);
    flag_checks::<GtfFlags, u16>(&mut c, "GTF_", gtf_case);
    flag_checks::<CdfFlags, u32>(&mut c, "XEN_DOMCTL_CDF_", lower);
    flag_checks::<DominfFlags, u32>(&mut c, "XEN_DOMINF_", lower);

    consts!(c;
        XENSTORE_RING_SIZE, XENSTORE_PAYLOAD_MAX, XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX,
        XS_CONTROL, XS_DIRECTORY, XS_READ, XS_GET_PERMS, XS_WATCH, XS_UNWATCH,
        XS_TRANSACTION_START, XS_TRANSACTION_END, XS_INTRODUCE, XS_RELEASE, XS_GET_DOMAIN_PATH,
        XS_WRITE, XS_MKDIR, XS_RM, XS_SET_PERMS, XS_WATCH_EVENT, XS_ERROR,
        XS_IS_DOMAIN_INTRODUCED, XS_RESUME, XS_SET_TARGET, XS_RESET_WATCHES, XS_DIRECTORY_PART,
        XEN_LEGACY_MAX_VCPUS, MAX_GUEST_CMDLINE, NR_VIRQS,
        UVMF_NONE, UVMF_TLB_FLUSH, UVMF_INVLPG, UVMF_FLUSHTYPE_MASK, UVMF_MULTI, UVMF_LOCAL, UVMF_ALL,
        XEN_PVCLOCK_TSC_STABLE_BIT, XEN_PVCLOCK_GUEST_STOPPED,
        HYPERVISOR_VIRT_START, HYPERVISOR_VIRT_END, MACH2PHYS_VIRT_START, MACH2PHYS_VIRT_END,
        MACH2PHYS_NR_ENTRIES,
        FLAT_RING3_CS32, FLAT_RING3_CS64, FLAT_RING3_DS32, FLAT_RING3_DS64, FLAT_RING3_SS32,
        FLAT_RING3_SS64, FLAT_KERNEL_CS, FLAT_KERNEL_DS, FLAT_KERNEL_SS, FLAT_USER_CS,
        FLAT_USER_DS, FLAT_USER_SS,
        FIRST_RESERVED_GDT_PAGE, FIRST_RESERVED_GDT_BYTE, FIRST_RESERVED_GDT_ENTRY,
        SEGBASE_FS, SEGBASE_GS_USER, SEGBASE_GS_KERNEL, SEGBASE_GS_USER_SEL,
        EVTCHN_2L_NR_CHANNELS, BIND_PIRQ__WILL_SHARE,
        SHUTDOWN_MAX,
        VCPU_SSHOTTMR_FUTURE => "VCPU_SSHOTTMR_future", XEN_RUNSTATE_UPDATE,
        CALLBACKF_MASK_EVENTS => "CALLBACKF_mask_events",
        BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER, BLKIF_OP_FLUSH_DISKCACHE,
        BLKIF_OP_RESERVED_1, BLKIF_OP_DISCARD, BLKIF_OP_INDIRECT,
        BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_DISCARD_SECURE,
        BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
        VDISK_CDROM, VDISK_REMOVABLE, VDISK_READONLY,
        GNTTAB_NR_RESERVED_ENTRIES, GNTTAB_RESERVED_CONSOLE, GNTTAB_RESERVED_XENSTORE,
        GNTMAP_DEVICE_MAP => "GNTMAP_device_map", GNTMAP_HOST_MAP => "GNTMAP_host_map",
        GNTMAP_READONLY => "GNTMAP_readonly", GNTMAP_APPLICATION_MAP => "GNTMAP_application_map",
        GNTMAP_CONTAINS_PTE => "GNTMAP_contains_pte",
        GNTCOPY_SOURCE_GREF => "GNTCOPY_source_gref", GNTCOPY_DEST_GREF => "GNTCOPY_dest_gref",
        XENFEAT_NR_SUBMAPS, XEN_ELFNOTE_MAX,
        XENMEMF_EXACT_NODE_REQUEST => "XENMEMF_exact_node_request",
        XEN_DOMCTL_INTERFACE_VERSION,
        XEN_DOMINF_SHUTDOWNSHIFT => "XEN_DOMINF_shutdownshift",
        XEN_DOMINF_SHUTDOWNMASK => "XEN_DOMINF_shutdownmask",
        XEN_INVALID_MAX_VCPU_ID,
        XEN_SYSCTL_INTERFACE_VERSION,
        XEN_SYSCTL_PHYSCAP_HVM => "XEN_SYSCTL_PHYSCAP_hvm",
        XEN_SYSCTL_PHYSCAP_PV => "XEN_SYSCTL_PHYSCAP_pv",
        XEN_SYSCTL_PHYSCAP_DIRECTIO => "XEN_SYSCTL_PHYSCAP_directio",
        XEN_SYSCTL_PHYSCAP_GNTTAB_V1 => "XEN_SYSCTL_PHYSCAP_gnttab_v1",
    );
    for (rust, c_name) in [
        (DomId::FIRST_RESERVED, "DOMID_FIRST_RESERVED"),
        (DomId::SELF, "DOMID_SELF"),
        (DomId::IO, "DOMID_IO"),
        (DomId::XEN, "DOMID_XEN"),
        (DomId::COW, "DOMID_COW"),
        (DomId::INVALID, "DOMID_INVALID"),
        (DomId::IDLE, "DOMID_IDLE"),
        (DomId::MASK, "DOMID_MASK"),
    ] {
        c.constant(c_name, rust.0.into());
    }
    // Unions that Rust spells as plain bytes or words: their sizes.
    for (c_union, rust_size) in [
        ("((struct evtchn_status *)0)->u", size_of::<[u32; 2]>()),
        ("((struct xen_domctl *)0)->u", size_of::<Payload>()),
        ("((struct xen_sysctl *)0)->u", size_of::<Payload>()),
        (
            "((struct start_info *)0)->console",
            size_of::<StartInfoConsole>(),
        ),
        ("((struct mmuext_op *)0)->arg2", size_of::<u64>()),
    ] {
        c.constant(&format!("sizeof({c_union})"), rust_size as u64);
    }
    c
}

/// The constants `all_checks` lists without a C counterpart to compare them with.
const NOT_IN_HEADERS: &[&str] = &[
    // Page-table and page-size facts are architectural, not in Xen's public headers.
    "PAGE_SIZE",
    "PAGE_SHIFT",
    // Linux's E820 types (the probe checks the entry layout with Linux's header).
    "E820_RAM",
    "E820_RESERVED",
    // Payload sizes of the domctl/sysctl unions, checked through sizeof(u) above.
    "PAYLOAD_SIZE",
    // memory_op's continuation encoding: Xen's own (xen/include/xen/hypercall.h), not in the
    // public headers, though every guest sees it in the re-executed call.
    "MEMOP_EXTENT_SHIFT",
    "MEMOP_CMD_MASK",
    // The magic string and the layout of our own notes and boot layout.
    "START_INFO_MAGIC_X86_64",
    "REGION_ALIGN",
    "MIN_PADDING",
    "UPPER_TABLE_FLAGS",
    "PAGE_FLAGS",
    "PAGE_TABLE_PAGE_FLAGS",
    "INITIAL_RFLAGS",
    "MAX_LOAD_SEGMENTS",
    "ARG_REGISTERS",
    "CLOBBERED_REGISTERS",
    "RESULT_REGISTER",
    // The name every Xen ELF note carries.
    "XEN_NOTE_NAME",
    // Xen writes 32-byte stubs but no header names the size.
    "HYPERCALL_STUB_SIZE",
];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn probe_source(checks: &Checks) -> String {
    let mut src = String::from(
        "#define __XEN_TOOLS__ 1\n\
         #include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n\
         #include <xen/xen.h>\n#include <xen/event_channel.h>\n#include <xen/sched.h>\n\
         #include <xen/vcpu.h>\n#include <xen/memory.h>\n#include <xen/version.h>\n\
         #include <xen/callback.h>\n#include <xen/physdev.h>\n#include <xen/grant_table.h>\n\
         #include <xen/io/console.h>\n#include <xen/io/blkif.h>\n#include <xen/io/xs_wire.h>\n#include <xen/features.h>\n#include <xen/elfnote.h>\n\
         #include <xen/domctl.h>\n#include <xen/sysctl.h>\n#include <asm/bootparam.h>\n\
         int main(void) {\n",
    );
    for (i, check) in checks.list.iter().enumerate() {
        let expr = &check.c_expr;
        writeln!(
            src,
            "    printf(\"{i} %llu\\n\", (unsigned long long)({expr}));"
        )
        .unwrap();
    }
    // Every errno of the header, with the hypervisor-internal ones.
    src.push_str(
        "#define __XEN__ 1\n#define XEN_ERRNO(name, value) printf(\"errno %s %d\\n\", #name, value);\n\
         #include <xen/errno.h>\n#undef XEN_ERRNO\n#undef __XEN__\n    return 0;\n}\n",
    );
    src
}

/// Compiles and runs the probe; returns its output lines.
fn run_probe(source: &str) -> Vec<String> {
    assert!(
        Path::new(XEN_INCLUDE).join("xen.h").exists(),
        "Xen's public headers are missing: install libxen-dev (scripts/deps.sh does)"
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("abi-probe");
    std::fs::create_dir_all(&dir).unwrap();
    let (c_file, exe) = (dir.join("probe.c"), dir.join("probe"));
    std::fs::write(&c_file, source).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=gnu11", "-Wall", "-o"])
        .arg(&exe)
        .arg(&c_file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(
        out.status.success(),
        "probe does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn layouts_and_constants_match_xen_headers() {
    let checks = all_checks();
    let lines = run_probe(&probe_source(&checks));
    let mut mismatches = Vec::new();
    let mut seen = 0;
    let mut header_errno = BTreeMap::new();
    for line in &lines {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("errno"), Some(name), Some(value)) => {
                header_errno.insert(name.to_string(), value.parse::<i32>().unwrap());
            }
            (Some(index), Some(value), None) => {
                let check = &checks.list[index.parse::<usize>().unwrap()];
                let c_value: u64 = value.parse().unwrap();
                seen += 1;
                if c_value != check.rust {
                    mismatches.push(format!(
                        "{}: C {c_value:#x}, Rust {:#x}",
                        check.what, check.rust
                    ));
                }
            }
            _ => panic!("unexpected probe output {line:?}"),
        }
    }
    assert_eq!(seen, checks.list.len(), "the probe printed too few values");
    assert!(
        mismatches.is_empty(),
        "{} mismatches with Xen's headers:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    // errno: the same names and values both ways (EWOULDBLOCK and EDEADLOCK are aliases).
    for (name, value) in &header_errno {
        let rust = XenError::from_raw(*value)
            .unwrap_or_else(|| panic!("{name} = {value} is missing from XenError"));
        assert!(
            rust.c_name() == name || matches!(name.as_str(), "EWOULDBLOCK" | "EDEADLOCK"),
            "{name} vs {}",
            rust.c_name()
        );
    }
    for e in XenError::ALL {
        assert_eq!(
            header_errno.get(e.c_name()),
            Some(&e.errno()),
            "{}",
            e.c_name()
        );
    }
    assert_eq!(XenError::WOULD_BLOCK.errno(), header_errno["EWOULDBLOCK"]);
    assert_eq!(XenError::DEADLOCK.errno(), header_errno["EDEADLOCK"]);
}

/// The ABI modules' source files (the runtime's are not ABI).
fn source_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(crate_dir().join("src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    files
}

/// The `#[repr(C)]` structs of `src/` and their fields, read from the source text.
fn source_structs() -> BTreeMap<String, Vec<String>> {
    let mut structs = BTreeMap::new();
    for file in source_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut repr_c = false;
        let mut current: Option<(String, Vec<String>)> = None;
        for line in text.lines() {
            if line.starts_with("#[repr(C") {
                repr_c = true;
            } else if let Some(rest) = line.strip_prefix("pub struct ").filter(|_| repr_c) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                current = Some((name, Vec::new()));
                repr_c = false;
            } else if let Some((_, fields)) = current.as_mut() {
                if line == "}" {
                    let (name, fields) = current.take().unwrap();
                    structs.insert(name, fields);
                } else if let Some(field) = line
                    .trim()
                    .strip_prefix("pub ")
                    .and_then(|f| f.split(':').next())
                {
                    fields.push(field.trim().to_string());
                }
            } else if !line.starts_with("#[") {
                repr_c = false;
            }
        }
    }
    structs
}

#[test]
fn every_abi_struct_and_field_is_checked() {
    let checks = all_checks();
    // Our own note records are not Xen structs.
    let exempt = ["StrNote", "NumNote", "AddrNote"];
    let structs = source_structs();
    assert!(
        structs.len() > 40,
        "source scan found only {} structs",
        structs.len()
    );
    for (name, fields) in &structs {
        if exempt.contains(&name.as_str()) {
            continue;
        }
        assert!(
            checks.structs.contains(name),
            "struct {name} is not in the layout list"
        );
        for field in fields.iter().filter(|f| !f.starts_with("_hole")) {
            assert!(
                checks.fields.contains(&(name.clone(), field.clone())),
                "field {name}.{field} is not in the layout list"
            );
        }
    }
}

#[test]
fn every_constant_is_checked() {
    let checks = all_checks();
    let listed: BTreeSet<String> = checks.list.iter().map(|c| c.what.to_uppercase()).collect();
    for file in source_files() {
        let text = std::fs::read_to_string(file).unwrap();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("pub const ") else {
                continue;
            };
            let name = rest.split(':').next().unwrap().trim();
            if name.contains('(') || NOT_IN_HEADERS.contains(&name) {
                continue;
            }
            let upper = name.to_uppercase();
            // Listed either under its own name or under a C name that only differs in case.
            assert!(
                listed.contains(&upper),
                "constant {name} is not compared with the headers (list it, or in NOT_IN_HEADERS)"
            );
        }
    }
}

/// Names `#define`d with a plain decimal value and the given prefix, optionally only
/// between two marker lines of the header.
fn header_names(header: &str, prefix: &str, region: Option<(&str, &str)>) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(XEN_INCLUDE).join(header)).unwrap();
    let mut inside = region.is_none();
    let mut names = Vec::new();
    for line in text.lines() {
        if let Some((start, end)) = region {
            if line.contains(start) {
                inside = true;
            } else if line.contains(end) {
                inside = false;
            }
        }
        let Some(rest) = line.trim_start().strip_prefix("#define ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        if inside && name.starts_with(prefix) && value.parse::<u64>().is_ok() {
            names.push(name.to_string());
        }
    }
    names
}

/// (header, prefix, region markers, Rust's C names, header names Rust leaves out).
type HeaderCase<'a> = (
    &'a str,
    &'a str,
    Option<(&'a str, &'a str)>,
    BTreeSet<String>,
    &'a [&'a str],
);

macro_rules! rust_names {
    ($e:ty) => {
        <$e>::ALL
            .iter()
            .map(|v| v.c_name().to_string())
            .collect::<BTreeSet<String>>()
    };
}

#[test]
fn every_hypercall_and_sub_op_number_of_the_headers_exists() {
    let struct_region = |s| Some((s, "interface_version"));
    let cases: Vec<HeaderCase> = vec![
        ("xen.h", "__HYPERVISOR_", None, rust_names!(Hypercall), &[]),
        ("xen.h", "VIRQ_", None, rust_names!(Virq), &[]),
        ("xen.h", "MMU_", None, rust_names!(MmuUpdateCmd), &[]),
        ("xen.h", "MMUEXT_", None, rust_names!(MmuextCmd), &[]),
        ("xen.h", "CONSOLEIO_", None, rust_names!(ConsoleIoCmd), &[]),
        ("xen.h", "VMASST_CMD_", None, rust_names!(VmAssistCmd), &[]),
        (
            "xen.h",
            "VMASST_TYPE_",
            None,
            rust_names!(VmAssistType),
            &[],
        ),
        (
            "event_channel.h",
            "EVTCHNOP_",
            None,
            rust_names!(EvtchnOp),
            &["EVTCHNOP_reset_cont"],
        ),
        (
            "event_channel.h",
            "EVTCHNSTAT_",
            None,
            rust_names!(EvtchnStat),
            &[],
        ),
        ("sched.h", "SCHEDOP_", None, rust_names!(SchedOp), &[]),
        (
            "sched.h",
            "SHUTDOWN_",
            None,
            rust_names!(ShutdownReason),
            &["SHUTDOWN_MAX"],
        ),
        ("vcpu.h", "VCPUOP_", None, rust_names!(VcpuOp), &[]),
        ("vcpu.h", "RUNSTATE_", None, rust_names!(Runstate), &[]),
        ("version.h", "XENVER_", None, rust_names!(XenVersionOp), &[]),
        (
            "callback.h",
            "CALLBACKTYPE_",
            None,
            rust_names!(CallbackType),
            &[],
        ),
        (
            "callback.h",
            "CALLBACKOP_",
            None,
            rust_names!(CallbackOp),
            &[],
        ),
        (
            "physdev.h",
            "PHYSDEVOP_",
            None,
            rust_names!(PhysdevOp),
            &[
                "PHYSDEVOP_DBGP_RESET_PREPARE",
                "PHYSDEVOP_DBGP_RESET_DONE",
                "PHYSDEVOP_DBGP_BUS_UNKNOWN",
                "PHYSDEVOP_DBGP_BUS_PCI",
            ],
        ),
        (
            "grant_table.h",
            "GNTTABOP_",
            None,
            rust_names!(GnttabOp),
            &[],
        ),
        // grant_map_identity is defined inside a comment (deprecated).
        (
            "features.h",
            "XENFEAT_",
            None,
            rust_names!(XenFeature),
            &["XENFEAT_NR_SUBMAPS", "XENFEAT_grant_map_identity"],
        ),
        (
            "elfnote.h",
            "XEN_ELFNOTE_",
            None,
            rust_names!(ElfNoteType),
            &[],
        ),
        ("memory.h", "XENMAPSPACE_", None, rust_names!(MapSpace), &[]),
        (
            "domctl.h",
            "XEN_DOMCTL_",
            struct_region("struct xen_domctl {"),
            rust_names!(DomctlCmd),
            &["XEN_DOMCTL_soft_reset_cont"],
        ),
        (
            "sysctl.h",
            "XEN_SYSCTL_",
            struct_region("struct xen_sysctl {"),
            rust_names!(SysctlCmd),
            &[],
        ),
    ];
    let mut missing = Vec::new();
    for (header, prefix, region, rust, exempt) in cases {
        let names = header_names(header, prefix, region);
        assert!(!names.is_empty(), "no {prefix}* found in {header}");
        missing.extend(
            names
                .into_iter()
                .filter(|n| !rust.contains(n) && !exempt.contains(&n.as_str())),
        );
    }
    // XENMEM_ sub-ops: the header also defines sub-sub-op numbers with the same prefix.
    let sub_sub = [
        "XENMEM_paging_op_",
        "XENMEM_access_op_",
        "XENMEM_sharing_op_",
        "XENMEM_resource_",
        "XENMEM_RDM_ALL",
    ];
    let mem = rust_names!(MemoryOp);
    missing.extend(
        header_names("memory.h", "XENMEM_", None)
            .into_iter()
            .filter(|n| !mem.contains(n) && !sub_sub.iter().any(|s| n.starts_with(s))),
    );
    assert!(
        missing.is_empty(),
        "defined in the headers but not in guest-abi: {missing:?}"
    );
}
