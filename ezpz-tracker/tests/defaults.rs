//! The Python user's defaults: W&B on when logged in, rank variables of every launcher.
//! One test in its own binary: it changes the process environment.

use ezpz_tracker::{default_backend_names, RankInfo};

#[path = "support/env_vars.rs"]
mod env_vars;

use env_vars::{clear, clear_ranks};

#[test]
fn python_users_defaults() {
    // W&B is on by default once `wandb login` wrote its netrc entry, as in the original.
    clear(&[
        "EZPZ_TRACKER_BACKENDS",
        "EZPZ_TRACKERS",
        "MLFLOW_TRACKING_URI",
        "WANDB_API_KEY",
        "WANDB_MODE",
        "WANDB_DISABLED",
        "WANDB_BASE_URL",
    ]);
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HOME", home.path());
    let has_wandb = || default_backend_names().iter().any(|b| b == "wandb");
    assert!(!has_wandb(), "not logged in: no wandb");
    std::fs::write(
        home.path().join(".netrc"),
        "machine api.wandb.ai\n  login user\n  password 0123456789abcdef\n",
    )
    .unwrap();
    if cfg!(feature = "wandb") {
        assert!(has_wandb(), "logged in through ~/.netrc: wandb on");
        // A netrc entry for another server does not count for a custom W&B host.
        std::env::set_var("WANDB_BASE_URL", "https://wandb.example.org");
        assert!(!has_wandb());
        std::env::remove_var("WANDB_BASE_URL");
        std::env::set_var("WANDB_DISABLED", "true");
        assert!(!has_wandb(), "WANDB_DISABLED wins");
        std::env::remove_var("WANDB_DISABLED");
    }
    std::fs::remove_file(home.path().join(".netrc")).unwrap();
    std::env::set_var("WANDB_API_KEY", "k");
    assert_eq!(has_wandb(), cfg!(feature = "wandb"));
    std::env::remove_var("WANDB_API_KEY");

    // Cray PALS (Polaris, Aurora): rank from PALS_RANKID, local rank from
    // PALS_LOCAL_RANKID, size from its PMI.
    clear_ranks();
    std::env::set_var("PALS_RANKID", "5");
    std::env::set_var("PALS_LOCAL_RANKID", "1");
    std::env::set_var("PMI_SIZE", "8");
    let r = RankInfo::from_env();
    assert_eq!((r.rank, r.local_rank, r.world_size), (5, 1, 8));

    // MVAPICH2.
    clear_ranks();
    std::env::set_var("MV2_COMM_WORLD_RANK", "6");
    std::env::set_var("MV2_COMM_WORLD_SIZE", "12");
    std::env::set_var("MV2_COMM_WORLD_LOCAL_RANK", "2");
    std::env::set_var("MV2_COMM_WORLD_LOCAL_SIZE", "4");
    let r = RankInfo::from_env();
    assert_eq!(
        (r.rank, r.local_rank, r.world_size, r.num_nodes),
        (6, 2, 12, 3)
    );

    // MPICH / Intel MPI (hydra): PMI_RANK, MPI_LOCALRANKID, MPI_LOCALNRANKS.
    clear_ranks();
    std::env::set_var("PMI_RANK", "3");
    std::env::set_var("PMI_SIZE", "4");
    std::env::set_var("MPI_LOCALRANKID", "1");
    std::env::set_var("MPI_LOCALNRANKS", "2");
    let r = RankInfo::from_env();
    assert_eq!(
        (r.rank, r.local_rank, r.world_size, r.num_nodes),
        (3, 1, 4, 2)
    );

    // Nothing set (and MPI not initialised): rank 0 of 1.
    clear_ranks();
    let r = RankInfo::from_env();
    assert_eq!((r.rank, r.local_rank, r.world_size), (0, 0, 1));
}
