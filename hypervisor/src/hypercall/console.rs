//! `console_io`: the hypervisor console. Any domain may write (a domU's lines are prefixed by
//! the console backend with its id); only dom0 may read.

use super::{Ctx, HcResult, Host};
use crate::pv::guest_mem::GuestMemory;
use guest_abi::XenError;
use guest_abi::xen::ConsoleIoCmd;

/// Bytes copied per step, so a long write never needs a large buffer.
const CHUNK: usize = 128;

pub fn console_io<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    cmd: u64,
    count: u64,
    buffer: u64,
) -> HcResult {
    let cmd = u32::try_from(cmd).map_err(|_| XenError::NoSys)?;
    let count = count as u32 as u64;
    match ConsoleIoCmd::try_from(cmd)? {
        ConsoleIoCmd::Write => {
            let mut chunk = [0u8; CHUNK];
            let mut done = 0u64;
            while done < count {
                let n = (count - done).min(CHUNK as u64) as usize;
                ctx.mem.read(buffer.wrapping_add(done), &mut chunk[..n])?;
                ctx.host.console_write(ctx.domain.id, &chunk[..n]);
                done += n as u64;
            }
            Ok(0)
        }
        ConsoleIoCmd::Read => {
            if !ctx.domain.privileged {
                return Err(XenError::Perm);
            }
            let mut chunk = [0u8; CHUNK];
            let n = ctx
                .host
                .console_read(&mut chunk[..(count as usize).min(CHUNK)]);
            ctx.mem.write(buffer, &chunk[..n])?;
            Ok(n as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fixture, call};
    use guest_abi::{Hypercall, XenError};

    #[test]
    fn write_copies_guest_bytes_and_faults_cleanly() {
        let mut f = Fixture::new();
        f.mem.write_bytes(0x1000, b"hello, console");
        assert_eq!(
            call(&mut f, Hypercall::ConsoleIo, [0, 14, 0x1000, 0, 0]),
            Ok(0)
        );
        assert_eq!(f.host.console, b"hello, console");
        assert_eq!(
            call(&mut f, Hypercall::ConsoleIo, [0, 8, 0xdead_0000, 0, 0]),
            Err(XenError::Fault)
        );
        let hv = crate::mm::layout::HYPERVISOR_VIRT_START;
        assert_eq!(
            call(&mut f, Hypercall::ConsoleIo, [0, 8, hv, 0, 0]),
            Err(XenError::Fault)
        );
        assert_eq!(
            call(&mut f, Hypercall::ConsoleIo, [7, 8, 0x1000, 0, 0]),
            Err(XenError::NoSys)
        );
    }

    #[test]
    fn read_is_for_dom0_only() {
        let mut f = Fixture::new();
        f.host.input = b"ab".to_vec();
        f.domain.privileged = false;
        assert_eq!(
            call(&mut f, Hypercall::ConsoleIo, [1, 8, 0x1000, 0, 0]),
            Err(XenError::Perm)
        );
        f.domain.privileged = true;
        assert_eq!(
            call(&mut f, Hypercall::ConsoleIo, [1, 8, 0x1000, 0, 0]),
            Ok(2)
        );
        assert_eq!(f.mem.read_bytes(0x1000, 2), b"ab");
    }
}
