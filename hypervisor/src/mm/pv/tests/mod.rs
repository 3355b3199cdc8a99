//! Host tests of the PV MMU over the shared fake machine and reference checker
//! (`mm::pv::fake`): unit tests for each rule and operation, and property
//! tests over random operation sequences on several domains.

mod exchange;
mod fake;
mod grants;
mod memory;
mod ops;
mod prop;
mod rules;
