//! Started by `tests/mpi.rs` under `mpirun`: logs known per-rank values through a tracker with
//! MPI aggregation; rank 0's CSV backend writes `<outdir>/metrics.csv`, which the test reads.
//!
//! `ezpz-mpi-aggregate-probe <scenario> <outdir>`; scenarios:
//! - `reference`: 5 steps of `loss = 1/(1+step) + 0.25·rank`, `tokens = 100·(rank+1) + step`
//!   (an integer) and a string `phase` (not aggregated);
//! - `large`: one step of `tokens_per_s = 123880 + 0.1·rank`;
//! - `mismatch`: odd ranks add `extra = rank` at step 1; at step 3 rank 0 logs `a, b` and
//!   the others `b, a`; the other steps are uniform;
//! - `threads`: two threads per rank log `a = step + rank` and `b = 10·step + rank` at steps
//!   0..20, each its own row, in an order that differs between ranks;
//! - `uneven`: `x = step + rank` at steps 0..5 everywhere, then rank 0 alone logs step 5
//!   and the odd ranks alone log step 6 (rows nobody matches);
//! - `hang`: `x = step + rank` at steps 0..5, then rank 1 hangs for 15 s (its training
//!   thread; it prints `WAKES rank=1` after) while the others finish with a 3 s deadline;
//! - `preinit`: `reference`, with MPI initialised by the program itself (rsmpi, at
//!   `MPI_THREAD_SERIALIZED`) before `Mpi::init`, which must accept it.
//! - `fallback`: started with the launcher's rank variables removed (the test runs the probe
//!   through `env -u …`); after MPI is up the probe removes the last one, `PMIX_RANK` (Open
//!   MPI's own initialisation needs it), prints `LEFT rank=<r> vars=<those it removed>`,
//!   builds a tracker *without* `.mpi(..)` and prints `DETECTED rank=<its rank>
//!   size=<its world size> mpi=<MPI's rank>`: MPI's rank must be the fallback.
//!
//! Every rank prints `DONE rank=<r>` after `finish`, so the test can tell a finished run from
//! a hang.

use std::process::ExitCode;

use ezpz_tracker::env::{LOCAL_RANK_VARS, LOCAL_SIZE_VARS, RANK_VARS, WORLD_SIZE_VARS};
use ezpz_tracker::mpi::Mpi;
use ezpz_tracker::{metrics, TrackerBuilder};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .init();
    let args: Vec<String> = std::env::args().collect();
    let [_, scenario, outdir] = &args[..] else {
        eprintln!(
            "usage: ezpz-mpi-aggregate-probe \
             <reference|large|mismatch|threads|uneven|hang|preinit|fallback> <outdir>"
        );
        return ExitCode::from(2);
    };
    // Declared first, dropped last: the program finalises its own MPI after ezpz's handles.
    let _program_universe = (scenario == "preinit").then(|| {
        mpi::initialize_with_threading(mpi::environment::Threading::Serialized)
            .expect("MPI not initialised yet")
            .0
    });
    let mpi = match Mpi::init() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "THREADING rank={} serialized={}",
        mpi.rank(),
        mpi.is_serialized()
    );
    if scenario == "fallback" {
        return rank_fallback(&mpi, outdir);
    }
    let deadline = std::time::Duration::from_secs(if scenario == "hang" { 3 } else { 30 });
    let tracker = match TrackerBuilder::new()
        .project("mpi-probe")
        .backends("csv")
        .outdir(outdir)
        .mpi(&mpi)
        .finish_timeout(deadline)
        .build()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rank {}: {e}", mpi.rank());
            return ExitCode::FAILURE;
        }
    };
    let r = mpi.rank();
    let rf = r as f64;
    match scenario.as_str() {
        "reference" | "preinit" => {
            for step in 0..5u32 {
                let s = f64::from(step);
                tracker.log(metrics! {
                    "loss" => 1.0 / (1.0 + s) + 0.25 * rf,
                    "tokens" => 100 * (r as i64 + 1) + i64::from(step),
                    "phase" => "train",
                });
            }
        }
        "large" => tracker.log([("tokens_per_s", 123_880.0 + 0.1 * rf)]),
        "mismatch" => {
            tracker.log([("loss", 1.0 + rf)]);
            if r % 2 == 1 {
                tracker.log([("loss", 2.0 + rf), ("extra", rf)]);
            } else {
                tracker.log([("loss", 2.0 + rf)]);
            }
            tracker.log([("loss", 3.0 + rf)]);
            if r == 0 {
                tracker.log([("a", 10.0), ("b", 20.0)]);
            } else {
                tracker.log([("b", 20.0 + rf), ("a", 10.0 + rf)]);
            }
            tracker.log([("loss", 5.0 + rf)]);
        }
        "threads" => {
            std::thread::scope(|scope| {
                for (key, scale) in [("a", 1.0), ("b", 10.0)] {
                    let tracker = &tracker;
                    scope.spawn(move || {
                        for step in 0..20u64 {
                            // Odd ranks hold `a` back and even ranks `b`: every step's two rows
                            // reach the tracker in a different order on neighbouring ranks.
                            if (key == "a") == (r % 2 == 1) {
                                std::thread::sleep(std::time::Duration::from_millis(3));
                            }
                            tracker.log_at(step, [(key, scale * step as f64 + rf)]);
                        }
                    });
                }
            });
        }
        "uneven" => {
            for step in 0..5u64 {
                tracker.log_at(step, [("x", step as f64 + rf)]);
            }
            if r == 0 {
                tracker.log_at(5, [("x", 5.0)]);
            } else if r % 2 == 1 {
                tracker.log_at(6, [("x", 6.0 + rf)]);
            }
        }
        "late" => {
            for step in 0..5u64 {
                tracker.log_at(step, [("x", step as f64 + rf)]);
            }
            if r == 1 {
                // Rounds later, when the other ranks have nothing to send.
                std::thread::sleep(std::time::Duration::from_millis(400));
                tracker.log_at(5, [("x", 6.0)]);
            }
        }
        "hang" => {
            for step in 0..5u64 {
                tracker.log_at(step, [("x", step as f64 + rf)]);
            }
            if r == 1 {
                std::thread::sleep(std::time::Duration::from_secs(15));
                println!("WAKES rank={r}");
            }
        }
        other => {
            eprintln!("unknown scenario `{other}`");
            return ExitCode::from(2);
        }
    }
    if let Err(e) = tracker.finish() {
        eprintln!("rank {r}: finish: {e}");
        return ExitCode::FAILURE;
    }
    println!("DONE rank={r}");
    ExitCode::SUCCESS
}

/// The `fallback` scenario: no launcher variable left, so the tracker's rank must be MPI's.
fn rank_fallback(mpi: &Mpi, outdir: &str) -> ExitCode {
    let r = mpi.rank();
    // Removed after MPI's initialisation, which read them; no other thread of this program
    // reads the environment.
    let mut left = Vec::new();
    for list in [RANK_VARS, LOCAL_RANK_VARS, WORLD_SIZE_VARS, LOCAL_SIZE_VARS] {
        for var in list {
            if std::env::var_os(var).is_some() {
                left.push(*var);
                std::env::remove_var(var);
            }
        }
    }
    println!("LEFT rank={r} vars={}", left.join(","));
    let tracker = match TrackerBuilder::new()
        .project("mpi-probe")
        .backends("csv")
        .outdir(outdir)
        .build()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rank {r}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let detected = tracker.rank();
    println!(
        "DETECTED rank={} size={} mpi={r}",
        detected.rank, detected.world_size
    );
    tracker.log([("rank", detected.rank as f64)]);
    if let Err(e) = tracker.finish() {
        eprintln!("rank {r}: finish: {e}");
        return ExitCode::FAILURE;
    }
    println!("DONE rank={r}");
    ExitCode::SUCCESS
}
