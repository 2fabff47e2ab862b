//! What cross-rank aggregation of 10 scalars costs the logging thread: `Tracker::log` with
//! `TrackerBuilder::mpi` (the row goes to the aggregation thread; no MPI call) against the
//! original's way, four all-reduces per call (sum, sum of squares, max, min; fp64) and then a
//! plain `log`, on the same ranks in the same run. Run it with `scripts/bench-mpi`
//! (`mpirun -np 2`).
//!
//! `mpi_aggregate_bench [iterations]`: each figure is the median over rounds of the slowest
//! rank's mean time per call; `finish` (every row aggregated and delivered) is timed once.
//! Both trackers write CSV on rank 0, and the ezpz one's last row is checked against the
//! four all-reduces' figures. Rank 0 prints `RESULT` lines.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use ezpz_tracker::mpi::{Communicator, Mpi};
use ezpz_tracker::{Metric, Stats, TrackerBuilder, Value};
use mpi::collective::SystemOperation;
use mpi::topology::Communicator as _;
use mpi::traits::*;

const KEYS: usize = 10;
const ROUNDS: usize = 7;

/// The original's `_compute_distributed_metrics`: four all-reduces, then
/// `std = sqrt(max(E[x²] − E[x]², 0))`. `names` are the aggregate names, formatted once (as
/// the aggregator caches them), so the two methods differ only in their collectives.
fn four_collectives(
    comm: &Communicator,
    metrics: &[(Arc<str>, f64)],
    names: &[[Arc<str>; 4]],
) -> Vec<Metric> {
    let n = comm.size() as f64;
    let values: Vec<f64> = metrics.iter().map(|(_, v)| *v).collect();
    let squares: Vec<f64> = values.iter().map(|v| v * v).collect();
    let mut sum = vec![0.0; values.len()];
    let mut sq = vec![0.0; values.len()];
    let mut max = vec![0.0; values.len()];
    let mut min = vec![0.0; values.len()];
    comm.all_reduce_into(&values[..], &mut sum[..], SystemOperation::sum());
    comm.all_reduce_into(&squares[..], &mut sq[..], SystemOperation::sum());
    comm.all_reduce_into(&values[..], &mut max[..], SystemOperation::max());
    comm.all_reduce_into(&values[..], &mut min[..], SystemOperation::min());
    let mut out = Vec::with_capacity(metrics.len() * 4);
    for (i, names) in names.iter().enumerate() {
        let mean = sum[i] / n;
        let std = (sq[i] / n - mean * mean).max(0.0).sqrt();
        let figures = [mean, min[i], max[i], std].map(Value::F64);
        out.extend(names.iter().cloned().zip(figures));
    }
    out
}

/// Mean seconds per call of `f` over `iters` calls, the slowest rank's.
fn time(comm: &Communicator, iters: usize, mut f: impl FnMut(usize)) -> f64 {
    comm.barrier();
    let start = Instant::now();
    for i in 0..iters {
        f(i);
    }
    let mine = start.elapsed().as_secs_f64() / iters as f64;
    let mut slowest = 0.0;
    comm.all_reduce_into(&mine, &mut slowest, SystemOperation::max());
    slowest
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iters: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let mpi = Mpi::init()?;
    let comm = mpi.communicator();
    let rank = mpi.rank() as f64;
    let keys: Vec<Arc<str>> = (0..KEYS)
        .map(|k| Arc::from(format!("train/m{k}")))
        .collect();
    let metrics = |i: usize| -> Vec<Metric> {
        keys.iter()
            .enumerate()
            .map(|(k, key)| {
                let v = 1000.0 + k as f64 + 0.01 * (i % 64) as f64 + rank;
                (key.clone(), Value::F64(v))
            })
            .collect()
    };
    let batches: Vec<Vec<Metric>> = (0..64).map(metrics).collect();
    let pairs = |m: &[Metric]| -> Vec<(Arc<str>, f64)> {
        m.iter()
            .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0)))
            .collect()
    };
    let names: Vec<[Arc<str>; 4]> = keys
        .iter()
        .map(|k| Stats::of(&[]).metrics(k).map(|(name, _)| name))
        .collect();
    let dir = std::env::temp_dir().join(format!("ezpz-mpi-bench-{}", std::process::id()));
    let build = |sub: &str| {
        TrackerBuilder::new()
            .backends("csv")
            .outdir(dir.join(sub))
            .report(false)
    };
    let ezpz = build("ezpz").mpi(&mpi).build()?;
    let plain = build("plain").rank_info(mpi.rank_info()).build()?;
    let (mut one, mut four) = (Vec::new(), Vec::new());
    let mut step = 0u64;
    for _ in 0..ROUNDS {
        four.push(time(&comm, iters, |i| {
            let aggregates = four_collectives(&comm, &pairs(&batches[i % 64]), &names);
            let mut row = batches[i % 64].clone();
            row.extend(aggregates);
            plain.log_at(step + i as u64, black_box(row));
        }));
        one.push(time(&comm, iters, |i| {
            ezpz.log_at(step + i as u64, black_box(batches[i % 64].clone()));
        }));
        step += iters as u64;
    }
    let start = Instant::now();
    ezpz.finish()?;
    let finish_ms = start.elapsed().as_secs_f64() * 1e3;
    plain.finish()?;
    let (one, four) = (median(one) * 1e6, median(four) * 1e6);
    if mpi.is_main() {
        // Sanity: the aggregation thread's figures for the last row are the all-reduces'.
        let last = ezpz.last_record().ok_or("no row reached the backends")?;
        let expected = four_collectives_local(&pairs(&batches[(iters - 1) % 64]), mpi.world_size());
        let got = last.get("train/m0/mean").and_then(|v| v.as_f64());
        assert_eq!(got, Some(expected), "both methods agree on the mean");
        println!(
            "ranks: {}, keys per log: {KEYS}, calls per round: {iters}, rounds: {ROUNDS}",
            mpi.world_size()
        );
        println!("RESULT log_with_aggregation_us {one:.3}");
        println!("RESULT log_after_four_collectives_us {four:.3}");
        println!("RESULT four_over_ezpz_ratio {:.3}", four / one);
        println!("RESULT ezpz_finish_ms {finish_ms:.1}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The mean of `train/m0` over `world` ranks whose values are rank 0's plus their rank.
fn four_collectives_local(rank0: &[(Arc<str>, f64)], world: usize) -> f64 {
    let values: Vec<f64> = (0..world).map(|r| rank0[0].1 + r as f64).collect();
    Stats::of(&values).mean
}
