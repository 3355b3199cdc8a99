//! The table of domains.

/// The name `list` gives dom0, as xl does.
pub const DOM0_NAME: &str = "Domain-0";
