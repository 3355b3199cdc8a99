//! The capability to act as the privileged domain (dom0, `SIF_PRIVILEGED | SIF_INITDOMAIN`): a
//! value, not a flag. A domain's record holds one only if it is dom0 ([`Privilege`] is minted
//! where dom0 is built and nowhere else outside tests), and what only dom0 may do takes it as
//! an argument (`console_io` read, port I/O, acting on another domain's event channels), so
//! that code cannot reach such an operation without having been handed the proof.
//!
//! The checks themselves stay where Xen makes them (after the checks Xen makes first, such as
//! the interface version or the target domain's existence), each asking the caller's record
//! for its [`Privilege`].

/// Proof that the caller is the privileged domain. Zero-sized and `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Privilege(());

impl Privilege {
    /// The hardware domain's privilege: for dom0's record, when dom0 is built (and for the
    /// test doubles that stand for it). Nothing else mints one.
    #[cfg_attr(
        not(any(target_os = "none", test, feature = "test-doubles")),
        allow(dead_code)
    )]
    pub(crate) const fn hardware_domain() -> Self {
        Self(())
    }
}
