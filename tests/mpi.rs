//! Cross-rank aggregation and data parallelism under a real `mpirun` (OpenMPI).
//!
//! Each test starts one of the `ezpz-mpi-*-probe` programs (`tests/mpi_programs/`, built with
//! `--features mpi`) under `mpirun -np N` with the OpenMPI settings for root and
//! oversubscription, kills the whole process group if it outlives its guard (a hang), and
//! checks what the ranks wrote: rank 0's `metrics.csv`, read back with the `csv` crate, and
//! the lines the probes print. Outside CI a missing `mpirun` or a build without `mpi` skips.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Generous: debug builds, several ranks on two cores. Only a hang should reach it.
const GUARD: Duration = Duration::from_secs(240);

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// The probe's path, or `None` (after printing why) when it cannot run here.
fn probe(name: &str) -> Option<&'static str> {
    let mpirun_ok = Command::new("mpirun")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mpirun_ok {
        common::skip("`mpirun` not found (install openmpi-bin and libopenmpi-dev)");
        return None;
    }
    #[cfg(feature = "mpi")]
    return match name {
        "aggregate" => Some(env!("CARGO_BIN_EXE_ezpz-mpi-aggregate-probe")),
        "ddp" => Some(env!("CARGO_BIN_EXE_ezpz-mpi-ddp-probe")),
        other => panic!("no probe `{other}`"),
    };
    #[cfg(not(feature = "mpi"))]
    {
        let _ = name;
        common::skip("built without `--features mpi`; the mpirun tests need it");
        None
    }
}

/// Runs `program args` on `np` ranks; panics if it is still running after [`GUARD`] (after
/// killing mpirun and every rank).
fn mpirun(np: usize, program: &str, args: &[&str]) -> Run {
    mpirun_env(np, program, args, &[])
}

/// Runs `program args` on `np` ranks with `env` set, without judging the outcome.
fn mpirun_raw(np: usize, program: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = common::examples::mpirun_command(Path::new("mpirun"), np);
    cmd.arg(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied());
    let output = common::examples::output_within(cmd, GUARD);
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// [`mpirun`] with `env` set (e.g. `EZPZ_MPI_THREADING`).
fn mpirun_env(np: usize, program: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let run = mpirun_raw(np, program, args, env);
    let status = if run.success { "success" } else { "failure" };
    assert!(
        run.success,
        "mpirun -np {np} failed ({status})\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let serialized = env
        .iter()
        .any(|(k, v)| *k == "EZPZ_MPI_THREADING" && *v == "serialized");
    for r in 0..np {
        assert!(
            run.stdout
                .contains(&format!("THREADING rank={r} serialized={serialized}\n")),
            "rank {r} did not run at the level asked for\n{}",
            run.stdout
        );
    }
    for r in 0..np {
        assert!(
            run.stdout.contains(&format!("DONE rank={r}\n")),
            "rank {r} did not finish\n{}",
            run.stdout
        );
    }
    run
}

/// `metrics.csv` as one map per row (empty cells left out).
fn read_csv(dir: &Path) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(dir.join("metrics.csv")).expect("metrics.csv");
    let header = reader.headers().expect("header").clone();
    reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            header
                .iter()
                .zip(r.iter())
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn num(row: &HashMap<String, String>, key: &str) -> f64 {
    row.get(key)
        .unwrap_or_else(|| panic!("no `{key}` in {row:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("`{key}`: {e}"))
}

/// Mean, min, max and population std, computed here independently of the library.
fn reference(values: &[f64]) -> [f64; 4] {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    [mean, min, max, var.sqrt()]
}

/// `run`'s stderr says `text` (a warning).
fn assert_warned(run: &Run, text: &str) {
    assert!(run.stderr.contains(text), "no `{text}` in:\n{}", run.stderr);
}

/// Row `step` aggregates `x = step + rank` over `world` ranks (the probe's `x`).
fn assert_steps_over_ranks(rows: &[HashMap<String, String>], world: usize) {
    for (step, row) in rows.iter().enumerate() {
        let values: Vec<f64> = (0..world).map(|r| (step + r) as f64).collect();
        assert_aggregates(row, "x", &values);
    }
}

fn assert_aggregates(row: &HashMap<String, String>, key: &str, values: &[f64]) {
    let want = reference(values);
    for (suffix, want) in ["mean", "min", "max", "std"].iter().zip(want) {
        let got = num(row, &format!("{key}/{suffix}"));
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{key}/{suffix}: {got} != {want} (values {values:?})"
        );
    }
}

fn aggregates_equal_reference(np: usize) {
    aggregates_equal_reference_with(np, &[]);
}

fn aggregates_equal_reference_with(np: usize, env: &[(&str, &str)]) {
    let Some(program) = probe("aggregate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = mpirun_env(np, program, &["reference", out.to_str().unwrap()], env);
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 5, "one row per step on rank 0");
    for (step, row) in rows.iter().enumerate() {
        let s = step as f64;
        assert_eq!(num(row, "step"), s);
        let losses: Vec<f64> = (0..np).map(|r| 1.0 / (1.0 + s) + 0.25 * r as f64).collect();
        let tokens: Vec<f64> = (0..np).map(|r| (100 * (r + 1) + step) as f64).collect();
        assert_eq!(num(row, "loss"), losses[0], "the raw value is rank 0's");
        assert_aggregates(row, "loss", &losses);
        assert_aggregates(row, "tokens", &tokens);
        assert_eq!(row["phase"], "train");
        assert!(
            !row.contains_key("phase/mean"),
            "strings are not aggregated"
        );
    }
    assert!(
        !run.stderr.contains("different metric keys"),
        "no mismatch warning for uniform keys:\n{}",
        run.stderr
    );
}

#[test]
fn mpi_aggregates_equal_reference_np2() {
    aggregates_equal_reference(2);
}

/// As on Cray MPICH by default: the library grants only `MPI_THREAD_SERIALIZED`; every ezpz
/// MPI call is serialised behind one lock, and the aggregates are the same.
#[test]
fn mpi_aggregates_equal_reference_serialized_np3() {
    aggregates_equal_reference_with(3, &[("EZPZ_MPI_THREADING", "serialized")]);
}

/// MPI initialised by the program itself (at `SERIALIZED`) before `Mpi::init`: accepted,
/// serialised, the same aggregates.
#[test]
fn mpi_initialised_by_the_program_is_accepted_np2() {
    let Some(program) = probe("aggregate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = mpirun_raw(2, program, &["preinit", out.to_str().unwrap()], &[]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    for r in 0..2 {
        assert!(
            run.stdout
                .contains(&format!("THREADING rank={r} serialized=true\n")),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains(&format!("DONE rank={r}\n")));
    }
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 5);
    for (step, row) in rows.iter().enumerate() {
        let s = step as f64;
        let losses: Vec<f64> = (0..2).map(|r| 1.0 / (1.0 + s) + 0.25 * r as f64).collect();
        assert_aggregates(row, "loss", &losses);
    }
}

/// With the launcher's rank variables gone (a launcher ezpz does not know), MPI's own rank
/// and size are the fallback: the ranks report distinct ranks, and only rank 0 writes.
/// Open MPI 4.1 cannot initialise without `PMIX_RANK` (its PMIx client reads it), so the
/// probe removes that one itself, right after MPI is up.
#[test]
fn mpi_rank_is_the_fallback_when_the_launcher_set_none_np3() {
    let Some(program) = probe("aggregate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut args = Vec::new();
    for var in [
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_SIZE",
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "OMPI_COMM_WORLD_LOCAL_SIZE",
    ] {
        args.extend(["-u", var]);
    }
    args.extend([program, "fallback", out.to_str().unwrap()]);
    let run = mpirun_env(3, "env", &args, &[]);
    for r in 0..3 {
        for line in [
            format!("LEFT rank={r} vars=PMIX_RANK\n"),
            format!("DETECTED rank={r} size=3 mpi={r}\n"),
        ] {
            assert!(run.stdout.contains(&line), "no `{line}` in\n{}", run.stdout);
        }
    }
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 1, "rank 0 alone writes: {rows:?}");
    assert_eq!(num(&rows[0], "rank"), 0.0);
}

/// `FUNNELED` cannot work (the aggregation thread calls MPI): refused, naming the fix.
#[test]
fn mpi_funneled_is_refused_with_the_setting_that_fixes_it_np2() {
    let Some(program) = probe("aggregate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = mpirun_raw(
        2,
        program,
        &["reference", out.to_str().unwrap()],
        &[("EZPZ_MPI_THREADING", "funneled")],
    );
    assert!(!run.success, "{}", run.stdout);
    assert!(
        run.stderr.contains("Funneled") && run.stderr.contains("MPICH_MAX_THREAD_SAFETY=multiple"),
        "{}",
        run.stderr
    );
    assert!(!out.join("metrics.csv").exists());
}

#[test]
fn mpi_aggregates_equal_reference_np4() {
    aggregates_equal_reference(4);
}

#[test]
fn mpi_large_values_with_small_spread_keep_exact_std_np6() {
    let Some(program) = probe("aggregate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    mpirun(6, program, &["large", out.to_str().unwrap()]);
    let rows = read_csv(&out);
    let values: Vec<f64> = (0..6).map(|r| 123_880.0 + 0.1 * r as f64).collect();
    let mean = values.iter().sum::<f64>() / 6.0;
    let exact = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 6.0).sqrt();
    let std = num(&rows[0], "tokens_per_s/std");
    assert!(
        (std - exact).abs() / exact < 1e-6,
        "std {std} vs exact {exact}"
    );
    assert_eq!(num(&rows[0], "tokens_per_s/min"), 123_880.0);
    assert_eq!(num(&rows[0], "tokens_per_s/max"), values[5]);
}

fn mismatched_keys_finish_and_warn(np: usize) {
    let Some(program) = probe("aggregate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = mpirun(np, program, &["mismatch", out.to_str().unwrap()]);
    let warnings = run
        .stderr
        .matches("ranks logged different metric keys")
        .count();
    assert_eq!(warnings, 1, "warned once, by rank 0:\n{}", run.stderr);
    let odd: Vec<usize> = (1..np).step_by(2).collect();
    let odd_list = odd
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(",");
    assert!(
        run.stderr
            .contains(&format!("`extra` on rank(s) {odd_list}")),
        "the warning names the key and its ranks:\n{}",
        run.stderr
    );
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 5);
    let ranks = |f: &dyn Fn(f64) -> f64| (0..np).map(|r| f(r as f64)).collect::<Vec<_>>();
    assert_aggregates(&rows[0], "loss", &ranks(&|r| 1.0 + r));
    // Step 1: `loss` everywhere, `extra` on the odd ranks only (rank 0 has no raw `extra`).
    assert_aggregates(&rows[1], "loss", &ranks(&|r| 2.0 + r));
    let extra: Vec<f64> = odd.iter().map(|&r| r as f64).collect();
    assert_aggregates(&rows[1], "extra", &extra);
    assert!(!rows[1].contains_key("extra"));
    // Back to uniform keys, then the same keys in another order.
    assert_aggregates(&rows[2], "loss", &ranks(&|r| 3.0 + r));
    assert_aggregates(&rows[3], "a", &ranks(&|r| 10.0 + r));
    assert_aggregates(&rows[3], "b", &ranks(&|r| 20.0 + r));
    assert_aggregates(&rows[4], "loss", &ranks(&|r| 5.0 + r));
}

#[test]
fn mpi_mismatched_keys_finish_and_warn_np2() {
    mismatched_keys_finish_and_warn(2);
}

#[test]
fn mpi_mismatched_keys_finish_and_warn_np4() {
    mismatched_keys_finish_and_warn(4);
}

/// Rows logged from two threads per rank, in a different order on each rank: every row is
/// matched with the other ranks' row of the same step and key, and nothing hangs.
fn rows_from_several_threads_are_matched(np: usize) {
    let Some(program) = probe("aggregate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = mpirun(np, program, &["threads", out.to_str().unwrap()]);
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 40, "20 steps × 2 threads on rank 0");
    let mut seen = std::collections::HashSet::new();
    for row in &rows {
        let step = num(row, "step");
        let (key, scale) = if row.contains_key("a") {
            ("a", 1.0)
        } else {
            ("b", 10.0)
        };
        let values: Vec<f64> = (0..np).map(|r| scale * step + r as f64).collect();
        assert_aggregates(row, key, &values);
        assert!(seen.insert((key, step as u64)), "one `{key}` row per step");
    }
    assert!(
        !run.stderr.contains("different metric keys") && !run.stderr.contains("dropped"),
        "every row found its match:\n{}",
        run.stderr
    );
}

#[test]
fn mpi_rows_from_several_threads_are_matched_np2() {
    rows_from_several_threads_are_matched(2);
}

#[test]
fn mpi_rows_from_several_threads_are_matched_np4() {
    rows_from_several_threads_are_matched(4);
}

/// Ranks that log different numbers of rows finish (the original hangs): rank 0's extra
/// row is aggregated over rank 0 alone, the other ranks' extra rows are dropped, both warned.
#[test]
fn mpi_uneven_row_counts_finish_and_warn_np3() {
    let Some(program) = probe("aggregate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = mpirun(3, program, &["uneven", out.to_str().unwrap()]);
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 6, "rank 0's rows: steps 0..=5");
    assert_steps_over_ranks(&rows[..5], 3);
    assert_aggregates(&rows[5], "x", &[5.0]);
    assert_warned(&run, "no matching row from rank(s) 1,2");
    assert_warned(&run, "1 row(s) logged on other ranks had no row of rank 0");
}

/// A round in which one rank other than 0 has rows and another has none: that rank sends an
/// empty buffer, which must not reach MPI as `MPI_IN_PLACE` (Open MPI's value for it is the
/// address Rust gives an empty slice, and a non-root rank passing it is an error that aborts
/// the job). Rank 1's late row is dropped with a warning (rank 0 has no row at its step).
#[test]
fn mpi_a_rank_with_nothing_to_send_in_a_round_np3() {
    let Some(program) = probe("aggregate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = mpirun(3, program, &["late", out.to_str().unwrap()]);
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 5, "rank 0's rows: steps 0..5\n{}", run.stderr);
    assert_steps_over_ranks(&rows, 3);
    assert_warned(&run, "1 row(s) logged on other ranks had no row of rank 0");
}

/// A rank whose training thread hangs: the others finish within their deadline (3 s), rank 0
/// with every row it had, and warn which rank was missing; the hung rank finishes later.
#[test]
fn mpi_a_hung_rank_does_not_hold_the_others_np3() {
    let Some(probe) = probe("aggregate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = mpirun(3, probe, &["hang", out.to_str().unwrap()]);
    let position = |needle: &str| {
        run.stdout
            .find(needle)
            .unwrap_or_else(|| panic!("no `{needle}` in\n{}", run.stdout))
    };
    let wakes = position("WAKES rank=1");
    for r in [0, 2] {
        assert!(
            position(&format!("DONE rank={r}\n")) < wakes,
            "rank {r} waited for the hung rank:\n{}",
            run.stdout
        );
    }
    assert_warned(&run, "rank(s) 1 had not finished by the finish deadline");
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 5, "rank 0 wrote every row it had");
    for (step, row) in rows.iter().enumerate() {
        assert_eq!(num(row, "x"), step as f64);
        assert!(row.contains_key("x/mean"), "{row:?}");
    }
}

/// `KEY rank=<r> hash=<h>` lines as rank → hash.
fn hashes(stdout: &str, key: &str) -> Vec<String> {
    let mut out: Vec<(usize, String)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key} rank=")))
        .filter_map(|l| {
            let (r, h) = l.split_once(" hash=")?;
            Some((r.parse().ok()?, h.to_string()))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, h)| h).collect()
}

fn field(line: &str, name: &str) -> f64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in `{line}`"))
        .parse()
        .unwrap_or_else(|e| panic!("{name} in `{line}`: {e}"))
}

fn data_parallel_matches_single_process(np: usize) {
    data_parallel_matches_single_process_with(np, &[]);
}

fn data_parallel_matches_single_process_with(np: usize, env: &[(&str, &str)]) {
    let Some(program) = probe("ddp") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = mpirun_env(np, program, &["train", out.to_str().unwrap()], env);
    let (init, bcast, fin) = (
        hashes(&run.stdout, "INIT"),
        hashes(&run.stdout, "BCAST"),
        hashes(&run.stdout, "FINAL"),
    );
    assert_eq!(init.len(), np);
    assert_ne!(
        init[0], init[1],
        "ranks start from different random parameters"
    );
    assert!(
        bcast.iter().all(|h| *h == init[0]),
        "every rank has rank 0's parameters: {bcast:?} vs {}",
        init[0]
    );
    assert!(
        fin.iter().all(|h| *h == fin[0]),
        "bit-identical after training: {fin:?}"
    );
    assert_ne!(fin[0], bcast[0], "training changed the parameters");
    let diff: f64 = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("MAXDIFF "))
        .expect("MAXDIFF line")
        .parse()
        .unwrap();
    assert!(
        diff < 1e-5,
        "data-parallel vs single-process max |Δ| = {diff}"
    );

    // Rank 0's CSV: the loss aggregated by the tracker sharing the Mpi handle, and
    // grad_norm_stats of the local norms every rank printed, not aggregated again.
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 8);
    for (step, row) in rows.iter().enumerate() {
        let locals: Vec<f64> = (0..np)
            .map(|r| {
                let prefix = format!("NORM step={step} rank={r} ");
                let line = run.stdout.lines().find(|l| l.starts_with(&prefix));
                field(line.expect("NORM line"), "local")
            })
            .collect();
        assert!(locals.iter().all(|&n| n > 0.0));
        assert_aggregates(row, "grads/global_norm", &locals);
        assert!(num(row, "loss/min") <= num(row, "loss/mean"));
        assert!(num(row, "loss/mean") <= num(row, "loss/max"));
    }
    let header: Vec<&String> = rows[0].keys().collect();
    assert!(
        !header.iter().any(|k| k.contains("/mean/")),
        "aggregates are not aggregated again: {header:?}"
    );
}

#[test]
fn mpi_data_parallel_matches_single_process_np2() {
    data_parallel_matches_single_process(2);
}

/// The broadcast and gradient all-reduce on the training thread and the tracker's
/// aggregation rounds share one lock under `MPI_THREAD_SERIALIZED`: same results.
#[test]
fn mpi_data_parallel_matches_single_process_serialized_np2() {
    data_parallel_matches_single_process_with(2, &[("EZPZ_MPI_THREADING", "serialized")]);
}

#[test]
fn mpi_data_parallel_matches_single_process_np4() {
    data_parallel_matches_single_process(4);
}

#[test]
fn mpi_different_models_are_refused_on_every_rank_np2() {
    let Some(program) = probe("ddp") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = mpirun(2, program, &["mismatch", dir.path().to_str().unwrap()]);
    for r in 0..2 {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("REFUSED rank={r}: ")))
            .unwrap_or_else(|| panic!("rank {r} went on with a different model:\n{}", run.stdout));
        assert!(
            line.contains("rank 1's model has 4 parameter tensors with 55 values in all, rank 0's has 4 with 49"),
            "{line}"
        );
    }
}

#[test]
fn mpi_frozen_parameters_never_travel_and_ranks_stop_together_np2() {
    let Some(program) = probe("ddp") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = mpirun(2, program, &["frozen", dir.path().to_str().unwrap()]);
    // Only the output layer trains: its 8 weights and 1 bias, plus 2 presence counts; the
    // hidden layer's 4 × 8 + 8 values are never sent.
    let sent: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("SENT "))
        .collect();
    assert_eq!(sent.len(), 2 * 3, "{}", run.stdout);
    assert!(sent.iter().all(|l| l.ends_with(" values=11")), "{sent:?}");
    // Rank 1 alone wanted to stop after step 2: both stopped there, together.
    for r in 0..2 {
        let stopped = format!("STOPPED rank={r} step=2");
        assert!(run.stdout.contains(&stopped), "{}", run.stdout);
        let same = format!("HIDDEN rank={r} same=true");
        assert!(run.stdout.contains(&same), "{}", run.stdout);
    }
}
