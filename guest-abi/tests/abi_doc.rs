//! `docs/ABI.md` lists every hypercall and sub-op number guest-abi defines.

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

macro_rules! rows {
    ($($e:ty),*) => {{
        let mut v: Vec<(&'static str, i64)> = Vec::new();
        $( v.extend(<$e>::ALL.iter().map(|x| (x.c_name(), *x as i64))); )*
        v
    }};
}

#[test]
fn abi_doc_lists_every_number() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ABI.md");
    let doc = std::fs::read_to_string(path).expect("docs/ABI.md exists");
    let all = rows!(
        Hypercall,
        MmuUpdateCmd,
        MmuextCmd,
        ConsoleIoCmd,
        VmAssistCmd,
        VmAssistType,
        EvtchnOp,
        SchedOp,
        ShutdownReason,
        VcpuOp,
        MemoryOp,
        XenVersionOp,
        CallbackOp,
        CallbackType,
        PhysdevOp,
        GnttabOp,
        DomctlCmd,
        SysctlCmd
    );
    let missing: Vec<_> = all
        .iter()
        .filter(|(name, number)| !doc.contains(&format!("| `{name}` | {number} |")))
        .collect();
    assert!(missing.is_empty(), "docs/ABI.md lacks rows for {missing:?}");
}
