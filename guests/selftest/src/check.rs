//! Small helpers to turn a failed comparison into the `why` of a `FAIL name: why` line.

use core::fmt;

use guest_abi::report::Reporter;
use guest_abi::runtime::console::Console;
use guest_abi::runtime::hypercall::call;
use guest_abi::{Hypercall, XenError};

/// The report every check prints to.
pub type Report = Reporter<Console>;

/// Why a check failed: the first thing that differed from what Xen does.
#[derive(Clone, Copy, Debug)]
pub enum Why {
    /// A value differs.
    Diff {
        /// What was compared.
        what: &'static str,
        /// What we saw.
        got: u64,
        /// What Xen gives.
        want: u64,
    },
    /// A hypercall failed where it should not.
    Xen {
        /// Which call.
        what: &'static str,
        /// Its error.
        err: XenError,
    },
    /// Something else.
    Text(&'static str),
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Why::Diff { what, got, want } => write!(f, "{what} {got:#x}, expected {want:#x}"),
            Why::Xen { what, err } => write!(f, "{what} failed with {err}"),
            Why::Text(text) => f.write_str(text),
        }
    }
}

/// `got == want`, or the difference.
pub fn eq(what: &'static str, got: u64, want: u64) -> Result<(), Why> {
    if got == want {
        Ok(())
    } else {
        Err(Why::Diff { what, got, want })
    }
}

/// The success value of a hypercall, or why it failed.
pub fn ok(what: &'static str, result: Result<u64, XenError>) -> Result<u64, Why> {
    result.map_err(|err| Why::Xen { what, err })
}

/// `cond`, or `why`.
pub fn ensure(cond: bool, why: &'static str) -> Result<(), Why> {
    if cond { Ok(()) } else { Err(Why::Text(why)) }
}

/// The bytes of a NUL-terminated buffer up to the NUL, as text.
pub fn c_str(bytes: &[u8]) -> &str {
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    core::str::from_utf8(&bytes[..len]).unwrap_or("<not utf-8>")
}

/// Checks that hypercall `op` with `args` fails with `want` (an unknown sub-op, a bad
/// argument or pointer).
///
/// # Safety
/// As for [`call`]: if the hypervisor does act on the arguments, what it does must be
/// harmless (no pointer to memory of ours it may write).
pub unsafe fn refused(r: &mut Report, name: &str, op: Hypercall, args: [u64; 5], want: XenError) {
    // SAFETY: forwarded to the caller.
    let got = unsafe { call(op, args) };
    r.check_eq(name, got, Err(want));
}
