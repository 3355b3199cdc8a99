//! Cases and their expectations: what happened ([`Got`]), what should have ([`Want`]), and the
//! `PASS`/`FAIL` lines.

use core::fmt;

use guest_abi::{XenError, println};

/// What a case observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Got {
    /// A hypercall's raw result (`-errno` on failure).
    Ret(i64),
    /// The guest took this exception (its handler resumed after the instruction).
    Trap(u64),
    /// The instruction ran without a trap and left this value (for reads).
    Value(u64),
}

/// What a case must observe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Failure with this error.
    Err(XenError),
    /// Success, whatever the value.
    Ok,
    /// This exception.
    Trap(u64),
    /// No trap, and this value.
    Value(u64),
}

impl Want {
    fn matches(self, got: Got) -> bool {
        match (self, got) {
            (Want::Err(e), Got::Ret(r)) => r == e.to_ret(),
            (Want::Ok, Got::Ret(r)) => r >= 0,
            (Want::Trap(v), Got::Trap(t)) => v == t,
            (Want::Value(v), Got::Value(x)) => v == x,
            _ => false,
        }
    }
}

impl fmt::Display for Got {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Got::Ret(r) if r < 0 => match i32::try_from(-r).ok().and_then(XenError::from_raw) {
                Some(e) => write!(f, "{r} {}", e.c_name()),
                None => write!(f, "{r}"),
            },
            Got::Ret(r) => write!(f, "{r} (success)"),
            Got::Trap(v) => write!(f, "trap {}", vector_name(v)),
            Got::Value(v) => write!(f, "value {v:#x}"),
        }
    }
}

impl fmt::Display for Want {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Want::Err(e) => write!(f, "{} {}", e.to_ret(), e.c_name()),
            Want::Ok => write!(f, "success"),
            Want::Trap(v) => write!(f, "trap {}", vector_name(v)),
            Want::Value(v) => write!(f, "value {v:#x}"),
        }
    }
}

fn vector_name(v: u64) -> &'static str {
    match v {
        0 => "#DE",
        1 => "#DB",
        3 => "#BP",
        6 => "#UD",
        13 => "#GP",
        14 => "#PF",
        _ => "other",
    }
}

/// Which hypervisor and which kind of domain the expectations are for.
#[derive(Clone, Copy, Debug)]
pub struct Mode {
    /// Real Xen 4.17 (the command-line word `xen`).
    pub xen: bool,
    /// An unprivileged domain (the command-line word `domu`).
    pub domu: bool,
}

/// The expectation of one case.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    /// On our hypervisor.
    pub ours: Want,
    /// On Xen 4.17, where it differs on purpose (docs/SECURITY.md).
    pub xen: Option<Want>,
    /// In a domU, where it differs from dom0.
    pub domu: Option<Want>,
    /// In a domU on Xen 4.17, where it differs from a domU on ours (a deliberate difference).
    pub domu_xen: Option<Want>,
}

/// The same answer everywhere.
pub const fn same(w: Want) -> Expect {
    Expect {
        ours: w,
        xen: None,
        domu: None,
        domu_xen: None,
    }
}

/// Refused with `e` everywhere.
pub const fn err(e: XenError) -> Expect {
    same(Want::Err(e))
}

/// Succeeds everywhere.
pub const OK: Expect = same(Want::Ok);

impl Expect {
    /// Xen 4.17 answers `w` instead (a deliberate difference).
    pub const fn xen(self, w: Want) -> Self {
        Self {
            xen: Some(w),
            ..self
        }
    }

    /// A domU is refused with `e` (privileged operations).
    pub const fn domu(self, e: XenError) -> Self {
        Self {
            domu: Some(Want::Err(e)),
            ..self
        }
    }

    /// A domU on Xen 4.17 gets `w` instead (a deliberate difference).
    pub const fn domu_xen(self, w: Want) -> Self {
        Self {
            domu_xen: Some(w),
            ..self
        }
    }
}

/// Counts cases and prints one line each.
pub struct Report {
    mode: Mode,
    passed: u32,
    failed: u32,
}

impl Report {
    /// A report for `mode`.
    pub const fn new(mode: Mode) -> Self {
        Self {
            mode,
            passed: 0,
            failed: 0,
        }
    }

    /// What `e` expects in this mode.
    pub fn want(&self, e: Expect) -> Want {
        let Mode { domu, xen } = self.mode;
        match (domu, xen) {
            (true, true) => e.domu_xen.or(e.domu).or(e.xen).unwrap_or(e.ours),
            (true, false) => e.domu.unwrap_or(e.ours),
            (false, true) => e.xen.unwrap_or(e.ours),
            (false, false) => e.ours,
        }
    }

    /// Records a case.
    pub fn case(&mut self, name: &str, got: Got, expect: Expect) {
        let want = self.want(expect);
        let note = if expect.xen.is_some() || expect.domu_xen.is_some() {
            " [differs from Xen on purpose]"
        } else {
            ""
        };
        if want.matches(got) {
            self.passed += 1;
            println!("PASS {name}: got {got}, expected {want}{note}");
        } else {
            self.failed += 1;
            println!("FAIL {name}: got {got}, expected {want}{note}");
        }
    }

    /// Records a hypercall's raw result.
    pub fn ret(&mut self, name: &str, ret: i64, expect: Expect) {
        self.case(name, Got::Ret(ret), expect);
    }

    /// Records a check that is not a hypercall result (set-up of a case, a value read back).
    pub fn check(&mut self, name: &str, ok: bool, what: fmt::Arguments<'_>) {
        if ok {
            self.passed += 1;
            println!("PASS {name}: {what}");
        } else {
            self.failed += 1;
            println!("FAIL {name}: {what}");
        }
    }

    /// Cases so far.
    pub fn cases(&self) -> u32 {
        self.passed + self.failed
    }

    /// Prints the summary line; returns whether every case passed.
    pub fn finish(&self) -> bool {
        println!("{} passed, {} failed", self.passed, self.failed);
        self.failed == 0
    }
}
