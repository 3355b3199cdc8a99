//! Who may make the calls that reach across domains (`domctl`, `sysctl`,
//! `SCHEDOP_remote_shutdown`), checked in Xen's order, which a guest can observe: the interface
//! version first (`-EACCES` for everyone), then whether a named domain exists (`-ESRCH`, even
//! for a caller that may not use the call), then the caller's privilege (`-EPERM`), then the
//! command (`-ENOSYS`). What passes comes with the caller's [`Privilege`], which the machine's
//! handlers take as their proof.
//!
//! Pure: the machine answers "does this domain exist" through a closure, so the order is
//! host-tested and fuzzed without one.

use super::DomainInfo;
use crate::privilege::Privilege;
use guest_abi::XenError;
use guest_abi::domctl::{DomctlCmd, XEN_DOMCTL_INTERFACE_VERSION};
use guest_abi::sysctl::{SysctlCmd, XEN_SYSCTL_INTERFACE_VERSION};

/// A `domctl` the caller may make: its command and the caller's privilege.
pub fn domctl(
    caller: &DomainInfo,
    interface_version: u32,
    cmd: u32,
    domain: u16,
    exists: impl FnOnce(u16) -> bool,
) -> Result<(DomctlCmd, Privilege), XenError> {
    if interface_version != XEN_DOMCTL_INTERFACE_VERSION {
        return Err(XenError::Acces);
    }
    let Some(privilege) = caller.privilege else {
        let names_a_domain = cmd != DomctlCmd::Createdomain.raw();
        return Err(if names_a_domain && !exists(domain) {
            XenError::Srch
        } else {
            XenError::Perm
        });
    };
    Ok((DomctlCmd::try_from(cmd)?, privilege))
}

/// A `sysctl` the caller may make: its command and the caller's privilege.
pub fn sysctl(
    caller: &DomainInfo,
    interface_version: u32,
    cmd: u32,
) -> Result<(SysctlCmd, Privilege), XenError> {
    if interface_version != XEN_SYSCTL_INTERFACE_VERSION {
        return Err(XenError::Acces);
    }
    let privilege = caller.privilege.ok_or(XenError::Perm)?;
    Ok((SysctlCmd::try_from(cmd)?, privilege))
}

/// A `SCHEDOP_remote_shutdown` of `domain` the caller may make: the caller's privilege (Xen
/// looks the domain up before the privilege check).
pub fn remote_shutdown(
    caller: &DomainInfo,
    domain: u16,
    exists: impl FnOnce(u16) -> bool,
) -> Result<Privilege, XenError> {
    if !exists(domain) {
        return Err(XenError::Srch);
    }
    caller.privilege.ok_or(XenError::Perm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::host::domain_info;

    const V: u32 = XEN_DOMCTL_INTERFACE_VERSION;
    const GETDOMAININFO: u32 = 5;
    const CREATE: u32 = 1;

    #[test]
    fn domctl_checks_in_xens_order() {
        let (dom0, domu) = (domain_info(true), domain_info(false));
        let exists = |d: u16| d < 3;
        // The version first, for everyone.
        assert_eq!(domctl(&domu, V - 1, 999, 77, exists), Err(XenError::Acces));
        assert_eq!(
            domctl(&dom0, V - 1, GETDOMAININFO, 1, exists),
            Err(XenError::Acces)
        );
        // An unprivileged caller naming a missing domain: ESRCH before EPERM...
        assert_eq!(
            domctl(&domu, V, GETDOMAININFO, 77, exists),
            Err(XenError::Srch)
        );
        assert_eq!(
            domctl(&domu, V, GETDOMAININFO, 1, exists),
            Err(XenError::Perm)
        );
        // ... except createdomain, which names none; and unknown commands are EPERM too.
        assert_eq!(domctl(&domu, V, CREATE, 77, exists), Err(XenError::Perm));
        assert_eq!(domctl(&domu, V, 999, 1, exists), Err(XenError::Perm));
        // dom0: the command decides.
        assert!(matches!(
            domctl(&dom0, V, GETDOMAININFO, 77, exists),
            Ok((DomctlCmd::Getdomaininfo, _))
        ));
        assert_eq!(
            domctl(&dom0, V, 999, 1, exists).map(|_| ()),
            Err(XenError::NoSys)
        );
    }

    #[test]
    fn sysctl_and_remote_shutdown_check_in_xens_order() {
        let (dom0, domu) = (domain_info(true), domain_info(false));
        let sv = XEN_SYSCTL_INTERFACE_VERSION;
        assert_eq!(sysctl(&domu, sv + 1, 999).map(|_| ()), Err(XenError::Acces));
        assert_eq!(sysctl(&domu, sv, 3).map(|_| ()), Err(XenError::Perm));
        assert_eq!(sysctl(&dom0, sv, 999).map(|_| ()), Err(XenError::NoSys));
        let exists = |d: u16| d == 1;
        assert_eq!(remote_shutdown(&domu, 9, exists), Err(XenError::Srch));
        assert_eq!(remote_shutdown(&domu, 1, exists), Err(XenError::Perm));
        assert!(remote_shutdown(&dom0, 1, exists).is_ok());
        assert_eq!(remote_shutdown(&dom0, 9, exists), Err(XenError::Srch));
    }
}
