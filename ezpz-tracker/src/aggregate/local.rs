//! [`LocalGroup`]: ranks as threads of one process, for tests and single-process simulations
//! of a distributed run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::{Aggregator, Exchange};

/// A group of in-process ranks: give each thread one [`LocalAggregator`] and build its tracker
/// with it (and the matching [`RankInfo`](crate::RankInfo)).
///
/// ```
/// use ezpz_tracker::{LocalGroup, MemoryBackend, RankInfo, TrackerBuilder};
///
/// let memory = MemoryBackend::new();
/// let threads: Vec<_> = LocalGroup::new(2)
///     .into_iter()
///     .enumerate()
///     .map(|(rank, aggregator)| {
///         let memory = memory.clone();
///         std::thread::spawn(move || {
///             let mut builder = TrackerBuilder::new()
///                 .backends("none")
///                 .rank_info(RankInfo::single().with_rank(rank, 2))
///                 .aggregator(aggregator);
///             if rank == 0 {
///                 builder = builder.add_backend(memory);
///             }
///             let tracker = builder.build().unwrap();
///             tracker.log([("loss", 1.0 + rank as f64)]);
///             tracker.finish().unwrap();
///         })
///     })
///     .collect();
/// threads.into_iter().for_each(|t| t.join().unwrap());
/// let row = &memory.snapshot().records[0];
/// assert_eq!(row.get("loss/mean").and_then(|v| v.as_f64()), Some(1.5));
/// ```
#[derive(Debug)]
pub struct LocalGroup;

impl LocalGroup {
    /// `world` aggregators, one per rank, in rank order.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(world: usize) -> Vec<LocalAggregator> {
        let shared = Arc::new(Shared {
            world,
            round: Mutex::new(Round {
                generation: 0,
                arrived: 0,
                payloads: vec![Vec::new(); world],
                done: vec![false; world],
                result: Exchange::default(),
            }),
            changed: Condvar::new(),
        });
        (0..world)
            .map(|rank| LocalAggregator {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }
}

/// One rank of a [`LocalGroup`].
#[derive(Debug)]
pub struct LocalAggregator {
    rank: usize,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    world: usize,
    round: Mutex<Round>,
    changed: Condvar,
}

#[derive(Debug)]
struct Round {
    generation: u64,
    arrived: usize,
    payloads: Vec<Vec<u8>>,
    done: Vec<bool>,
    /// The last completed round's outcome (rank 0 takes the payloads before it can start the
    /// next round, which needs its deposit).
    result: Exchange,
}

impl Aggregator for LocalAggregator {
    fn world_size(&self) -> usize {
        self.shared.world
    }

    fn rank(&self) -> usize {
        self.rank
    }

    fn exchange(&self, payload: &[u8], done: bool, give_up: &AtomicBool) -> Option<Exchange> {
        let shared = &*self.shared;
        let mut round = shared.round.lock().unwrap_or_else(|e| e.into_inner());
        let generation = round.generation;
        round.payloads[self.rank] = payload.to_vec();
        round.done[self.rank] = done;
        round.arrived += 1;
        if round.arrived == shared.world {
            round.arrived = 0;
            round.result = Exchange {
                all_done: round.done.iter().all(|&d| d),
                done: round.done.clone(),
                payloads: std::mem::replace(&mut round.payloads, vec![Vec::new(); shared.world]),
            };
            round.generation += 1;
            shared.changed.notify_all();
        } else {
            while round.generation == generation {
                if give_up.load(Ordering::Acquire) {
                    return None;
                }
                round = shared
                    .changed
                    .wait_timeout(round, Duration::from_millis(10))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        Some(Exchange {
            all_done: round.result.all_done,
            done: round.result.done.clone(),
            payloads: if self.rank == 0 {
                std::mem::take(&mut round.result.payloads)
            } else {
                Vec::new()
            },
        })
    }
}
