//! The TensorBoard backend read back by TensorBoard itself: `EventAccumulator` (through
//! `tests/oracles/tb_read.py`) and `tensorboard --inspect`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use ezpz_tracker::{HistogramBins, TrackerBuilder, Value};
use serde_json::{json, Value as Json};

const STEPS: u64 = 60;

/// The ten scalars logged at `step` (NaN and ±inf included, an int and a bool too).
fn scalars(step: u64) -> Vec<(&'static str, f64)> {
    let s = step as f64;
    vec![
        ("train/loss", 1.0 / (1.0 + s)),
        ("train/acc", s / STEPS as f64),
        ("lr", 1e-4 * 0.97f64.powf(s)),
        ("val acc", 0.1 + s * 0.013),
        ("grad_norm", (s * 0.7).sin() * 3.0),
        (
            "maybe_nan",
            if step.is_multiple_of(3) { f64::NAN } else { s },
        ),
        ("pos_inf", f64::INFINITY),
        ("neg_inf", f64::NEG_INFINITY),
        ("epoch", (step / 10) as f64),
        ("tiny", 1e-30 * (s + 1.0)),
    ]
}

/// What TensorBoard shows for a key: sanitized the way TensorFlow's writers do it.
fn tag(key: &str) -> &str {
    if key == "val acc" {
        "val_acc"
    } else {
        key
    }
}

fn parse_f64(v: &Json) -> f64 {
    v.as_str()
        .expect("floats travel as repr() strings")
        .parse()
        .unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn tensorboard_reads_every_step_value_text_image_and_histogram() {
    common::warnings::capture();

    let dir = tempfile::tempdir().unwrap();
    let outdir = dir.path().join("run");
    let tracker = TrackerBuilder::new()
        .project("tb-oracle")
        .backends("tensorboard")
        .outdir(&outdir)
        .config(json!({"lr": 1e-4, "model": {"depth": 6, "name": "vit|small"}, "seed": 7}))
        .build_strict()
        .unwrap();
    let logdir = outdir.join("tensorboard");
    let info = tracker
        .get_backend("tensorboard")
        .unwrap()
        .run_info
        .unwrap();
    assert_eq!(info.path.as_deref(), Some(logdir.as_path()));
    assert_eq!(
        info.command.unwrap(),
        format!("tensorboard --logdir {}", logdir.display())
    );

    for step in 0..STEPS {
        let mut m: Vec<(&str, Value)> = scalars(step)
            .into_iter()
            .map(|(k, v)| (k, v.into()))
            .collect();
        m.push(("phase", "train".into()));
        tracker.log(m);
    }
    tracker.log_table(
        "predictions",
        ["id", "label"],
        vec![
            vec![Value::from(0), Value::from("cat")],
            vec![Value::from(1), Value::from("dog")],
        ],
    );
    let img = image::RgbImage::from_fn(8, 4, |x, y| image::Rgb([x as u8 * 30, y as u8 * 60, 200]));
    tracker.log_image("samples", img.clone(), Some("eight by four"));
    let hist: Vec<f64> = (0..1000).map(|i| (i as f64 - 500.0) / 100.0).collect();
    tracker.log_histogram("weights", hist.clone());
    let summary = tracker.finish().unwrap();
    assert_eq!(summary.dropped(), 0);
    assert_eq!(summary.backends[0].errors, 0);

    // One warning for the renamed key and one for the string, however many steps logged them.
    let log = common::warnings::all();
    assert_eq!(log.matches("`val acc` → `val_acc`").count(), 1, "{log}");
    assert_eq!(
        log.matches("skipped non-numeric metric(s) `phase`").count(),
        1,
        "{log}"
    );

    let files: Vec<_> = std::fs::read_dir(&logdir).unwrap().collect();
    assert_eq!(files.len(), 1, "one event file per run");

    let Some(python) = common::oracle_python("tensorboard") else {
        return;
    };
    let got = read_with_tensorboard(&python, &logdir);
    assert_eq!(got["file_version"], json!(2.0));

    // Every step of every scalar, with TensorBoard's (32-bit) value exactly.
    let keys: Vec<&str> = scalars(0).iter().map(|(k, _)| tag(k)).collect();
    let mut listed: Vec<&str> = got["tags"]["scalars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    listed.sort_unstable();
    let mut expected_tags = keys.clone();
    expected_tags.sort_unstable();
    assert_eq!(listed, expected_tags, "string metrics are not scalars");
    for (i, key) in keys.iter().enumerate() {
        let series = got["scalars"][key].as_array().unwrap();
        assert_eq!(series.len() as u64, STEPS, "{key}");
        for (step, point) in series.iter().enumerate() {
            assert_eq!(point[0], json!(step), "{key}");
            let want = scalars(step as u64)[i].1 as f32 as f64;
            let have = parse_f64(&point[1]);
            assert!(
                have == want || (have.is_nan() && want.is_nan()),
                "{key} at step {step}: TensorBoard read {have}, logged {want}"
            );
        }
    }

    let config = &got["tensors"]["config"];
    let text = config[config.as_array().unwrap().len() - 1][1][0]
        .as_str()
        .unwrap();
    assert_eq!(
        text,
        "| key | value |\n| --- | --- |\n| lr | 0.0001 |\n| model.depth | 6 |\n\
         | model.name | vit\\|small |\n| seed | 7 |\n"
    );
    let table = &got["tensors"]["predictions"][0];
    assert_eq!(table[0], json!(STEPS));
    assert_eq!(
        table[1][0],
        json!("| id | label |\n| --- | --- |\n| 0 | cat |\n| 1 | dog |\n")
    );

    let image = &got["images"]["samples"][0];
    assert_eq!(
        (image["width"].clone(), image["height"].clone()),
        (json!(8), json!(4))
    );
    assert_eq!(image["decoded_size"], json!([8, 4]), "PIL decodes the PNG");
    let png = hex(image["png_hex"].as_str().unwrap());
    assert_eq!(image::load_from_memory(&png).unwrap().to_rgb8(), img);

    let h = &got["histograms"]["weights"][0];
    assert_eq!(parse_f64(&h["num"]), 1000.0);
    assert_eq!(parse_f64(&h["bucket_total"]), 1000.0);
    assert_eq!(parse_f64(&h["min"]), -5.0);
    assert_eq!(parse_f64(&h["max"]), 4.99);
    assert_eq!(parse_f64(&h["sum"]), hist.iter().sum::<f64>());
    assert_eq!(
        parse_f64(&h["sum_squares"]),
        hist.iter().map(|v| v * v).sum::<f64>()
    );

    inspect_lists_every_tag(&python, &logdir, &keys);
}

/// A histogram binned before it reached the tracker (as `watch` bins on the device): TensorBoard
/// reads back exactly its 64 buckets and statistics and draws each bin between its edges; a
/// histogram of one repeated value is drawn as that value.
#[test]
fn tensorboard_draws_binned_histograms_with_their_own_bins() {
    let dir = tempfile::tempdir().unwrap();
    let outdir = dir.path().join("run");
    let tracker = TrackerBuilder::new()
        .project("tb-bins")
        .backends("tensorboard")
        .outdir(&outdir)
        .build_strict()
        .unwrap();
    let mut values: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.37).sin() * 3.0).collect();
    values.extend([f64::NAN, f64::INFINITY]);
    let bins = HistogramBins::from_values(&values);
    assert_eq!(bins.nonfinite, 2);
    tracker.log_histogram_bins_at(5, "device/weights", bins.clone());
    tracker.log_histogram_bins_at(5, "device/constant", HistogramBins::from_values(&[0.25; 7]));
    let summary = tracker.finish().unwrap();
    assert_eq!(summary.backends[0].errors, 0);

    let Some(python) = common::oracle_python("tensorboard") else {
        return;
    };
    let got = read_with_tensorboard(&python, &outdir.join("tensorboard"));
    let h = &got["histograms"]["device/weights"][0];
    let floats = |v: &Json| -> Vec<f64> { v.as_array().unwrap().iter().map(parse_f64).collect() };
    assert_eq!(h["step"], json!(5));
    assert_eq!(parse_f64(&h["num"]), 1000.0);
    assert_eq!(
        (parse_f64(&h["min"]), parse_f64(&h["max"])),
        (bins.min, bins.max)
    );
    assert_eq!(parse_f64(&h["sum"]), bins.sum);
    assert_eq!(parse_f64(&h["sum_squares"]), bins.sum_squares);
    let counts: Vec<f64> = bins.counts.iter().map(|&c| c as f64).collect();
    assert_eq!(floats(&h["bucket"]), counts);
    let edges = bins.edges();
    assert_eq!(floats(&h["bucket_limit"]), edges[1..]);
    // What the dashboard draws (32-bit): every bin between its two edges, with its count.
    let drawn = h["drawn"].as_array().unwrap();
    assert_eq!(drawn.len(), 64, "every bin is occupied");
    for (i, row) in drawn.iter().enumerate() {
        let row = floats(row);
        let want = [edges[i] as f32, edges[i + 1] as f32, counts[i] as f32];
        assert_eq!(row, want.map(f64::from), "bin {i}");
    }
    let constant = &got["histograms"]["device/constant"][0];
    assert_eq!(constant["drawn"], json!([["0.25", "0.25", "7.0"]]));
}

/// `tests/oracles/tb_read.py`'s JSON for `logdir` (EventAccumulator, nothing sampled away).
fn read_with_tensorboard(python: &Path, logdir: &Path) -> Json {
    let script = common::repo_root().join("tests/oracles/tb_read.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(logdir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tb_read.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The definition of done: the quickstart with `EZPZ_TRACKER_BACKENDS=tensorboard`
/// gives TensorBoard every step of its ten scalars exactly, the config, image and histogram.
#[test]
fn quickstart_with_tensorboard_backend_is_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let outdir = dir.path().join("q");
    let n = 500u64;
    let mut cmd = Command::new(common::examples::example_binary("quickstart"));
    cmd.args(["--steps", &n.to_string(), "--outdir"])
        .arg(&outdir)
        .env("EZPZ_TRACKER_BACKENDS", "tensorboard");
    for var in ezpz_tracker::env::RANK_VARS {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !outdir.join("metrics.csv").exists(),
        "only tensorboard was asked for"
    );
    let logdir = outdir.join("tensorboard");
    assert_eq!(std::fs::read_dir(&logdir).unwrap().count(), 1);

    let Some(python) = common::oracle_python("tensorboard") else {
        return;
    };
    let got = read_with_tensorboard(&python, &logdir);
    // The quickstart's documented scalars.
    let expected = common::quickstart_scalars;
    assert_eq!(got["tags"]["scalars"].as_array().unwrap().len(), 10);
    for (i, (key, _)) in expected(0).iter().enumerate() {
        let series = got["scalars"][key].as_array().unwrap();
        assert_eq!(series.len() as u64, n, "{key}");
        for (step, point) in series.iter().enumerate() {
            assert_eq!(point[0], json!(step), "{key}");
            let want = expected(step as u64)[i].1 as f32 as f64;
            assert_eq!(parse_f64(&point[1]), want, "{key} at step {step}");
        }
    }
    let config = got["tensors"]["config"][0][1][0].as_str().unwrap();
    assert_eq!(
        config,
        format!(
            "| key | value |\n| --- | --- |\n| steps | {n} |\n| optimizer.name | adamw |\n\
             | optimizer.lr | 0.001 |\n| optimizer.betas | [0.9,0.999] |\n| model.depth | 6 |\n\
             | model.heads | 4 |\n| model.dim | 128 |\n"
        )
    );
    let image = &got["images"]["samples"][0];
    assert_eq!(image["decoded_size"], json!([32, 24]));
    let weights: Vec<f64> = (0..1000).map(|i| ((i as f64) * 0.37).sin()).collect();
    let h = &got["histograms"]["weights"][0];
    assert_eq!(parse_f64(&h["num"]), 1000.0);
    assert_eq!(parse_f64(&h["bucket_total"]), 1000.0);
    let min = weights.iter().copied().fold(f64::INFINITY, f64::min);
    let max = weights.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!((parse_f64(&h["min"]), parse_f64(&h["max"])), (min, max));
    assert_eq!(parse_f64(&h["sum"]), weights.iter().sum::<f64>());
}

/// `tensorboard --inspect --logdir` lists each tag under its kind.
fn inspect_lists_every_tag(python: &Path, logdir: &Path, scalars: &[&str]) {
    let tensorboard = python.with_file_name("tensorboard");
    let out = Command::new(&tensorboard)
        .args(["--inspect", "--logdir"])
        .arg(logdir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    // The listing: a kind on its own line, then its tags indented, up to a `===` rule.
    let mut kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    let listing = text
        .lines()
        .skip_while(|l| !l.starts_with("These tags are in"))
        .skip(1)
        .take_while(|l| !l.starts_with("==="));
    for line in listing {
        match line.strip_prefix("   ") {
            Some(tag) => kinds
                .entry(current.clone())
                .or_default()
                .push(tag.to_string()),
            None => current = line.trim().to_string(),
        }
    }
    let mut want: Vec<String> = scalars.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(kinds.get("scalars"), Some(&want), "{text}");
    assert_eq!(kinds["images"], ["samples"], "{text}");
    assert_eq!(kinds["histograms"], ["weights"], "{text}");
    assert_eq!(kinds["tensor"], ["config", "predictions"], "{text}");
}
