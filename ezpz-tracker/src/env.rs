//! Every environment variable the tracker reads, and what it detects from them.
//!
//! A value given to [`TrackerBuilder`](crate::TrackerBuilder) wins over the tracker's own
//! variables (`EZPZ_*`, the backend list, the finish timeout, the project variables
//! `WB_PROJECT`, `WANDB_PROJECT`, `WB_PROJECT_NAME`). A backend's own variables
//! (`MLFLOW_EXPERIMENT_NAME`, `WANDB_NAME`, `WANDB_TAGS`, `WANDB_ENTITY`, …) win over the
//! tracker's project and [run settings](crate::run_settings) for that backend, and lose only
//! to that backend's own options ([`MlflowOptions`], [`WandbOptions`]), as with the MLflow
//! and W&B clients. The run settings' own variables (`EZPZ_RUN_NAME`, `EZPZ_TAGS`,
//! `EZPZ_NOTES`, `EZPZ_RUN_GROUP`, `EZPZ_JOB_TYPE`) are in [`run_settings`](crate::run_settings).
//!
//! [`MlflowOptions`]: crate::MlflowOptions
//! [`WandbOptions`]: crate::WandbOptions

use std::path::Path;
use std::time::Duration;

/// Comma-separated backend names (`csv,jsonl,tensorboard,mlflow,wandb`, or `none`).
pub const EZPZ_TRACKER_BACKENDS: &str = "EZPZ_TRACKER_BACKENDS";
/// Shorthand for [`EZPZ_TRACKER_BACKENDS`], read when that one is unset.
pub const EZPZ_TRACKERS: &str = "EZPZ_TRACKERS";
/// Seconds `flush` and `finish` may take (default 30). A value above [`MAX_WAIT`] (`1e20`,
/// `inf`) counts as [`MAX_WAIT`]; a negative, NaN or unparsable one is ignored with one
/// warning (see [`var_seconds`]).
pub const EZPZ_FINISH_TIMEOUT: &str = "EZPZ_FINISH_TIMEOUT";
/// `1`/`true`/`yes`: append to the run already in the output directory instead of refusing it
/// (what [`TrackerBuilder::resume`](crate::TrackerBuilder::resume) sets from code).
pub const EZPZ_RESUME: &str = "EZPZ_RESUME";
/// Scheduler override (`PBS`, `SLURM`, …).
pub const EZPZ_SCHEDULER: &str = "EZPZ_SCHEDULER";
/// Project name, first choice after the code's.
pub const WB_PROJECT: &str = "WB_PROJECT";
/// Project name, second choice.
pub const WANDB_PROJECT: &str = "WANDB_PROJECT";
/// Project name, third choice.
pub const WB_PROJECT_NAME: &str = "WB_PROJECT_NAME";
/// MLflow server; when set, `mlflow` joins the default backends.
pub const MLFLOW_TRACKING_URI: &str = "MLFLOW_TRACKING_URI";
/// MLflow experiment name; wins over the tracker's experiment and project name.
pub const MLFLOW_EXPERIMENT_NAME: &str = "MLFLOW_EXPERIMENT_NAME";
/// MLflow experiment id to log into (skips the lookup by name).
pub const MLFLOW_EXPERIMENT_ID: &str = "MLFLOW_EXPERIMENT_ID";
/// An existing MLflow run to attach to instead of creating one.
pub const MLFLOW_RUN_ID: &str = "MLFLOW_RUN_ID";
/// MLflow basic-auth user name (with [`MLFLOW_TRACKING_PASSWORD`]).
pub const MLFLOW_TRACKING_USERNAME: &str = "MLFLOW_TRACKING_USERNAME";
/// MLflow basic-auth password (with [`MLFLOW_TRACKING_USERNAME`]).
pub const MLFLOW_TRACKING_PASSWORD: &str = "MLFLOW_TRACKING_PASSWORD";
/// MLflow bearer token (used when no user name and password are set).
pub const MLFLOW_TRACKING_TOKEN: &str = "MLFLOW_TRACKING_TOKEN";
/// API key sent as `X-Api-Key` to MLflow when neither basic auth nor a token is set.
pub const AMSC_API_KEY: &str = "AMSC_API_KEY";
/// Older spelling of [`AMSC_API_KEY`], read when that one is unset.
pub const AM_SC_API_KEY: &str = "AM_SC_API_KEY";
/// `true`/`1`/`yes`: do not verify the MLflow server's TLS certificate.
pub const MLFLOW_TRACKING_INSECURE_TLS: &str = "MLFLOW_TRACKING_INSECURE_TLS";
/// A PEM file of CA certificates to trust for the MLflow server.
pub const MLFLOW_TRACKING_SERVER_CERT_PATH: &str = "MLFLOW_TRACKING_SERVER_CERT_PATH";
/// Seconds one MLflow request may take (default 120, as MLflow's client).
pub const MLFLOW_HTTP_REQUEST_TIMEOUT: &str = "MLFLOW_HTTP_REQUEST_TIMEOUT";
/// The user name recorded with a run, in order of precedence.
pub const USER_VARS: &[&str] = &["USER", "LOGNAME", "USERNAME"];
/// W&B API key; when set, `wandb` joins the default backends.
pub const WANDB_API_KEY: &str = "WANDB_API_KEY";
/// W&B mode (`online`, `offline`, `disabled`, `shared`, `dryrun` = offline); `offline` adds
/// `wandb` to the default backends.
pub const WANDB_MODE: &str = "WANDB_MODE";
/// Any non-empty value disables W&B.
pub const WANDB_DISABLED: &str = "WANDB_DISABLED";
/// W&B server for online runs (default `https://api.wandb.ai`).
pub const WANDB_BASE_URL: &str = "WANDB_BASE_URL";
/// W&B team or user the run belongs to (else the tracker's, else the API key's own).
pub const WANDB_ENTITY: &str = "WANDB_ENTITY";
/// W&B run id; an existing one resumes that run online (history continues after it).
pub const WANDB_RUN_ID: &str = "WANDB_RUN_ID";
/// W&B display name of the run (else the tracker's run name).
pub const WANDB_NAME: &str = "WANDB_NAME";
/// W&B tags, comma-separated (else the tracker's).
pub const WANDB_TAGS: &str = "WANDB_TAGS";
/// W&B run notes (else the tracker's).
pub const WANDB_NOTES: &str = "WANDB_NOTES";
/// W&B run group (else the tracker's).
pub const WANDB_RUN_GROUP: &str = "WANDB_RUN_GROUP";
/// W&B job type (else the tracker's).
pub const WANDB_JOB_TYPE: &str = "WANDB_JOB_TYPE";
/// The MPI thread level `Mpi::init` asks for (feature `mpi`): `multiple` (the default),
/// `serialized` (to test, on any MPI, the serialised path Cray MPICH takes by default),
/// `funneled` or `single` (refused: ezpz needs at least `serialized`).
pub const EZPZ_MPI_THREADING: &str = "EZPZ_MPI_THREADING";

/// Global rank, in order of precedence.
pub const RANK_VARS: &[&str] = &[
    "RANK",
    "PMI_RANK",
    "OMPI_COMM_WORLD_RANK",
    "PMIX_RANK",
    // Cray PALS `mpiexec` (Polaris, Aurora, Sunspot).
    "PALS_RANKID",
    // MVAPICH2.
    "MV2_COMM_WORLD_RANK",
    "SLURM_PROCID",
];
/// Rank within the node, in order of precedence.
pub const LOCAL_RANK_VARS: &[&str] = &[
    "LOCAL_RANK",
    "PALS_LOCAL_RANKID",
    "PMIX_LOCAL_RANK",
    "PMI_LOCAL_RANK",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "MV2_COMM_WORLD_LOCAL_RANK",
    "MPI_LOCALRANKID",
    "MPICH_LOCALRANKID",
    "SLURM_LOCAL_ID",
];
/// World size, in order of precedence.
pub const WORLD_SIZE_VARS: &[&str] = &[
    "WORLD_SIZE",
    "PMI_SIZE",
    "OMPI_COMM_WORLD_SIZE",
    "MV2_COMM_WORLD_SIZE",
    "SLURM_NTASKS",
];
/// Ranks per node, in order of precedence.
pub const LOCAL_SIZE_VARS: &[&str] = &[
    "LOCAL_WORLD_SIZE",
    "NGPU_PER_HOST",
    "PMI_LOCAL_SIZE",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "MV2_COMM_WORLD_LOCAL_SIZE",
    "MPI_LOCALNRANKS",
    "SLURM_NTASKS_PER_NODE",
];

/// A variable's value, `None` when unset or blank.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether the variable holds a yes (`1`, `true`, `yes`, `on`; any case).
pub fn var_flag(name: &str) -> bool {
    var(name).is_some_and(|v| matches!(v.to_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// The longest wait any duration option or variable stands for (24 h). Larger values,
/// `inf` and [`Duration::MAX`] mean this: a deadline computed from it never overflows.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// `secs` seconds as a [`Duration`], saturating at [`MAX_WAIT`] (`1e20` and `inf` give
/// [`MAX_WAIT`]); `None` for a negative value or NaN, which mean nothing as a wait.
pub fn seconds(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    if secs >= MAX_WAIT.as_secs_f64() {
        return Some(MAX_WAIT);
    }
    // `-0.0` passes the checks above; it is zero.
    Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO))
}

/// A duration given in code, capped at [`MAX_WAIT`].
pub fn clamp_wait(wait: Duration) -> Duration {
    wait.min(MAX_WAIT)
}

/// A number of seconds read from the variable `name` (see [`seconds`]): `None` when it is
/// unset, and when it is negative, NaN or not a number, with one warning naming it.
pub fn var_seconds(name: &str) -> Option<Duration> {
    let raw = var(name)?;
    let parsed = raw.parse::<f64>().ok().and_then(seconds);
    if parsed.is_none() {
        crate::warn!("ezpz: ignoring `{name}={raw}`: not a number of seconds ≥ 0");
    }
    parsed
}

fn first_usize(names: &[&str]) -> Option<usize> {
    names.iter().find_map(|n| var(n)?.parse().ok())
}

/// Where this process sits in a distributed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankInfo {
    /// Global rank (0 does all external I/O).
    pub rank: usize,
    /// Rank within the node.
    pub local_rank: usize,
    /// Number of ranks.
    pub world_size: usize,
    /// Lower-case host name.
    pub hostname: String,
    /// `PBS`, `SLURM` or `UNKNOWN`.
    pub scheduler: String,
    /// Known machine name (from the host name), else the host name.
    pub machine: String,
    /// The scheduler's job id, if any.
    pub job_id: Option<String>,
    /// Number of nodes.
    pub num_nodes: usize,
}

impl Default for RankInfo {
    fn default() -> Self {
        RankInfo::single()
    }
}

impl RankInfo {
    /// A single process: rank 0 of 1 on this host.
    pub fn single() -> Self {
        let hostname = hostname();
        RankInfo {
            rank: 0,
            local_rank: 0,
            world_size: 1,
            machine: machine(&hostname),
            scheduler: scheduler(),
            job_id: job_id(),
            num_nodes: 1,
            hostname,
        }
    }

    /// Reads rank, local rank and world size from the launcher's variables ([`RANK_VARS`],
    /// [`LOCAL_RANK_VARS`], [`WORLD_SIZE_VARS`], [`LOCAL_SIZE_VARS`]: torchrun, MPICH/Intel
    /// MPI, Open MPI, PMIx, Cray PALS, MVAPICH2, Slurm). When the launcher set none and
    /// MPI is initialised (feature `mpi`), MPI's own rank and size; otherwise rank 0 of 1.
    pub fn from_env() -> Self {
        let mut info = RankInfo::single();
        let (rank, size) = match first_usize(RANK_VARS) {
            Some(r) => (r, first_usize(WORLD_SIZE_VARS)),
            None => mpi_rank().map_or((0, first_usize(WORLD_SIZE_VARS)), |(r, s)| (r, Some(s))),
        };
        info.rank = rank;
        info.world_size = size.unwrap_or(1).max(info.rank + 1);
        let per_node = first_usize(LOCAL_SIZE_VARS).filter(|n| *n > 0);
        info.num_nodes = var("SLURM_NNODES")
            .and_then(|v| v.parse().ok())
            .or_else(|| per_node.map(|p| info.world_size.div_ceil(p)))
            .unwrap_or(1)
            .max(1);
        info.local_rank = first_usize(LOCAL_RANK_VARS).unwrap_or_else(|| {
            let per_node = per_node.unwrap_or(info.world_size / info.num_nodes).max(1);
            info.rank % per_node
        });
        info
    }

    /// The same host and scheduler with an explicit rank and world size.
    pub fn with_rank(mut self, rank: usize, world_size: usize) -> Self {
        self.rank = rank;
        self.world_size = world_size.max(rank + 1);
        self
    }

    /// Whether this process does external I/O.
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }
}

/// Rank and size of MPI's world communicator, when MPI is initialised (and not finalised).
#[cfg(feature = "mpi")]
fn mpi_rank() -> Option<(usize, usize)> {
    use mpi::traits::Communicator;
    if !mpi::environment::is_initialized() || mpi::environment::is_finalized() {
        return None;
    }
    let world = mpi::topology::SimpleCommunicator::world();
    Some((
        usize::try_from(world.rank()).ok()?,
        usize::try_from(world.size()).ok()?,
    ))
}

#[cfg(not(feature = "mpi"))]
fn mpi_rank() -> Option<(usize, usize)> {
    None
}

/// The lower-case host name (`HOSTNAME`/`HOST` when the system call fails).
pub fn hostname() -> String {
    let name = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_string();
    let name = if name.is_empty() {
        var("HOSTNAME")
            .or_else(|| var("HOST"))
            .unwrap_or_else(|| "localhost".into())
    } else {
        name
    };
    name.to_lowercase()
}

/// The machine name for a host (the ALCF/NERSC/OLCF prefix table of the original), else the
/// host name itself.
pub fn machine(hostname: &str) -> String {
    const PREFIXES: &[(&str, &str)] = &[
        ("frontier", "Frontier"),
        ("sophia", "Sophia"),
        ("theta", "ThetaGPU"),
        ("sunspot", "SunSpot"),
        ("x1", "SunSpot"),
        ("aurora", "Aurora"),
        ("x4", "Aurora"),
        ("login", "Perlmutter"),
        ("nid", "Perlmutter"),
    ];
    if let Some((_, m)) = PREFIXES.iter().find(|(p, _)| hostname.starts_with(p)) {
        return (*m).to_string();
    }
    if hostname.starts_with("x3") {
        return if hostname.contains("sirius") {
            "Sirius"
        } else {
            "Polaris"
        }
        .to_string();
    }
    hostname.to_string()
}

/// `EZPZ_SCHEDULER`, else `PBS`/`SLURM` from their job variables, else `UNKNOWN`.
pub fn scheduler() -> String {
    if let Some(s) = var(EZPZ_SCHEDULER) {
        return s.to_uppercase();
    }
    if var("PBS_JOBID").is_some() {
        "PBS".into()
    } else if var("SLURM_JOB_ID").is_some() || var("SLURM_JOBID").is_some() {
        "SLURM".into()
    } else {
        "UNKNOWN".into()
    }
}

/// The scheduler's job id (PBS short form), if any.
pub fn job_id() -> Option<String> {
    var("PBS_JOBID")
        .map(|j| j.split('.').next().unwrap_or_default().to_string())
        .or_else(|| var("SLURM_JOB_ID"))
        .or_else(|| var("SLURM_JOBID"))
}

/// The project name when none is given: `WB_PROJECT` → `WANDB_PROJECT` → `WB_PROJECT_NAME` →
/// `ezpz.<exe parent dir>.<exe stem>` (so `target/release/examples/vit` gives
/// `ezpz.examples.vit`), or `ezpz.<exe stem>` for a binary directly in a cargo profile
/// directory, so `cargo run` and `cargo run --release` name the same project.
pub fn default_project_name() -> String {
    var(WB_PROJECT)
        .or_else(|| var(WANDB_PROJECT))
        .or_else(|| var(WB_PROJECT_NAME))
        .unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| project_from_exe(&exe))
                .unwrap_or_else(|| "ezpz".into())
        })
}

fn project_from_exe(exe: &Path) -> Option<String> {
    let stem = exe.file_stem()?.to_string_lossy().to_string();
    // Test and example binaries carry a `-<hash>` suffix in deps/; drop it.
    let stem = match stem.rsplit_once('-') {
        Some((base, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            base.to_string()
        }
        _ => stem,
    };
    let dir = exe.parent()?;
    // `target/debug`, `target/release`, a custom profile or another target dir: the
    // profile says nothing about the program.
    let profile = dir.join(".fingerprint").is_dir()
        || dir
            .file_name()
            .is_some_and(|n| n == "debug" || n == "release");
    if profile {
        return Some(format!("ezpz.{stem}"));
    }
    let parent = dir.file_name()?.to_string_lossy().to_string();
    Some(format!("ezpz.{parent}.{stem}"))
}

/// Loads credentials from `.env` in the working directory, then `~/.amsc.env`. Neither file
/// ever overrides a variable that is already set (the job's own environment wins, then
/// `.env`), and no directory above the working directory is searched: a `.env` in a shared
/// parent directory cannot redirect the tracking URI or switch TLS checks off.
pub fn load_dotenv() {
    if let Ok(dir) = std::env::current_dir() {
        let local = dir.join(".env");
        if local.is_file() {
            // `from_path` (unlike `from_path_override`) keeps variables already set.
            let _ = dotenvy::from_path(&local);
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        let user = Path::new(&home).join(".amsc.env");
        if user.is_file() {
            let _ = dotenvy::from_path(&user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_prefix_table() {
        assert_eq!(machine("x4102c3s0b0n0"), "Aurora");
        assert_eq!(machine("x3005c0s13b0n0"), "Polaris");
        assert_eq!(machine("x3005-sirius"), "Sirius");
        assert_eq!(machine("nid001234"), "Perlmutter");
        assert_eq!(machine("laptop"), "laptop");
    }

    #[test]
    fn seconds_saturate_instead_of_panicking() {
        assert_eq!(seconds(1e20), Some(MAX_WAIT));
        assert_eq!(seconds(f64::INFINITY), Some(MAX_WAIT));
        assert_eq!(seconds(f64::MAX), Some(MAX_WAIT));
        assert_eq!(seconds(-1.0), None);
        assert_eq!(seconds(f64::NAN), None);
        assert_eq!(seconds(f64::NEG_INFINITY), None);
        assert_eq!(seconds(-0.0), Some(Duration::ZERO));
        assert_eq!(seconds(2.5), Some(Duration::from_millis(2500)));
        assert_eq!(clamp_wait(Duration::MAX), MAX_WAIT);
        assert_eq!(clamp_wait(Duration::from_secs(3)), Duration::from_secs(3));
    }

    #[test]
    fn project_from_example_binary() {
        let p = Path::new("/x/target/release/examples/vit");
        assert_eq!(project_from_exe(p).unwrap(), "ezpz.examples.vit");
        let t = Path::new("/x/target/debug/deps/tracker-0123456789abcdef");
        assert_eq!(project_from_exe(t).unwrap(), "ezpz.deps.tracker");
        let r = Path::new("/x/target/release/examples/vit");
        assert_eq!(project_from_exe(r), project_from_exe(p));
    }

    #[test]
    fn project_does_not_change_between_debug_and_release() {
        let debug = project_from_exe(Path::new("/x/target/debug/trainer"));
        let release = project_from_exe(Path::new("/x/target/release/trainer"));
        assert_eq!(debug.as_deref(), Some("ezpz.trainer"));
        assert_eq!(debug, release);
        // A custom profile in another target dir is recognised by cargo's own folders.
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("bench-profile");
        std::fs::create_dir_all(profile.join(".fingerprint")).unwrap();
        assert_eq!(
            project_from_exe(&profile.join("trainer")).as_deref(),
            Some("ezpz.trainer")
        );
        // A program outside cargo's target dirs keeps its folder.
        assert_eq!(
            project_from_exe(Path::new("/opt/tools/trainer")).as_deref(),
            Some("ezpz.tools.trainer")
        );
    }
}
