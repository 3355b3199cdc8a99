//! Test doubles shared by the host tests and `fuzz/` (built for `cfg(test)` and with the
//! `test-doubles` feature, never for the bare-metal kernel): [`host`], a fake machine for the
//! hypercall handlers, and [`pv_mmu`], the PV MMU's fake frame store, pool, M2P and reference
//! checker (which live in `mm::pv::fake`, next to what they reach into).

pub mod host;

pub use crate::mm::pv::fake as pv_mmu;
