//! `xen_version`: the interface version and what the hypervisor offers. We report Xen 4.17's
//! interface, since that is the ABI we implement.

use super::{Ctx, HcResult, Host};
use crate::mm::layout::HYPERVISOR_VIRT_START;
use crate::pv::guest_mem::GuestMemory;
use guest_abi::XenError;
use guest_abi::features::XenFeature;
use guest_abi::version::{XenCompileInfo, XenFeatureInfo, XenPlatformParameters, XenVersionOp};
use zerocopy::FromZeros;

use crate::{XEN_MAJOR, XEN_MINOR};
const EXTRAVERSION: &[u8] = b".0-rs";
const CAPABILITIES: &[u8] = b"xen-3.0-x86_64 ";
const CHANGESET: &[u8] = b"unavailable";

/// Copies `s` into a fixed-size, NUL-terminated guest string buffer.
fn fixed<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = s.len().min(N - 1);
    out[..n].copy_from_slice(&s[..n]);
    out
}

/// The feature bits of submap `index` for a 64-bit PV domain, as Xen 4.17 reports them.
pub fn features(index: u32, privileged: bool, vm_assist: u64) -> u32 {
    if index != 0 {
        return 0;
    }
    let bit = |f: XenFeature| 1u32 << f.raw();
    let mut map = bit(XenFeature::MemoryOpVnodeSupported)
        | bit(XenFeature::MmuPtUpdatePreserveAd)
        | bit(XenFeature::HighmemAssist)
        | bit(XenFeature::GnttabMapAvailBits);
    if vm_assist & (1 << guest_abi::xen::VmAssistType::PaeExtendedCr3.raw()) != 0 {
        map |= bit(XenFeature::PaePgdirAbove4gb);
    }
    if privileged {
        map |= bit(XenFeature::Dom0);
    }
    map
}

pub fn xen_version<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    cmd: u64,
    arg: u64,
) -> HcResult {
    let cmd = u32::try_from(cmd).map_err(|_| XenError::NoSys)?;
    match XenVersionOp::try_from(cmd)? {
        XenVersionOp::Version => Ok((XEN_MAJOR << 16) | XEN_MINOR),
        XenVersionOp::Extraversion => {
            ctx.mem.write_obj(arg, &fixed::<16>(EXTRAVERSION))?;
            Ok(0)
        }
        XenVersionOp::CompileInfo => {
            let info = XenCompileInfo {
                compiler: fixed(b"rustc"),
                compile_by: fixed(b"hypervisor"),
                compile_domain: fixed(b"localdomain"),
                compile_date: fixed(b"unknown"),
            };
            ctx.mem.write_obj(arg, &info)?;
            Ok(0)
        }
        XenVersionOp::Capabilities => {
            ctx.mem.write_obj(arg, &fixed::<1024>(CAPABILITIES))?;
            Ok(0)
        }
        XenVersionOp::Changeset => {
            ctx.mem.write_obj(arg, &fixed::<64>(CHANGESET))?;
            Ok(0)
        }
        XenVersionOp::PlatformParameters => {
            ctx.mem.write_obj(
                arg,
                &XenPlatformParameters {
                    virt_start: HYPERVISOR_VIRT_START,
                },
            )?;
            Ok(0)
        }
        XenVersionOp::GetFeatures => {
            let mut fi: XenFeatureInfo = ctx.mem.read_obj(arg)?;
            // Xen defines one submap (XENFEAT_NR_SUBMAPS).
            if fi.submap_idx != 0 {
                return Err(XenError::Inval);
            }
            fi.submap = features(
                fi.submap_idx,
                ctx.domain.privilege.is_some(),
                ctx.domain.vm_assist,
            );
            ctx.mem.write_obj(arg, &fi)?;
            Ok(0)
        }
        XenVersionOp::Pagesize => Ok(4096),
        XenVersionOp::GuestHandle => {
            ctx.mem.write_obj(arg, &ctx.domain.handle)?;
            Ok(0)
        }
        XenVersionOp::Commandline => {
            if ctx.domain.privilege.is_none() {
                return Err(XenError::Perm);
            }
            ctx.mem.write_obj(arg, &<[u8; 1024]>::new_zeroed())?;
            Ok(0)
        }
        _ => Err(XenError::NoSys),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fixture, call};
    use super::*;
    use guest_abi::Hypercall;

    #[test]
    fn version_and_strings() {
        let mut f = Fixture::new();
        assert_eq!(
            call(&mut f, Hypercall::XenVersion, [0, 0, 0, 0, 0]),
            Ok(0x4_0011)
        );
        assert_eq!(
            call(&mut f, Hypercall::XenVersion, [7, 0, 0, 0, 0]),
            Ok(4096)
        );
        assert_eq!(
            call(&mut f, Hypercall::XenVersion, [3, 0x1000, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(&f.mem.read_bytes(0x1000, 16), b"xen-3.0-x86_64 \0");
        assert_eq!(
            call(&mut f, Hypercall::XenVersion, [1, 0x2000, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(&f.mem.read_bytes(0x2000, 6), b".0-rs\0");
        assert_eq!(
            call(&mut f, Hypercall::XenVersion, [5, 0x2000, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(
            f.mem.read_bytes(0x2000, 8),
            HYPERVISOR_VIRT_START.to_le_bytes()
        );
        assert_eq!(
            call(&mut f, Hypercall::XenVersion, [99, 0, 0, 0, 0]),
            Err(XenError::NoSys)
        );
        assert_eq!(
            call(&mut f, Hypercall::XenVersion, [3, 0xdead_0000, 0, 0, 0]),
            Err(XenError::Fault)
        );
    }

    #[test]
    fn features_include_what_linux_requires() {
        let mut f = Fixture::new();
        f.mem.write_bytes(0x1000, &[0u8; 8]);
        assert_eq!(
            call(&mut f, Hypercall::XenVersion, [6, 0x1000, 0, 0, 0]),
            Ok(0)
        );
        let map = u32::from_le_bytes(f.mem.read_bytes(0x1004, 4).try_into().unwrap());
        assert_ne!(map & (1 << 5), 0, "mmu_pt_update_preserve_ad");
        assert_ne!(map & (1 << 7), 0, "gnttab_map_avail_bits");
        assert_ne!(map & (1 << 11), 0, "dom0");
        assert_eq!(features(0, false, 0) & (1 << 11), 0);
        assert_eq!(features(1, true, 0), 0);
    }
}
