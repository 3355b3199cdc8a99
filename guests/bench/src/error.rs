//! [`Error`]: why a benchmark could not run (a hypercall that failed, a trap that ended it,
//! or something else), printed as the one word of its `error=` field.

use core::fmt;

use guest_abi::XenError;

use crate::traps::Trapped;

/// Why a benchmark could not run.
#[derive(Clone, Copy, Debug)]
pub enum Error {
    /// A hypercall failed.
    Xen {
        /// Which call.
        what: &'static str,
        /// Its error.
        err: XenError,
    },
    /// Something else went wrong.
    Text(&'static str),
    /// An exception ended it.
    Trap(Trapped),
}

impl Error {
    /// A failed hypercall.
    pub fn xen(what: &'static str, err: XenError) -> Self {
        Self::Xen { what, err }
    }
}

impl fmt::Display for Error {
    /// One word (no spaces), for the `error=` field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Xen { what, err } => write!(f, "{what}:{}", err.c_name()),
            Error::Text(text) => {
                for (i, word) in text.split(' ').enumerate() {
                    if i > 0 {
                        f.write_str("_")?;
                    }
                    f.write_str(word)?;
                }
                Ok(())
            }
            Error::Trap(t) => write!(
                f,
                "trap:vector={:#x}:frame={:#x},{:#x},{:#x}",
                t.vector, t.frame[0], t.frame[1], t.frame[2]
            ),
        }
    }
}
