//! `RankShard`: one rank's share of a burn `Dataset`.

use std::error::Error;
use std::marker::PhantomData;

use burn::data::dataset::Dataset;

/// Rank `rank`'s share of a dataset split across `world_size` ranks: items `rank`,
/// `rank + world_size`, `rank + 2·world_size`, … (interleaved, so a dataset sorted by class
/// still gives every rank every class).
///
/// Every rank gets exactly `len / world_size` items; the remainder is left out. Equal shard
/// lengths give every rank the same number of batches, which data parallelism needs: a rank
/// with one batch more would wait forever in that step's gradient all-reduce.
///
/// ```
/// # fn main() -> Result<(), burn::data::dataset::DatasetError> {
/// use burn::data::dataset::{Dataset, InMemDataset};
/// use ezpz_burn::ddp::RankShard;
///
/// let data = InMemDataset::new((0..10).collect::<Vec<u32>>());
/// let shard = RankShard::new(data, 1, 3);   // or `DataParallel::shard(data)`
/// assert_eq!(shard.len(), 3);
/// assert_eq!(shard.iter().collect::<Result<Vec<_>, _>>()?, [1, 4, 7]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RankShard<D, I> {
    dataset: D,
    rank: usize,
    world_size: usize,
    len: usize,
    _item: PhantomData<fn() -> I>,
}

impl<D, I> RankShard<D, I> {
    /// The share of `dataset` that `rank` (of `world_size`) trains on. A `world_size` of 0
    /// counts as 1; a `rank` outside `0..world_size` gets an empty shard.
    pub fn new<E>(dataset: D, rank: usize, world_size: usize) -> Self
    where
        D: Dataset<I, E>,
        E: Error + Send + Sync + 'static,
    {
        let world_size = world_size.max(1);
        let len = if rank < world_size {
            dataset.len() / world_size
        } else {
            0
        };
        RankShard {
            dataset,
            rank,
            world_size,
            len,
            _item: PhantomData,
        }
    }

    /// The index in the whole dataset of this shard's item `index`.
    pub fn global_index(&self, index: usize) -> usize {
        self.rank + index * self.world_size
    }

    /// The wrapped dataset.
    pub fn inner(&self) -> &D {
        &self.dataset
    }
}

impl<D, I, E> Dataset<I, E> for RankShard<D, I>
where
    D: Dataset<I, E>,
    E: Error + Send + Sync + 'static,
{
    /// # Panics
    /// `index >= len()`, as the trait's contract says.
    fn get(&self, index: usize) -> Result<I, E> {
        assert!(
            index < self.len,
            "index {index} out of bounds for a RankShard of {} items",
            self.len
        );
        self.dataset.get(self.global_index(index))
    }

    fn get_many(&self, indexes: Vec<usize>) -> Result<Vec<I>, E> {
        let global = indexes
            .into_iter()
            .map(|i| {
                assert!(
                    i < self.len,
                    "index {i} out of bounds for a RankShard of {} items",
                    self.len
                );
                self.global_index(i)
            })
            .collect();
        self.dataset.get_many(global)
    }

    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::data::dataset::InMemDataset;

    fn data(n: u32) -> InMemDataset<u32> {
        InMemDataset::new((0..n).collect())
    }

    #[test]
    fn shards_are_disjoint_equal_and_cover_all_but_the_remainder() {
        let world = 4;
        let shards: Vec<Vec<u32>> = (0..world)
            .map(|r| {
                let shard = RankShard::new(data(10), r, world);
                shard.iter().map(Result::unwrap).collect()
            })
            .collect();
        assert!(shards.iter().all(|s| s.len() == 2), "{shards:?}");
        let mut all: Vec<u32> = shards.concat();
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(shards[3], [3, 7]);
    }

    #[test]
    fn get_many_translates_indexes_and_bad_ranks_get_nothing() {
        let shard = RankShard::new(data(9), 2, 3);
        assert_eq!(shard.get_many(vec![2, 0]).unwrap(), [8, 2]);
        assert_eq!(RankShard::new(data(9), 3, 3).len(), 0);
        assert_eq!(RankShard::new(data(9), 0, 0).len(), 9);
    }

    #[test]
    #[should_panic(expected = "out of bounds for a RankShard")]
    fn an_index_past_the_shard_panics_like_any_dataset() {
        let _ = RankShard::new(data(9), 0, 3).get(3);
    }
}
