//! The line-oriented test report every guest test prints, and the QEMU tests parse:
//! `PASS name`, `FAIL name: why`, and finally `N passed, N failed`.

use core::fmt::{self, Write};

/// Counts checks and prints one line per check to a [`fmt::Write`] sink.
#[derive(Debug)]
pub struct Reporter<W: Write> {
    out: W,
    passed: u32,
    failed: u32,
}

impl<W: Write> Reporter<W> {
    /// A reporter printing to `out`.
    pub const fn new(out: W) -> Self {
        Self {
            out,
            passed: 0,
            failed: 0,
        }
    }

    /// Records a passing check.
    pub fn pass(&mut self, name: &str) {
        self.passed += 1;
        let _ = writeln!(self.out, "PASS {name}");
    }

    /// Records a failing check with the reason.
    pub fn fail(&mut self, name: &str, why: fmt::Arguments<'_>) {
        self.failed += 1;
        let _ = writeln!(self.out, "FAIL {name}: {why}");
    }

    /// Records `Ok` as a pass and `Err(why)` as a failure.
    pub fn check<E: fmt::Display>(&mut self, name: &str, result: Result<(), E>) {
        match result {
            Ok(()) => self.pass(name),
            Err(why) => self.fail(name, format_args!("{why}")),
        }
    }

    /// Checks that `actual == expected`.
    pub fn check_eq<T: PartialEq + fmt::Debug>(&mut self, name: &str, actual: T, expected: T) {
        if actual == expected {
            self.pass(name);
        } else {
            self.fail(name, format_args!("got {actual:?}, expected {expected:?}"));
        }
    }

    /// Checks passed so far.
    pub const fn passed(&self) -> u32 {
        self.passed
    }

    /// Checks failed so far.
    pub const fn failed(&self) -> u32 {
        self.failed
    }

    /// Prints the summary line; returns whether every check passed.
    pub fn finish(&mut self) -> bool {
        let _ = writeln!(self.out, "{} passed, {} failed", self.passed, self.failed);
        self.failed == 0
    }

    /// The sink.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Buf {
        bytes: [u8; 256],
        len: usize,
    }

    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.len + s.len();
            self.bytes
                .get_mut(self.len..end)
                .ok_or(fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    #[test]
    fn report_lines() {
        let mut r = Reporter::new(Buf {
            bytes: [0; 256],
            len: 0,
        });
        r.pass("a");
        r.check("b", Err("broken"));
        r.check_eq("c", 1, 1);
        r.check_eq("d", 1, 2);
        assert!(!r.finish());
        let out = r.into_inner();
        let text = core::str::from_utf8(&out.bytes[..out.len]).unwrap();
        assert_eq!(
            text,
            "PASS a\nFAIL b: broken\nPASS c\nFAIL d: got 1, expected 2\n2 passed, 2 failed\n"
        );
    }
}
