//! Clearing the process environment, for the tests that change it (each alone in its test
//! binary); shared by this crate's tests and the workspace's root tests (with `#[path]`).
#![allow(dead_code)]

use ezpz_tracker::env::{LOCAL_RANK_VARS, LOCAL_SIZE_VARS, RANK_VARS, WORLD_SIZE_VARS};

/// Removes every variable in `vars`.
pub fn clear(vars: &[&str]) {
    for v in vars {
        std::env::remove_var(v);
    }
}

/// Removes every launcher variable the rank detection reads (rank, local rank, world size,
/// ranks per node, Slurm's node count).
pub fn clear_ranks() {
    for list in [RANK_VARS, LOCAL_RANK_VARS, WORLD_SIZE_VARS, LOCAL_SIZE_VARS] {
        clear(list);
    }
    clear(&["SLURM_NNODES"]);
}
