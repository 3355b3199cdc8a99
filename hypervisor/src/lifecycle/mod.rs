//! Domain lifecycle logic that does not depend on the machine: how a domain is created
//! (its limits, its steps and their undoing), host-tested over fakes.

pub mod create;
