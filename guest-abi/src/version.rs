//! `xen_version` (`version.h`): `XENVER_*` and their result types.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::macros::xen_enum;

xen_enum! {
    /// `xen_version` sub-ops.
    pub enum XenVersionOp: u32, prefix "XENVER_" {
        /// `(major << 16) | minor` as the return value.
        Version = 0 => "version",
        /// Extra version string (`xen_extraversion_t`).
        Extraversion = 1 => "extraversion",
        /// Compiler information (`xen_compile_info`).
        CompileInfo = 2 => "compile_info",
        /// Capabilities string (`xen_capabilities_info_t`).
        Capabilities = 3 => "capabilities",
        /// Changeset string.
        Changeset = 4 => "changeset",
        /// Platform parameters (`xen_platform_parameters`).
        PlatformParameters = 5 => "platform_parameters",
        /// A feature submap (`xen_feature_info`).
        GetFeatures = 6 => "get_features",
        /// Page size as the return value.
        Pagesize = 7 => "pagesize",
        /// The domain's handle (`xen_domain_handle_t`).
        GuestHandle = 8 => "guest_handle",
        /// Xen's command line.
        Commandline = 9 => "commandline",
        /// Build id.
        BuildId = 10 => "build_id",
    }
}

/// `xen_extraversion_t`.
pub type XenExtraversion = [u8; 16];
/// `xen_capabilities_info_t`.
pub type XenCapabilitiesInfo = [u8; 1024];
/// `xen_changeset_info_t`.
pub type XenChangesetInfo = [u8; 64];
/// `xen_commandline_t`.
pub type XenCommandline = [u8; 1024];
/// `xen_domain_handle_t`.
pub type XenDomainHandle = [u8; 16];

/// `struct xen_compile_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XenCompileInfo {
    /// Compiler.
    pub compiler: [u8; 64],
    /// Built by.
    pub compile_by: [u8; 16],
    /// Build domain.
    pub compile_domain: [u8; 32],
    /// Build date.
    pub compile_date: [u8; 32],
}

/// `struct xen_platform_parameters`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenPlatformParameters {
    /// Start of the hypervisor's virtual range.
    pub virt_start: u64,
}

/// `struct xen_feature_info`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenFeatureInfo {
    /// IN: which 32-feature submap.
    pub submap_idx: u32,
    /// OUT: its bits ([`XenFeature`](crate::XenFeature) numbers).
    pub submap: u32,
}
