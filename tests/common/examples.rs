//! Finding (current, built with the test's features) and running the workspace's example
//! binaries from the root tests, and the `cargo build` a test may start for them.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Flags of a tiny ViT run (`examples/vit`): the debug preset, two short epochs, CSV and
/// JSONL only, the norms watched every other step.
pub const VIT_TINY: &[&str] = &[
    "--model",
    "debug",
    "--img-size",
    "16",
    "--max-iters",
    "6",
    "--epochs",
    "2",
    "--valid-size",
    "16",
    "--backends",
    "csv,jsonl",
    "--watch-freq",
    "2",
];

/// The example binary `name`, current, built with this test's profile and features: every
/// test that runs an example gets it here.
///
/// Cargo sets `CARGO_BIN_EXE_*` only for `[[bin]]` targets, so the example is found where
/// `cargo test` put it: `<target>/<profile>/examples/<name>`, next to this test binary's
/// `deps/` folder. `scripts/test` builds every example first with the suite's selection and
/// features (`cargo build --workspace --examples --features ezpz/…`), so that copy is current
/// and nothing is built here. When it is missing, older than a source it is built from (the
/// example's own files, `examples/shared/`, the `ezpz-tracker` and `ezpz-burn` sources, the
/// manifests and `Cargo.lock`), or its `--version` names other features, as after a filtered
/// `cargo test --test vit`, this builds it with the same selection (`--workspace`) and the
/// features compiled into this test, so cargo resolves dependency features as the suite does
/// and reuses its artifacts (a different selection would rebuild burn's dependencies).
pub fn example_binary(name: &str) -> PathBuf {
    let profile_dir = profile_dir();
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    // One build per test process, however many tests ask at once.
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if !bin.is_file() || older_than_sources(&bin, name) || !has_test_features(&bin) {
        build_example(name, &profile_dir);
    }
    assert!(
        has_test_features(&bin),
        "{} is not built with this test's features ({})",
        bin.display(),
        features().join(", ")
    );
    bin
}

/// Whether a source `bin` is built from (see [`example_binary`]) is newer than `bin`.
fn older_than_sources(bin: &std::path::Path, name: &str) -> bool {
    fn newest(path: &std::path::Path) -> Option<std::time::SystemTime> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_dir() {
            return meta.modified().ok();
        }
        std::fs::read_dir(path)
            .ok()?
            .flatten()
            .filter_map(|e| newest(&e.path()))
            .max()
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples = root.join("examples");
    let sources = [
        examples.join(format!("{name}.rs")),
        examples.join(name),
        examples.join("shared"),
        root.join("ezpz-tracker/src"),
        root.join("ezpz-tracker/Cargo.toml"),
        root.join("ezpz-burn/src"),
        root.join("ezpz-burn/Cargo.toml"),
        root.join("Cargo.toml"),
        root.join("Cargo.lock"),
    ]
    .iter()
    .filter_map(|p| newest(p))
    .max();
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok();
    matches!((sources, built), (Some(s), Some(b)) if s > b)
}

/// The cargo features of this test build among those the examples know.
fn features() -> Vec<&'static str> {
    [
        ("mpi", cfg!(feature = "mpi")),
        ("ndarray", cfg!(feature = "ndarray")),
        ("wgpu", cfg!(feature = "wgpu")),
        ("cuda", cfg!(feature = "cuda")),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(f, _)| *f)
    .collect()
}

/// Whether `bin --version` ends with `(features: …)` listing exactly this test's features.
fn has_test_features(bin: &std::path::Path) -> bool {
    let Ok(out) = Command::new(bin).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(list) = text
        .trim()
        .rsplit_once("(features: ")
        .map(|(_, l)| l.trim_end_matches(')'))
    else {
        return false;
    };
    let mut built: Vec<&str> = list.split(", ").filter(|f| *f != "none").collect();
    let mut wanted = features();
    built.sort_unstable();
    wanted.sort_unstable();
    built == wanted
}

fn build_example(name: &str, profile_dir: &std::path::Path) {
    let status = suite_build(profile_dir)
        .args(["--example", name])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --example {name} failed");
}

/// The directory of this test binary's profile, `<target>/<profile>`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binary under <target>/<profile>/deps")
        .to_path_buf()
}

/// `cargo build --workspace --features ezpz/…` into `profile_dir` (its target and profile):
/// the suite's selection and this test's features, as `scripts/test` builds, so dependency
/// features resolve as in the suite's build and its artifacts are reused. Add the targets.
pub fn suite_build(profile_dir: &std::path::Path) -> Command {
    let features: Vec<String> = features().iter().map(|f| format!("ezpz/{f}")).collect();
    let mut cmd = nested_cargo();
    cmd.args(["build", "--workspace"]);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        cmd.arg("--release");
    }
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    if let Some(target) = profile_dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    cmd
}

/// A `cargo` command, in the repository root, for a build started from a test: without the
/// variables cargo sets for the test process (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`,
/// `OUT_DIR`, …). Build scripts watch some of them (`ring`'s asks to rerun when
/// `CARGO_PKG_NAME` changes): left in, they would make this build rerun those scripts and
/// recompile everything above them, and the next plain `cargo` build do it again.
pub fn nested_cargo() -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let set_by_cargo = name == "OUT_DIR"
            || name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_EXE_")
            || matches!(
                name,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
            );
        if set_by_cargo {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

/// `mpirun` on this machine, if any.
pub fn mpirun() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("mpirun"))
        .find(|p| p.is_file())
}

/// A command for `mpirun -np <ranks>`, with OpenMPI's switches for running as root and for
/// more ranks than cores (environment variables, which MPICH ignores instead of rejecting).
pub fn mpirun_command(mpirun: &std::path::Path, ranks: usize) -> Command {
    let mut cmd = Command::new(mpirun);
    cmd.args(["-np", &ranks.to_string()])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1");
    cmd
}

/// Runs `cmd` with piped output, killing it with everything it started (its own process
/// group: `mpirun` and every rank) and failing the test after `limit`: a hung collective must
/// fail the test, not stall the suite.
pub fn output_within(mut cmd: Command, limit: Duration) -> Output {
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn the example");
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).ok();
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut v).ok();
        v
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the example") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            panic!("still running after {limit:?}, killed; stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}
