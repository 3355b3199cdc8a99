//! How long the exit being handled has run, and the longest exit per kind
//! ([`crate::hypercall::exit_times`]): stamped when a guest exit begins, recorded when it
//! returns, read by long hypercalls to decide when to continue later.

use crate::arch::x86_64::cpu;
use crate::hypercall::exit_times::{ExitKind, ExitTimes};
use crate::info;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The TSC when the exit being handled began.
static EXIT_STARTED: AtomicU64 = AtomicU64::new(0);

/// The longest exit seen per kind (debug key `e`, option `exit-times`).
pub static EXIT_TIMES: ExitTimes = ExitTimes::new();

/// Whether dom0's shutdown prints the exit-time table (option `exit-times`).
pub static PRINT_EXIT_TIMES: AtomicBool = AtomicBool::new(false);

/// Stamps the start of an exit (or, after an idle wait, of the work that follows it).
pub fn begin_exit() {
    EXIT_STARTED.store(cpu::rdtsc(), Ordering::Relaxed);
}

/// TSC ticks since the exit being handled began.
pub fn exit_ticks() -> u64 {
    cpu::rdtsc().wrapping_sub(EXIT_STARTED.load(Ordering::Relaxed))
}

/// Records how long the exit that is about to return to a guest took.
pub fn end_exit(kind: ExitKind) {
    EXIT_TIMES.record(kind, exit_ticks());
}

/// Prints the exit-time table.
pub fn print_exit_times() {
    info!("Longest single exit per kind, TSC ticks (instructions under -icount shift=0):");
    for (kind, ticks) in EXIT_TIMES.seen() {
        info!("  {kind}: {ticks}");
    }
    if let Some((kind, ticks)) = EXIT_TIMES.worst() {
        info!("Longest exit: {ticks} ticks ({kind})");
    }
}
