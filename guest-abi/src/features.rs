//! Feature flags (`features.h`): what the hypervisor offers (`XENVER_get_features`) and
//! what a kernel supports or requires (`XEN_ELFNOTE_FEATURES`,
//! `XEN_ELFNOTE_SUPPORTED_FEATURES`).

use crate::macros::xen_enum;

/// `XENFEAT_NR_SUBMAPS`: 32-bit feature submaps.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

xen_enum! {
    /// A feature bit number (`XENFEAT_*`).
    pub enum XenFeature: u32, prefix "XENFEAT_" {
        /// The guest may write its page tables directly.
        WritablePageTables = 0 => "writable_page_tables",
        /// The guest may write its descriptor tables directly.
        WritableDescriptorTables = 1 => "writable_descriptor_tables",
        /// The guest sees pseudo-physical addresses in its page tables.
        AutoTranslatedPhysmap = 2 => "auto_translated_physmap",
        /// The guest kernel runs in ring 0.
        SupervisorModeKernel = 3 => "supervisor_mode_kernel",
        /// PAE page directories may be above 4GB.
        PaePgdirAbove4gb = 4 => "pae_pgdir_above_4gb",
        /// `MMU_PT_UPDATE_PRESERVE_AD` is available.
        MmuPtUpdatePreserveAd = 5 => "mmu_pt_update_preserve_ad",
        /// Highmem assist (x86-32).
        HighmemAssist = 6 => "highmem_assist",
        /// Grant maps may use the available PTE bits.
        GnttabMapAvailBits = 7 => "gnttab_map_avail_bits",
        /// HVM: event callback via a vector.
        HvmCallbackVector = 8 => "hvm_callback_vector",
        /// HVM: safe pvclock.
        HvmSafePvclock = 9 => "hvm_safe_pvclock",
        /// HVM: PIRQs.
        HvmPirqs = 10 => "hvm_pirqs",
        /// The kernel can run as dom0.
        Dom0 = 11 => "dom0",
        /// vNUMA memory ops are supported.
        MemoryOpVnodeSupported = 13 => "memory_op_vnode_supported",
        /// Arm SMCCC is supported.
        ArmSmcccSupported = 14 => "ARM_SMCCC_supported",
        /// Linux may use an unrestricted RSDP.
        LinuxRsdpUnrestricted = 15 => "linux_rsdp_unrestricted",
        /// The domain is not direct-mapped (Arm).
        NotDirectMapped = 16 => "not_direct_mapped",
        /// The domain is direct-mapped (Arm).
        DirectMapped = 17 => "direct_mapped",
    }
}

impl XenFeature {
    /// This feature's bit in a submap.
    pub const fn bit(self) -> u32 {
        1 << (self as u32 % 32)
    }

    /// The feature named so in a `XEN_ELFNOTE_FEATURES` string (Xen's loader knows these).
    pub fn from_note_name(name: &[u8]) -> Option<Self> {
        const NAMED: [XenFeature; 7] = [
            XenFeature::WritablePageTables,
            XenFeature::WritableDescriptorTables,
            XenFeature::AutoTranslatedPhysmap,
            XenFeature::SupervisorModeKernel,
            XenFeature::PaePgdirAbove4gb,
            XenFeature::HvmCallbackVector,
            XenFeature::Dom0,
        ];
        NAMED
            .into_iter()
            .find(|f| f.c_name().as_bytes()["XENFEAT_".len()..] == *name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_names() {
        assert_eq!(XenFeature::from_note_name(b"dom0"), Some(XenFeature::Dom0));
        assert_eq!(
            XenFeature::from_note_name(b"writable_page_tables"),
            Some(XenFeature::WritablePageTables)
        );
        assert_eq!(XenFeature::from_note_name(b"highmem_assist"), None);
        assert_eq!(XenFeature::Dom0.bit(), 1 << 11);
    }
}
