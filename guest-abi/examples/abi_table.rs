//! Prints the skeleton of `docs/ABI.md`: every hypercall and sub-op guest-abi defines, with
//! the struct it takes. The doc was generated with this once and is edited by hand since
//! (the hypervisor and test columns); `tests/abi_doc.rs` checks that it still lists every
//! number.
//!
//! ```text
//! cargo run -p guest-abi --example abi_table
//! ```

use guest_abi::callback::{CallbackOp, CallbackType, PhysdevOp};
use guest_abi::domctl::DomctlCmd;
use guest_abi::event_channel::EvtchnOp;
use guest_abi::grant_table::GnttabOp;
use guest_abi::hypercall::Hypercall;
use guest_abi::memory::MemoryOp;
use guest_abi::sched::{SchedOp, ShutdownReason};
use guest_abi::sysctl::SysctlCmd;
use guest_abi::vcpu::VcpuOp;
use guest_abi::version::XenVersionOp;
use guest_abi::xen::{ConsoleIoCmd, MmuUpdateCmd, MmuextCmd, VmAssistCmd, VmAssistType};

/// The guest-abi type of a call's argument, where guest-abi defines one.
fn arg_type(c_name: &str) -> &'static str {
    match c_name {
        "__HYPERVISOR_set_trap_table" => "`TrapInfo[]`",
        "__HYPERVISOR_mmu_update" => "`MmuUpdate[]`",
        "__HYPERVISOR_mmuext_op" => "`MmuextOp[]`",
        "__HYPERVISOR_multicall" => "`MulticallEntry[]`",
        "__HYPERVISOR_domctl" => "`XenDomctl`",
        "__HYPERVISOR_sysctl" => "`XenSysctl`",
        "EVTCHNOP_bind_interdomain" => "`EvtchnBindInterdomain`",
        "EVTCHNOP_bind_virq" => "`EvtchnBindVirq`",
        "EVTCHNOP_bind_pirq" => "`EvtchnBindPirq`",
        "EVTCHNOP_close" => "`EvtchnClose`",
        "EVTCHNOP_send" => "`EvtchnSend`",
        "EVTCHNOP_status" => "`EvtchnStatus`",
        "EVTCHNOP_alloc_unbound" => "`EvtchnAllocUnbound`",
        "EVTCHNOP_bind_ipi" => "`EvtchnBindIpi`",
        "EVTCHNOP_bind_vcpu" => "`EvtchnBindVcpu`",
        "EVTCHNOP_unmask" => "`EvtchnUnmask`",
        "EVTCHNOP_reset" => "`EvtchnReset`",
        "SCHEDOP_shutdown" | "SCHEDOP_shutdown_code" => "`SchedShutdown`",
        "SCHEDOP_poll" => "`SchedPoll`",
        "SCHEDOP_remote_shutdown" => "`SchedRemoteShutdown`",
        "SCHEDOP_watchdog" => "`SchedWatchdog`",
        "SCHEDOP_pin_override" => "`SchedPinOverride`",
        "VCPUOP_initialise" => "`VcpuGuestContext`",
        "VCPUOP_get_runstate_info" => "`VcpuRunstateInfo`",
        "VCPUOP_register_runstate_memory_area" | "VCPUOP_register_vcpu_time_memory_area" => {
            "`VcpuRegisterMemoryArea`"
        }
        "VCPUOP_set_periodic_timer" => "`VcpuSetPeriodicTimer`",
        "VCPUOP_set_singleshot_timer" => "`VcpuSetSingleshotTimer`",
        "VCPUOP_register_vcpu_info" => "`VcpuRegisterVcpuInfo`",
        "VCPUOP_get_physid" => "`VcpuGetPhysid`",
        "XENMEM_increase_reservation"
        | "XENMEM_decrease_reservation"
        | "XENMEM_populate_physmap" => "`XenMemoryReservation`",
        "XENMEM_machphys_mapping" => "`XenMachphysMapping`",
        "XENMEM_add_to_physmap" => "`XenAddToPhysmap`",
        "XENMEM_memory_map" | "XENMEM_machine_memory_map" => "`XenMemoryMap` + `E820Entry[]`",
        "XENMEM_set_memory_map" => "`XenForeignMemoryMap`",
        "XENVER_compile_info" => "`XenCompileInfo`",
        "XENVER_platform_parameters" => "`XenPlatformParameters`",
        "XENVER_get_features" => "`XenFeatureInfo`",
        "XENVER_extraversion" => "`XenExtraversion`",
        "XENVER_capabilities" => "`XenCapabilitiesInfo`",
        "XENVER_changeset" => "`XenChangesetInfo`",
        "XENVER_commandline" => "`XenCommandline`",
        "XENVER_guest_handle" => "`XenDomainHandle`",
        "CALLBACKOP_register" => "`CallbackRegister`",
        "CALLBACKOP_unregister" => "`CallbackUnregister`",
        "PHYSDEVOP_set_iopl" => "`PhysdevSetIopl`",
        "GNTTABOP_map_grant_ref" => "`GnttabMapGrantRef`",
        "GNTTABOP_unmap_grant_ref" => "`GnttabUnmapGrantRef`",
        "GNTTABOP_setup_table" => "`GnttabSetupTable`",
        "GNTTABOP_query_size" => "`GnttabQuerySize`",
        "XEN_DOMCTL_createdomain" => "`XenDomctlCreatedomain`",
        "XEN_DOMCTL_getdomaininfo" => "`XenDomctlGetdomaininfo`",
        "XEN_DOMCTL_max_mem" => "`XenDomctlMaxMem`",
        "XEN_DOMCTL_setvcpucontext" | "XEN_DOMCTL_getvcpucontext" => "`XenDomctlVcpucontext`",
        "XEN_DOMCTL_max_vcpus" => "`XenDomctlMaxVcpus`",
        "XEN_DOMCTL_destroydomain" | "XEN_DOMCTL_pausedomain" | "XEN_DOMCTL_unpausedomain" => {
            "(none)"
        }
        "XEN_SYSCTL_physinfo" => "`XenSysctlPhysinfo`",
        "XEN_SYSCTL_getdomaininfolist" => "`XenSysctlGetdomaininfolist`",
        _ => "",
    }
}

/// Where the real-Xen tests exercise a call today.
fn xen_test(c_name: &str) -> &'static str {
    match c_name {
        "__HYPERVISOR_console_io" | "CONSOLEIO_write" => "hello (xen-tests.sh)",
        "__HYPERVISOR_sched_op" | "SCHEDOP_shutdown" => "hello (xen-tests.sh)",
        "SHUTDOWN_poweroff" | "SHUTDOWN_crash" | "SHUTDOWN_reboot" => "hello (xen-tests.sh)",
        "__HYPERVISOR_xen_version" | "XENVER_version" | "XENVER_get_features" => {
            "hello (xen-tests.sh)"
        }
        "__HYPERVISOR_memory_op" | "XENMEM_machphys_mapping" => "hello (xen-tests.sh)",
        "__HYPERVISOR_event_channel_op" | "EVTCHNOP_bind_virq" | "EVTCHNOP_close" => {
            "hello (xen-tests.sh)"
        }
        "__HYPERVISOR_fpu_taskswitch" => "hello (xen-tests.sh)",
        "__HYPERVISOR_arch_7" => "hello: -ENOSYS (xen-tests.sh)",
        _ => "",
    }
}

fn table(title: &str, rows: impl Iterator<Item = (&'static str, i64)>) {
    println!("\n### {title}\n");
    println!("| name | number | guest-abi | argument | hypervisor | tests |");
    println!("|---|---|---|---|---|---|");
    for (name, number) in rows {
        let tests = match xen_test(name) {
            "" => "abi_layout".to_string(),
            xen => format!("abi_layout, {xen}"),
        };
        println!(
            "| `{name}` | {number} | defined | {} | — | {tests} |",
            arg_type(name)
        );
    }
}

macro_rules! rows {
    ($e:ty) => {
        <$e>::ALL.iter().map(|v| (v.c_name(), *v as i64))
    };
}

fn main() {
    println!("# ABI coverage");
    table("Hypercalls (`__HYPERVISOR_*`)", rows!(Hypercall));
    table("`mmu_update` commands (`ptr & 3`)", rows!(MmuUpdateCmd));
    table("`mmuext_op` commands", rows!(MmuextCmd));
    table("`console_io` commands", rows!(ConsoleIoCmd));
    table("`vm_assist` commands", rows!(VmAssistCmd));
    table("`vm_assist` types", rows!(VmAssistType));
    table("`event_channel_op` sub-ops", rows!(EvtchnOp));
    table("`sched_op` sub-ops", rows!(SchedOp));
    table("`SCHEDOP_shutdown` reasons", rows!(ShutdownReason));
    table("`vcpu_op` sub-ops", rows!(VcpuOp));
    table("`memory_op` sub-ops", rows!(MemoryOp));
    table("`xen_version` sub-ops", rows!(XenVersionOp));
    table("`callback_op` sub-ops", rows!(CallbackOp));
    table("`callback_op` callback types", rows!(CallbackType));
    table("`physdev_op` sub-ops", rows!(PhysdevOp));
    table("`grant_table_op` sub-ops", rows!(GnttabOp));
    table(
        "`domctl` commands (interface version 0x15)",
        rows!(DomctlCmd),
    );
    table(
        "`sysctl` commands (interface version 0x15)",
        rows!(SysctlCmd),
    );
}
