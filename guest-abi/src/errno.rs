//! Xen's errno values (`xen/errno.h`) and the hypercall return convention.
//!
//! A hypercall returns a non-negative value on success and `-errno` on failure, in `rax`.
//! [`XenError::from_ret`] and [`XenError::to_ret`] are the two directions of that rule.

use core::fmt;

use crate::macros::xen_enum;

xen_enum! {
    /// A Xen error number. The values are Xen's own (`XEN_EPERM` = 1, ...), which match
    /// Linux's on x86.
    pub enum XenError: i32, prefix "E" {
        /// Operation not permitted.
        Perm = 1 => "PERM",
        /// No such file or directory.
        NoEnt = 2 => "NOENT",
        /// No such process (domain).
        Srch = 3 => "SRCH",
        /// Interrupted system call (hypervisor-internal).
        Intr = 4 => "INTR",
        /// I/O error.
        Io = 5 => "IO",
        /// No such device or address.
        NxIo = 6 => "NXIO",
        /// Argument list too long.
        TooBig = 7 => "2BIG",
        /// Exec format error.
        NoExec = 8 => "NOEXEC",
        /// Bad file number.
        BadF = 9 => "BADF",
        /// No child processes.
        Child = 10 => "CHILD",
        /// Try again (also `EWOULDBLOCK`).
        Again = 11 => "AGAIN",
        /// Out of memory.
        NoMem = 12 => "NOMEM",
        /// Permission denied.
        Acces = 13 => "ACCES",
        /// Bad address.
        Fault = 14 => "FAULT",
        /// Device or resource busy.
        Busy = 16 => "BUSY",
        /// File exists.
        Exist = 17 => "EXIST",
        /// Cross-device link.
        XDev = 18 => "XDEV",
        /// No such device.
        NoDev = 19 => "NODEV",
        /// Not a directory.
        NotDir = 20 => "NOTDIR",
        /// Is a directory.
        IsDir = 21 => "ISDIR",
        /// Invalid argument.
        Inval = 22 => "INVAL",
        /// File table overflow.
        NFile = 23 => "NFILE",
        /// Too many open files.
        MFile = 24 => "MFILE",
        /// No space left on device.
        NoSpc = 28 => "NOSPC",
        /// Read-only file system.
        RoFs = 30 => "ROFS",
        /// Too many links.
        MLink = 31 => "MLINK",
        /// Math argument out of domain of function.
        Dom = 33 => "DOM",
        /// Math result not representable.
        Range = 34 => "RANGE",
        /// Resource deadlock would occur (also `EDEADLOCK`).
        DeadLk = 35 => "DEADLK",
        /// File name too long.
        NameTooLong = 36 => "NAMETOOLONG",
        /// No record locks available.
        NoLck = 37 => "NOLCK",
        /// Function not implemented.
        NoSys = 38 => "NOSYS",
        /// Directory not empty.
        NotEmpty = 39 => "NOTEMPTY",
        /// No data available.
        NoData = 61 => "NODATA",
        /// Timer expired.
        Time = 62 => "TIME",
        /// Not a data message.
        BadMsg = 74 => "BADMSG",
        /// Value too large for defined data type.
        Overflow = 75 => "OVERFLOW",
        /// Illegal byte sequence.
        IlSeq = 84 => "ILSEQ",
        /// Interrupted call should be restarted (hypervisor-internal).
        Restart = 85 => "RESTART",
        /// Socket operation on non-socket.
        NotSock = 88 => "NOTSOCK",
        /// Message too long.
        MsgSize = 90 => "MSGSIZE",
        /// Operation not supported.
        OpNotSupp = 95 => "OPNOTSUPP",
        /// Address already in use.
        AddrInUse = 98 => "ADDRINUSE",
        /// Cannot assign requested address.
        AddrNotAvail = 99 => "ADDRNOTAVAIL",
        /// No buffer space available.
        NoBufs = 105 => "NOBUFS",
        /// Transport endpoint is already connected.
        IsConn = 106 => "ISCONN",
        /// Transport endpoint is not connected.
        NotConn = 107 => "NOTCONN",
        /// Connection timed out.
        TimedOut = 110 => "TIMEDOUT",
        /// Connection refused.
        ConnRefused = 111 => "CONNREFUSED",
    }
}

impl XenError {
    /// `EWOULDBLOCK`, an alias of `EAGAIN`.
    pub const WOULD_BLOCK: Self = Self::Again;
    /// `EDEADLOCK`, an alias of `EDEADLK`.
    pub const DEADLOCK: Self = Self::DeadLk;

    /// The positive errno value.
    pub const fn errno(self) -> i32 {
        self as i32
    }

    /// The value a failing hypercall leaves in `rax`: `-errno`.
    pub const fn to_ret(self) -> i64 {
        -(self as i64)
    }

    /// Splits a raw hypercall return value: non-negative is success, `-errno` an error.
    ///
    /// A negative value that is not a Xen errno (which a correct hypervisor never returns)
    /// reads as [`XenError::Inval`], so a caller never has to handle an impossible case.
    pub const fn from_ret(ret: i64) -> Result<u64, Self> {
        if ret >= 0 {
            return Ok(ret as u64);
        }
        let errno = ret.unsigned_abs();
        if errno > i32::MAX as u64 {
            return Err(Self::Inval);
        }
        match Self::from_raw(errno as i32) {
            Some(e) => Err(e),
            None => Err(Self::Inval),
        }
    }
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.c_name(), self.errno())
    }
}

impl core::error::Error for XenError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_values_round_trip() {
        for &e in XenError::ALL {
            assert_eq!(XenError::from_ret(e.to_ret()), Err(e));
        }
        assert_eq!(XenError::from_ret(0), Ok(0));
        assert_eq!(XenError::from_ret(i64::MAX), Ok(i64::MAX as u64));
    }

    #[test]
    fn unknown_negative_returns_are_inval() {
        assert_eq!(XenError::from_ret(-15), Err(XenError::Inval));
        assert_eq!(XenError::from_ret(i64::MIN), Err(XenError::Inval));
        assert_eq!(XenError::from_ret(-(1 << 40)), Err(XenError::Inval));
    }

    #[test]
    fn unknown_errno_does_not_decode() {
        assert_eq!(XenError::try_from(15), Err(XenError::NoSys));
        assert_eq!(XenError::try_from(22), Ok(XenError::Inval));
    }
}
