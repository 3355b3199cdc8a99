//! Running one benchmark: a warm-up repetition, then [`REPS`] timed repetitions of a
//! fixed number of operations, each timed with `rdtsc`; one machine-readable line with the
//! median, minimum and maximum cost of an operation, or the error that stopped it:
//!
//! ```text
//! BENCH null_hypercall median=281 min=281 max=283 iters=500 reps=11 unit=tsc
//! BENCH pin_unpin_l4 error=mmuext_op(PIN_L4_TABLE):EINVAL
//! ```

use guest_abi::println;

use crate::error::Error;
use crate::stats::{per_op, summarize};
use crate::traps;

/// Timed repetitions per benchmark (after one untimed warm-up).
pub const REPS: usize = 11;

/// What one benchmark measures.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The metric's name.
    pub name: &'static str,
    /// Loop iterations per repetition.
    pub iters: u32,
    /// Operations per iteration (the reported cost is per operation).
    pub ops: u32,
}

impl Spec {
    /// `iters` iterations of one operation each.
    pub const fn new(name: &'static str, iters: u32) -> Self {
        Self {
            name,
            iters,
            ops: 1,
        }
    }

    /// `ops` operations per iteration.
    pub const fn ops(self, ops: u32) -> Self {
        Self { ops, ..self }
    }
}

/// The time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc reads a counter; PV guests may execute it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Runs benchmark `spec`: `run(n)` performs `n` iterations. Prints its line.
pub fn bench(spec: Spec, mut run: impl FnMut(u32) -> Result<(), Error>) {
    let mut samples = [0u64; REPS];
    let mut result = Ok(());
    let mut timed = || -> Result<(), Error> {
        run(spec.iters)?;
        for sample in samples.iter_mut() {
            let t0 = rdtsc();
            run(spec.iters)?;
            let t1 = rdtsc();
            *sample = per_op(
                t1.wrapping_sub(t0),
                u64::from(spec.iters) * u64::from(spec.ops),
            );
        }
        Ok(())
    };
    let guard = traps::guarded(&mut || result = timed());
    let result = guard.map_err(Error::Trap).and(result);
    report(spec, "tsc", result.map(|()| samples));
}

/// [`bench`] for a body that performs one iteration (given its index).
pub fn bench_each(spec: Spec, mut body: impl FnMut(u32) -> Result<(), Error>) {
    bench(spec, |n| {
        for i in 0..n {
            body(i)?;
        }
        Ok(())
    });
}

/// Runs a benchmark whose repetitions are single measurements `sample()` (a warm-up, then
/// [`REPS`] of them) in `unit`, and prints its line like [`bench`]'s.
pub fn bench_samples(
    name: &'static str,
    unit: &str,
    mut sample: impl FnMut() -> Result<u64, Error>,
) {
    let mut samples = [0u64; REPS];
    let mut result = Ok(());
    let mut timed = || -> Result<(), Error> {
        sample()?;
        for s in samples.iter_mut() {
            *s = sample()?;
        }
        Ok(())
    };
    let guard = traps::guarded(&mut || result = timed());
    let result = guard.map_err(Error::Trap).and(result);
    report(Spec::new(name, 1), unit, result.map(|()| samples));
}

/// Prints the line of a benchmark that could not even be set up.
pub fn failed(name: &str, err: Error) {
    println!("BENCH {name} error={err}");
}

fn report(spec: Spec, unit: &str, result: Result<[u64; REPS], Error>) {
    match result {
        Ok(mut samples) => {
            let s = summarize(&mut samples).expect("REPS > 0");
            println!(
                "BENCH {} median={} min={} max={} iters={} reps={} unit={unit}",
                spec.name,
                s.median,
                s.min,
                s.max,
                u64::from(spec.iters) * u64::from(spec.ops),
                REPS
            );
        }
        Err(err) => failed(spec.name, err),
    }
}
