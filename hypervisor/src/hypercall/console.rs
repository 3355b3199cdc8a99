//! `console_io`: the hypervisor console, dom0's alone (a domU gets `-EPERM`, as from Xen's
//! release build: a domU's console is its ring, served by dom0's console backend).
//!
//! A write copies the guest's buffer out in [`CHUNK`]-byte pieces; once the exit has run for
//! its time ([`Host::preempt_check`]) the rest is a continuation, so even a count of 4 GiB
//! never keeps the CPU for long.

use super::{Ctx, HcResult, Host};
use crate::pv::guest_mem::GuestMemory;
use guest_abi::XenError;
use guest_abi::xen::ConsoleIoCmd;

/// Bytes copied per step, so a long write never needs a large buffer.
const CHUNK: usize = 128;

/// `console_io(cmd, count, buffer)`; a preempted write leaves the rest in `args` and answers
/// [`XenError::Restart`].
pub fn console_io<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    args: &mut [u64; 5],
) -> HcResult {
    let [cmd, count, buffer, ..] = *args;
    let privilege = ctx.domain.privilege.ok_or(XenError::Perm)?;
    let cmd = u32::try_from(cmd).map_err(|_| XenError::NoSys)?;
    let count = count as u32 as u64;
    match ConsoleIoCmd::try_from(cmd)? {
        ConsoleIoCmd::Write => {
            let mut chunk = [0u8; CHUNK];
            let mut done = 0u64;
            while done < count {
                if done > 0 && ctx.host.preempt_check() {
                    args[1] = count - done;
                    args[2] = buffer.wrapping_add(done);
                    return Err(XenError::Restart);
                }
                let n = (count - done).min(CHUNK as u64) as usize;
                ctx.mem.read(buffer.wrapping_add(done), &mut chunk[..n])?;
                ctx.host.console_write(ctx.domain.id, &chunk[..n]);
                done += n as u64;
            }
            Ok(0)
        }
        ConsoleIoCmd::Read => {
            let mut chunk = [0u8; CHUNK];
            let n = ctx
                .host
                .console_read(privilege, &mut chunk[..(count as usize).min(CHUNK)]);
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
    fn a_long_write_is_continued_where_it_stopped() {
        let mut f = Fixture::new();
        let text: std::vec::Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        f.mem.write_bytes(0x1000, &text);
        f.regs.rip = 0x40_1002;
        // The exit's time is up at every second check: one 128-byte chunk, then a second.
        f.host.preempt_every = 2;
        assert_eq!(
            call(&mut f, Hypercall::ConsoleIo, [0, 1000, 0x1000, 0, 0]),
            Ok(18),
            "rax keeps the hypercall number"
        );
        assert_eq!(f.host.console, &text[..256]);
        assert_eq!(f.regs.rip, 0x40_1000, "back on the syscall");
        assert_eq!((f.regs.rdi, f.regs.rsi, f.regs.rdx), (0, 744, 0x1100));
        // Re-executed as the guest would, until done.
        f.host.preempt_every = 0;
        let args = [f.regs.rdi, f.regs.rsi, f.regs.rdx, 0, 0];
        assert_eq!(call(&mut f, Hypercall::ConsoleIo, args), Ok(0));
        assert_eq!(f.host.console, text);
    }

    #[test]
    fn a_domu_may_not_use_the_console() {
        let mut f = Fixture::new();
        f.domain.privilege = None;
        f.mem.write_bytes(0x1000, b"hello");
        for cmd in [0, 1, 7] {
            assert_eq!(
                call(
                    &mut f,
                    Hypercall::ConsoleIo,
                    [cmd, 0xffff_ffff, 0x1000, 0, 0]
                ),
                Err(XenError::Perm)
            );
        }
        assert!(f.host.console.is_empty());
    }

    #[test]
    fn read_is_for_dom0_only() {
        let mut f = Fixture::new();
        f.host.input = b"ab".to_vec();
        f.domain.privilege = None;
        assert_eq!(
            call(&mut f, Hypercall::ConsoleIo, [1, 8, 0x1000, 0, 0]),
            Err(XenError::Perm)
        );
        f.domain.privilege = Some(crate::privilege::Privilege::hardware_domain());
        assert_eq!(
            call(&mut f, Hypercall::ConsoleIo, [1, 8, 0x1000, 0, 0]),
            Ok(2)
        );
        assert_eq!(f.mem.read_bytes(0x1000, 2), b"ab");
    }
}
