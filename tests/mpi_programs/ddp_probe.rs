//! Started by `tests/mpi.rs` under `mpirun`: trains a small MLP data-parallel for a few steps
//! and prints what the test compares across ranks.
//!
//! `ezpz-mpi-ddp-probe train <outdir>`. Each rank initialises its model from a different seed, then
//! takes rank 0's parameters with `broadcast_module`, trains `STEPS` Adam steps on its
//! `RankShard` with `all_reduce_grads`, and logs its loss through a tracker sharing the same
//! `Mpi` handle (rank 0 writes `<outdir>/metrics.csv` with `loss/mean|min|max|std` and
//! `grads/global_norm/mean|min|max|std`). Lines
//! printed (the test parses them):
//! - `INIT rank=<r> hash=<h>` / `BCAST …` / `FINAL …`: FNV-1a of the parameters' `f32` bits
//!   before the broadcast, after it, after training;
//! - `NORM step=<k> rank=<r> local=<v>`: the rank's local gradient norm, whose cross-rank
//!   `grads/global_norm/mean|min|max|std` (from `grad_norm_stats`) rank 0's CSV holds;
//! - on rank 0, `MAXDIFF <v>`: the largest difference between the data-parallel parameters and
//!   a single process trained on the concatenated batches from the same initial parameters.
//!
//! `ezpz-mpi-ddp-probe mismatch <outdir>`: rank 1 builds a wider model; every rank prints
//! `REFUSED rank=<r>: <error>` from `broadcast_module` and stops.
//!
//! `ezpz-mpi-ddp-probe frozen <outdir>`: the hidden layer is frozen (`no_grad`); each step every
//! rank prints `SENT rank=<r> values=<n>` (what its all-reduce sent), and the last rank wants to
//! stop after step 2: every rank prints `STOPPED rank=<r> step=<k>` from `agree_stop`, and
//! `HIDDEN rank=<r> same=<bool>` (the frozen layer kept its broadcast values).

use std::process::ExitCode;

use burn::data::dataset::{Dataset, InMemDataset};
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Transaction;
use ezpz_burn::ddp::DataParallel;
use ezpz_tracker::mpi::Mpi;
use ezpz_tracker::TrackerBuilder;

const STEPS: usize = 8;
const BATCH: usize = 3;
const LR: f64 = 0.05;

#[derive(Module, Debug)]
struct Mlp {
    hidden: Linear,
    act: Relu,
    out: Linear,
    /// How a `TrainStep::optimize` reaches the gradient all-reduce: a skipped field (`None`
    /// in the single-process reference).
    #[module(skip)]
    ddp: Option<DataParallel>,
}

impl Mlp {
    fn new(device: &Device, width: usize, ddp: Option<DataParallel>) -> Self {
        Mlp {
            hidden: LinearConfig::new(4, width).init(device),
            act: Relu::new(),
            out: LinearConfig::new(width, 1).init(device),
            ddp,
        }
    }

    fn loss(&self, items: &[Item], device: &Device) -> Tensor<1> {
        let n = items.len();
        let x: Vec<f32> = items.iter().flat_map(|i| i.x).collect();
        let y: Vec<f32> = items.iter().map(|i| i.y).collect();
        let x = Tensor::<2>::from_data(TensorData::new(x, [n, 4]), device);
        let y = Tensor::<2>::from_data(TensorData::new(y, [n, 1]), device);
        let pred = self.out.forward(self.act.forward(self.hidden.forward(x)));
        (pred - y).powi_scalar(2).mean()
    }
}

#[derive(Debug, Clone, Copy)]
struct Item {
    x: [f32; 4],
    y: f32,
}

fn item(i: usize) -> Item {
    let t = i as f32;
    let x = [
        (0.7 * t).sin(),
        (1.3 * t).cos(),
        (i % 7) as f32 / 7.0,
        0.05 * t - 1.0,
    ];
    Item {
        x,
        y: x[0] - 0.5 * x[1] + x[2] * x[3],
    }
}

/// Every float parameter's values in visit order.
fn params(module: &Mlp) -> Vec<f32> {
    struct Reader(Transaction);
    impl ModuleVisitor for Reader {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0 = std::mem::take(&mut self.0).register(p.val());
        }
    }
    let mut r = Reader(Transaction::default());
    module.visit(&mut r);
    r.0.execute()
        .into_iter()
        .flat_map(|d| d.try_into_vec_as::<f32>().unwrap_or_default())
        .collect()
}

fn hash(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        (h ^ u64::from(v.to_bits())).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Forward, backward and what a `TrainStep::optimize` override does: average the gradients
/// across ranks (when the model carries a `DataParallel`), then step.
fn train_step(
    model: Mlp,
    items: &[Item],
    device: &Device,
    optim: &mut burn::optim::ModuleOptimizer,
) -> (Mlp, f64) {
    let loss = model.loss(items, device);
    let value = loss.clone().into_scalar::<f64>();
    let mut grads = GradientsParams::from_grads(loss.backward(), &model);
    if let Some(ddp) = &model.ddp {
        grads = ddp.all_reduce_grads(&model, grads);
    }
    (optim.step(LR, model, grads), value)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let [_, scenario, outdir] = &args[..] else {
        eprintln!("usage: ezpz-mpi-ddp-probe <train|mismatch|frozen> <outdir>");
        return ExitCode::from(2);
    };
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
    let tracker = TrackerBuilder::new()
        .project("mpi-ddp-probe")
        .backends("csv")
        .outdir(outdir)
        .mpi(&mpi)
        .build_lossy();
    let ddp = DataParallel::new(&mpi);
    let (rank, world) = (ddp.rank(), ddp.world_size());
    let device = Device::flex().autodiff();
    device.seed(1000 + rank as u64);
    // `mismatch`: rank 1 builds a wider model; every rank must get the error.
    let width = if scenario == "mismatch" && rank == 1 {
        9
    } else {
        8
    };
    let mut model = Mlp::new(&device, width, Some(ddp.clone()));
    if scenario == "frozen" {
        model.hidden = model.hidden.no_grad();
    }
    println!("INIT rank={rank} hash={:016x}", hash(&params(&model)));
    let model = match ddp.broadcast_module(model) {
        Ok(m) => m,
        Err(e) if scenario == "mismatch" => {
            println!("REFUSED rank={rank}: {e}");
            println!("DONE rank={rank}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("rank {rank}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("BCAST rank={rank} hash={:016x}", hash(&params(&model)));
    let initial = Mlp {
        ddp: None,
        ..model.clone()
    };

    // Three items more than the ranks use, to exercise the dropped remainder.
    let all: Vec<Item> = (0..STEPS * BATCH * world + 3).map(item).collect();
    let shard = ddp.shard(InMemDataset::new(all.clone()));
    let mut optim = AdamConfig::new().init();
    let mut model = model;
    for step in 0..STEPS {
        let batch = match shard.get_many((step * BATCH..(step + 1) * BATCH).collect()) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("rank {rank}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (next, loss) = train_step(model, &batch, &device, &mut optim);
        model = next;
        if scenario == "frozen" {
            println!("SENT rank={rank} values={}", ddp.last_exchange_len());
            if ddp.agree_stop(rank == world - 1 && step == 2) {
                println!("STOPPED rank={rank} step={step}");
                let same = params(&model)[..40] == params(&initial)[..40];
                println!("HIDDEN rank={rank} same={same}");
                break;
            }
            continue;
        }
        let local = ddp.local_grad_norm();
        println!("NORM step={step} rank={rank} local={local:e}");
        // One row, as `watch` would log it: the aggregator adds loss/{mean,..} and keeps the
        // precomputed grads/global_norm/{mean,..} as they are.
        let mut row = ddp.grad_norm_stats(local);
        row.push(("loss".into(), loss));
        tracker.log(row);
    }
    let fin = params(&model);
    println!("FINAL rank={rank} hash={:016x}", hash(&fin));

    if rank == 0 && scenario == "train" {
        // One process, the same initial parameters, the concatenated batch of every rank.
        let mut optim = AdamConfig::new().init();
        let mut reference = initial;
        for step in 0..STEPS {
            let global = &all[step * BATCH * world..(step + 1) * BATCH * world];
            reference = train_step(reference, global, &device, &mut optim).0;
        }
        let diff = params(&reference)
            .iter()
            .zip(&fin)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!("MAXDIFF {diff:e}");
    }
    if let Err(e) = tracker.finish() {
        eprintln!("rank {rank}: finish: {e}");
        return ExitCode::FAILURE;
    }
    println!("DONE rank={rank}");
    ExitCode::SUCCESS
}
