//! The backend's own checks, reading files back with our decoder (the root test
//! `tests/tensorboard.rs` reads them with TensorBoard itself).

use std::sync::Arc;

use prost::Message;

use super::proto::{event::What, summary_value::Kind, Event};
use super::*;
use crate::backend::ImageSource;

fn record(step: u64, m: Vec<(&str, Value)>) -> Record {
    Record::new(step, 100.0 + step as f64, 0, m)
}

fn events(path: &Path) -> Vec<Event> {
    let bytes = std::fs::read(path).unwrap();
    let (records, pending) = framing::read_records(&bytes).unwrap();
    assert_eq!(pending, 0, "the file ends inside a record");
    records.iter().map(|r| Event::decode(*r).unwrap()).collect()
}

fn values(e: &Event) -> &[SummaryValue] {
    match &e.what {
        Some(What::Summary(s)) => &s.value,
        other => panic!("not a summary: {other:?}"),
    }
}

#[test]
fn file_is_named_like_tensorboards_and_starts_with_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let b = TensorBoardBackend::new(dir.path().join("tb")).unwrap();
    let name = b.path().file_name().unwrap().to_string_lossy().to_string();
    let parts: Vec<&str> = name.split('.').collect();
    assert_eq!(&parts[..3], ["events", "out", "tfevents"], "{name}");
    assert_eq!(parts[3].len(), 10, "{name}");
    assert!(parts[3].bytes().all(|c| c.is_ascii_digit()), "{name}");
    assert_eq!(parts[parts.len() - 2], std::process::id().to_string());
    // Written at once: a reader finds a valid file before anything is logged.
    let ev = events(b.path());
    assert_eq!(ev.len(), 1);
    assert_eq!(
        ev[0].what,
        Some(What::FileVersion(proto::FILE_VERSION.into()))
    );
    assert!(ev[0].wall_time > 1.0e9);
}

#[test]
fn every_kind_of_call_becomes_the_documented_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = TensorBoardBackend::new(dir.path()).unwrap();
    for step in 0..3u64 {
        b.log(&record(
            step,
            vec![
                ("train/loss", Value::F64(1.0 / (step as f64 + 1.0))),
                ("val acc", Value::I64(step as i64)),
                ("phase", Value::from("train")),
                ("nan", Value::F64(f64::NAN)),
                ("inf", Value::F64(f64::NEG_INFINITY)),
                ("flag", Value::Bool(true)),
            ],
        ))
        .unwrap();
    }
    b.log(&record(3, vec![("phase", Value::from("eval"))]))
        .unwrap();
    b.log_config(&serde_json::json!({"lr": 0.001})).unwrap();
    b.log_config(&serde_json::json!({"model": {"depth": 6}}))
        .unwrap();
    b.log_table(&Table {
        key: "preds".into(),
        columns: vec!["id".into(), "label".into()],
        rows: vec![vec![Value::I64(0), Value::from("cat")]],
        step: 3,
    })
    .unwrap();
    let img = image::RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 80, 7]));
    b.log_image(&ImageRecord {
        key: "samples".into(),
        source: ImageSource::from(img.clone()),
        caption: Some("five by three".into()),
        step: 3,
    })
    .unwrap();
    b.log_histogram(&HistogramRecord {
        key: "w".into(),
        data: HistogramData::Values(Arc::from(vec![1.0, 2.0, 2.0, f64::NAN])),
        step: 3,
    })
    .unwrap();
    // Nothing reaches the file before a flush, apart from the version event.
    assert_eq!(events(b.path()).len(), 1);
    b.finish(RunStatus::Finished).unwrap();

    let ev = events(b.path());
    // version + 3 scalar events (the text-only record writes nothing) + 2 configs + table +
    // image + histogram
    assert_eq!(ev.len(), 1 + 3 + 2 + 3);
    for (step, e) in ev[1..4].iter().enumerate() {
        assert_eq!(e.step, step as i64);
        assert_eq!(e.wall_time, 100.0 + step as f64);
        let got: Vec<(&str, f32)> = values(e)
            .iter()
            .map(|v| match v.kind {
                Some(Kind::SimpleValue(x)) => (v.tag.as_str(), x),
                ref k => panic!("not a scalar: {k:?}"),
            })
            .collect();
        assert_eq!(got.len(), 5, "the string metric is skipped");
        assert_eq!(got[0], ("train/loss", (1.0 / (step as f64 + 1.0)) as f32));
        assert_eq!(got[1], ("val_acc", step as f32));
        assert_eq!(got[2].0, "nan");
        assert!(got[2].1.is_nan());
        assert_eq!(got[3], ("inf", f32::NEG_INFINITY));
        assert_eq!(got[4], ("flag", 1.0));
    }
    let text = |e: &Event| match &values(e)[0].kind {
        Some(Kind::Tensor(t)) => String::from_utf8(t.string_val[0].clone()).unwrap(),
        k => panic!("not text: {k:?}"),
    };
    assert_eq!(values(&ev[4])[0].tag, CONFIG_TAG);
    assert_eq!(ev[4].step, 3, "config sits at the latest step");
    assert_eq!(
        text(&ev[4]),
        "| key | value |\n| --- | --- |\n| lr | 0.001 |\n"
    );
    assert_eq!(
        text(&ev[5]),
        "| key | value |\n| --- | --- |\n| lr | 0.001 |\n| model.depth | 6 |\n",
        "later configuration merges into the earlier"
    );
    let meta = values(&ev[5])[0].metadata.as_ref().unwrap();
    assert_eq!(meta.plugin_data.as_ref().unwrap().plugin_name, "text");
    assert_eq!(values(&ev[6])[0].tag, "preds");
    assert_eq!(text(&ev[6]), "| id | label |\n| --- | --- |\n| 0 | cat |\n");
    match &values(&ev[7])[0].kind {
        Some(Kind::Image(i)) => {
            assert_eq!((i.width, i.height, i.colorspace), (5, 3, 3));
            let decoded = image::load_from_memory(&i.encoded_image_string).unwrap();
            assert_eq!(decoded.to_rgb8(), img);
        }
        k => panic!("not an image: {k:?}"),
    }
    let meta = values(&ev[7])[0].metadata.as_ref().unwrap();
    assert_eq!(meta.summary_description, "five by three");
    match &values(&ev[8])[0].kind {
        Some(Kind::Histo(h)) => {
            assert_eq!((h.num, h.min, h.max, h.sum), (3.0, 1.0, 2.0, 5.0));
            assert_eq!(h.sum_squares, 9.0);
        }
        k => panic!("not a histogram: {k:?}"),
    }
}

#[test]
fn only_whole_records_ever_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = TensorBoardBackend::new(dir.path()).unwrap();
    // A table far larger than the appender's spill threshold forces writes mid-run.
    let rows: Vec<Vec<Value>> = (0..40_000)
        .map(|i| {
            vec![
                Value::I64(i),
                Value::from(format!("row {i} of a long table")),
            ]
        })
        .collect();
    let big = Table {
        key: "big".into(),
        columns: vec!["i".into(), "text".into()],
        rows,
        step: 0,
    };
    let mut seen = 1;
    for step in 0..200u64 {
        b.log(&record(step, vec![("x", Value::F64(step as f64))]))
            .unwrap();
        if step % 50 == 25 {
            b.log_table(&big).unwrap();
        }
        // Whatever is on disk at any moment is a sequence of whole, valid records.
        let now = events(b.path()).len();
        assert!(now >= seen);
        seen = now;
    }
    assert!(seen > 1, "the spill threshold was crossed before any flush");
    b.flush().unwrap();
    assert_eq!(events(b.path()).len(), 1 + 200 + 4);
}

#[test]
fn an_empty_histogram_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = TensorBoardBackend::new(dir.path()).unwrap();
    let err = b
        .log_histogram(&HistogramRecord {
            key: "grads".into(),
            data: HistogramData::Values(Arc::from(vec![f64::NAN])),
            step: 0,
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid histogram: `grads` has no finite values; not written"
    );
}

#[test]
fn run_info_points_tensorboard_at_the_logdir() {
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("my run").join(TENSORBOARD_DIR);
    let b = TensorBoardBackend::new(&logdir).unwrap();
    let info = b.run_info().unwrap();
    assert_eq!(info.path.as_deref(), Some(logdir.as_path()));
    assert_eq!(
        info.command.unwrap(),
        format!("tensorboard --logdir '{}'", logdir.display())
    );
    assert_eq!(shell_quote("/tmp/out/tensorboard"), "/tmp/out/tensorboard");
    assert_eq!(shell_quote("it's"), "'it'\\''s'");
}

#[test]
fn png_color_types_map_to_tensorboard_colorspaces() {
    let png = |img: image::DynamicImage| {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        png_channels(&out.into_inner())
    };
    assert_eq!(png(image::DynamicImage::new_luma8(2, 2)), 1);
    assert_eq!(png(image::DynamicImage::new_luma_a8(2, 2)), 2);
    assert_eq!(png(image::DynamicImage::new_rgb8(2, 2)), 3);
    assert_eq!(png(image::DynamicImage::new_rgba8(2, 2)), 4);
}

#[test]
fn tensorboard_is_registered_and_a_default_backend() {
    assert!(crate::registered_backends().contains(&"tensorboard".to_string()));
    assert!(crate::default_backend_names().contains(&"tensorboard".to_string()));
}

#[test]
fn only_rank_zero_writes_event_files() {
    let dir = tempfile::tempdir().unwrap();
    for rank in [1, 0] {
        let outdir = dir.path().join(format!("rank{rank}"));
        let tracker = crate::TrackerBuilder::new()
            .backends("tensorboard")
            .outdir(&outdir)
            .rank_info(crate::RankInfo::single().with_rank(rank, 2))
            .build_strict()
            .unwrap();
        tracker.log([("loss", 0.5)]);
        tracker.finish().unwrap();
        assert_eq!(
            outdir.join(TENSORBOARD_DIR).is_dir(),
            rank == 0,
            "rank {rank}"
        );
    }
}
