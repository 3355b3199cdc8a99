//! The PV MMU (`hypervisor::mm::pv`): random sequences of `mmu_update`, `mmuext_op`,
//! `update_va_mapping[_otherdomain]`, reservation operations, direct writes, destruction and
//! `get_page_and_type` over three domains (one privileged, one with superpages), with every
//! invariant recomputed from scratch after each step (`hypervisor::mm::pv::fake::check::check_with`), a failed single
//! request required to change nothing, and type changes and frees required to report a flush.
#![no_main]

use fuzz::mmu::{Machine, Op};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|ops: Vec<Op>| {
    let mut m = Machine::new();
    for op in ops.iter().take(64) {
        m.apply(op);
    }
});
