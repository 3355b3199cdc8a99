//! Host tests of the PV MMU: a fake machine of a few hundred frames, a reference model that
//! recomputes every count from scratch, unit tests for each rule and operation, and property
//! tests over random operation sequences on several domains.

mod fake;
mod memory;
mod model;
mod ops;
mod prop;
mod rules;
