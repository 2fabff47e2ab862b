//! Environment-driven behaviour. One test function, alone in its binary: it changes the
//! process environment, which other tests must not observe.

use ezpz_tracker::env::{default_project_name, RankInfo};
use ezpz_tracker::{default_backend_names, resolve_backend_names};

#[path = "../ezpz-tracker/tests/support/env_vars.rs"]
mod env_vars;

use env_vars::clear;

const ALL: &[&str] = &[
    "EZPZ_TRACKER_BACKENDS",
    "EZPZ_TRACKERS",
    "MLFLOW_TRACKING_URI",
    "WANDB_API_KEY",
    "WANDB_MODE",
    "WANDB_DISABLED",
    "WB_PROJECT",
    "WANDB_PROJECT",
    "WB_PROJECT_NAME",
    "RANK",
    "PMI_RANK",
    "OMPI_COMM_WORLD_RANK",
    "PMIX_RANK",
    "SLURM_PROCID",
    "LOCAL_RANK",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "WORLD_SIZE",
    "OMPI_COMM_WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "SLURM_NNODES",
    "PMI_SIZE",
    "SLURM_NTASKS",
];

#[test]
fn environment_precedence() {
    clear(ALL);

    // Backend names: argument → EZPZ_TRACKER_BACKENDS → EZPZ_TRACKERS → defaults.
    let defaults = default_backend_names();
    assert_eq!(&defaults[..2], ["csv", "jsonl"]);
    assert!(!defaults.contains(&"mlflow".to_string()));
    assert_eq!(resolve_backend_names(None), defaults);
    std::env::set_var("EZPZ_TRACKERS", "jsonl");
    assert_eq!(resolve_backend_names(None), ["jsonl"]);
    std::env::set_var("EZPZ_TRACKER_BACKENDS", " csv , memory ,");
    assert_eq!(resolve_backend_names(None), ["csv", "memory"]);
    assert_eq!(resolve_backend_names(Some("jsonl,jsonl")), ["jsonl"]);
    std::env::set_var("EZPZ_TRACKER_BACKENDS", "");
    assert!(resolve_backend_names(None).is_empty());
    std::env::set_var("EZPZ_TRACKER_BACKENDS", "none");
    assert!(resolve_backend_names(None).is_empty());
    assert_eq!(resolve_backend_names(Some("csv,none")), ["csv", "none"]);
    clear(ALL);

    // Remote backends join the defaults only when configured (and compiled in).
    let registered = ezpz_tracker::registered_backends();
    std::env::set_var("MLFLOW_TRACKING_URI", "http://127.0.0.1:1");
    std::env::set_var("WANDB_MODE", "offline");
    let d = default_backend_names();
    assert_eq!(
        d.contains(&"mlflow".to_string()),
        registered.contains(&"mlflow".to_string())
    );
    assert_eq!(
        d.contains(&"wandb".to_string()),
        registered.contains(&"wandb".to_string())
    );
    std::env::set_var("WANDB_DISABLED", "1");
    assert!(!default_backend_names().contains(&"wandb".to_string()));
    clear(ALL);

    // Project: WB_PROJECT → WANDB_PROJECT → WB_PROJECT_NAME → ezpz.<exe dir>.<exe stem>.
    assert_eq!(default_project_name(), "ezpz.deps.env");
    std::env::set_var("WB_PROJECT_NAME", "c");
    assert_eq!(default_project_name(), "c");
    std::env::set_var("WANDB_PROJECT", "b");
    assert_eq!(default_project_name(), "b");
    std::env::set_var("WB_PROJECT", "a");
    assert_eq!(default_project_name(), "a");
    clear(ALL);

    // Rank: RANK → PMI_RANK → OMPI_COMM_WORLD_RANK → PMIX_RANK → SLURM_PROCID.
    assert_eq!(RankInfo::from_env().rank, 0);
    assert_eq!(RankInfo::from_env().world_size, 1);
    std::env::set_var("SLURM_PROCID", "5");
    std::env::set_var("SLURM_NTASKS", "8");
    assert_eq!(RankInfo::from_env().rank, 5);
    std::env::set_var("OMPI_COMM_WORLD_RANK", "3");
    std::env::set_var("OMPI_COMM_WORLD_SIZE", "4");
    let r = RankInfo::from_env();
    assert_eq!((r.rank, r.world_size), (3, 4));
    std::env::set_var("RANK", "2");
    assert_eq!(RankInfo::from_env().rank, 2);
    // Local rank: explicit variable, else rank modulo ranks per node.
    std::env::set_var("LOCAL_WORLD_SIZE", "2");
    let r = RankInfo::from_env();
    assert_eq!((r.local_rank, r.num_nodes), (0, 2));
    std::env::set_var("RANK", "3");
    assert_eq!(RankInfo::from_env().local_rank, 1);
    std::env::set_var("OMPI_COMM_WORLD_LOCAL_RANK", "7");
    assert_eq!(RankInfo::from_env().local_rank, 7);
    clear(ALL);
}
