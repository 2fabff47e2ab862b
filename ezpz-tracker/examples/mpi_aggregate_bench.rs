//! The cost of one cross-rank aggregation of 10 scalars: [`MpiAggregator`] (one all-gather)
//! against the original's four all-reduces (sum, sum of squares, max, min; fp64), on the
//! same ranks in the same run. Run it with `scripts/bench-mpi` (`mpirun -np 2`).
//!
//! `mpi_aggregate_bench [iterations]`: rounds alternate the two methods (and the bare
//! all-gather the aggregator makes, for reference); each figure is the median over rounds of
//! the slowest rank's mean time per call. Rank 0 prints `RESULT` lines.
//!
//! [`MpiAggregator`]: ezpz_tracker::mpi::MpiAggregator

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use ezpz_tracker::mpi::{Communicator, Mpi};
use ezpz_tracker::{Aggregator, Metric, Stats, Value};
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
    let aggregator = mpi.aggregator();
    let comm = mpi.communicator();
    let rank = mpi.rank() as f64;
    let keys: Vec<Arc<str>> = (0..KEYS)
        .map(|k| Arc::from(format!("train/m{k}")))
        .collect();
    let metrics = |i: usize| -> Vec<(Arc<str>, f64)> {
        keys.iter()
            .enumerate()
            .map(|(k, key)| (key.clone(), 1000.0 + k as f64 + 0.01 * i as f64 + rank))
            .collect()
    };
    let batches: Vec<_> = (0..64).map(metrics).collect();
    let names: Vec<[Arc<str>; 4]> = keys
        .iter()
        .map(|k| Stats::of(&[]).metrics(k).map(|(name, _)| name))
        .collect();
    // Warm both paths (and the aggregator's capacity) up.
    time(&comm, iters / 10 + 1, |i| {
        black_box(aggregator.aggregate(&batches[i % 64]));
        black_box(four_collectives(&comm, &batches[i % 64], &names));
    });
    // The bare collective the aggregator makes (3 header words + 32 value slots per rank),
    // to tell MPI's share of `one` from ours.
    let send = vec![0u64; 3 + 32];
    let mut recv = vec![0u64; send.len() * mpi.world_size()];
    let (mut one, mut four, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        bare.push(time(&comm, iters, |_| {
            comm.all_gather_into(&send[..], &mut recv[..]);
        }));
        one.push(time(&comm, iters, |i| {
            black_box(aggregator.aggregate(&batches[i % 64]));
        }));
        four.push(time(&comm, iters, |i| {
            black_box(four_collectives(&comm, &batches[i % 64], &names));
        }));
    }
    let (one, four, bare) = (median(one) * 1e6, median(four) * 1e6, median(bare) * 1e6);
    // Sanity: both give the same aggregates for the same input (std up to rounding).
    let a = aggregator.aggregate(&batches[0]);
    let b = four_collectives(&comm, &batches[0], &names);
    if mpi.is_main() {
        let mean = |m: &[Metric]| match &m[0].1 {
            Value::F64(v) => *v,
            _ => f64::NAN,
        };
        assert_eq!(mean(&a), mean(&b), "both methods agree on the mean");
        println!(
            "ranks: {}, keys per log: {KEYS}, calls per round: {iters}, rounds: {ROUNDS}",
            mpi.world_size()
        );
        println!("RESULT agg_one_collective_us {one:.3}");
        println!("RESULT agg_four_collectives_us {four:.3}");
        println!("RESULT agg_four_over_one_ratio {:.3}", four / one);
        println!("RESULT bare_allgather_us {bare:.3}");
    }
    Ok(())
}
