//! What rank 0 shows while training: an `indicatif` bar on a terminal, plain periodic lines
//! otherwise (CI logs, `mpirun` output). Other ranks stay silent. It replaces burn's own
//! renderer, which prints one line per batch outside its terminal UI.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use burn::train::LearnerSummary;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A live bar (stderr is a terminal).
    Bar,
    /// A line every `every` steps, and one per finished split.
    Lines {
        /// Steps between lines.
        every: usize,
    },
    /// Nothing (ranks other than 0).
    Silent,
}

impl Mode {
    /// A bar when stderr is a terminal, else lines every `log_freq` steps (0: about 20 lines
    /// over `total_steps`); silent unless `main` (rank 0).
    pub fn detect(main: bool, log_freq: usize, total_steps: usize) -> Mode {
        if !main {
            Mode::Silent
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else if log_freq > 0 {
            Mode::Lines { every: log_freq }
        } else {
            Mode::Lines {
                every: total_steps.div_ceil(20).max(1),
            }
        }
    }
}

/// What the closing summary needs from the run, filled in as splits end.
#[derive(Debug, Clone, Default)]
pub struct RunResults {
    /// The last validation epoch's values by burn metric name (`Loss`, `Accuracy`).
    pub valid: HashMap<String, f64>,
    /// Wall time of the training splits only (validation excluded), in seconds.
    pub train_secs: f64,
}

/// Shared between the renderer (on burn's event thread) and `main`.
pub type SharedResults = Arc<Mutex<RunResults>>;

/// burn renderer showing steps, loss, accuracy, learning rate and throughput.
pub struct Progress {
    mode: Mode,
    results: SharedResults,
    batch_size: usize,
    names: HashMap<MetricId, String>,
    latest: HashMap<String, f64>,
    finals: Vec<(String, f64)>,
    bar: Option<ProgressBar>,
    split: String,
    split_steps: usize,
    split_started: Instant,
    epoch: usize,
    epochs: usize,
    last_line: usize,
    started: Instant,
}

impl Progress {
    /// A renderer in `mode`, converting burn's item counts to steps of `batch_size`; split
    /// durations and each validation epoch's final values go to `results`.
    pub fn new(mode: Mode, batch_size: usize, results: SharedResults) -> Self {
        Progress {
            mode,
            results,
            batch_size: batch_size.max(1),
            names: HashMap::new(),
            latest: HashMap::new(),
            finals: Vec::new(),
            bar: None,
            split: String::new(),
            split_steps: 0,
            split_started: Instant::now(),
            epoch: 1,
            epochs: 1,
            last_line: 0,
            started: Instant::now(),
        }
    }

    fn record(&mut self, state: MetricState) {
        let MetricState::Numeric(entry, Some(value)) = state else {
            return;
        };
        let Some(name) = self.names.get(&entry.metric_id).cloned() else {
            return;
        };
        match value {
            NumericEntry::Final(v) => self.finals.push((name, v)),
            other => {
                self.latest.insert(name, other.current());
            }
        }
    }

    /// `loss=… acc=…% lr=… img/s=…` from the latest values.
    fn figures(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.latest.get("Loss") {
            parts.push(format!("loss={v:.4}"));
        }
        if let Some(v) = self.latest.get("Accuracy") {
            parts.push(format!("acc={v:.1}%"));
        }
        if self.split == "train" {
            if let Some(v) = self.latest.get("Learning Rate") {
                parts.push(format!("lr={v:.2e}"));
            }
            if let Some(v) = self.latest.get("Images Per Second") {
                parts.push(format!("img/s={v:.0}"));
            }
        }
        parts.join(" ")
    }

    fn prefix(&self) -> String {
        format!("[{}] epoch {}/{}", self.split, self.epoch, self.epochs)
    }
}

fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

impl TrainingProgressLogger for Progress {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        _: Option<usize>,
        _: Option<&str>,
    ) {
        self.epochs = total_epochs;
        self.epoch = starting_epoch.max(1);
        self.started = Instant::now();
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch + 1;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.split = split.to_string();
        self.split_steps = total_items.div_ceil(self.batch_size);
        self.split_started = Instant::now();
        self.last_line = 0;
        self.latest.clear();
        self.finals.clear();
        if self.mode == Mode::Bar {
            let bar = ProgressBar::with_draw_target(
                Some(self.split_steps as u64),
                ProgressDrawTarget::stderr(),
            );
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30.cyan/blue}] {pos}/{len} steps {msg} [{elapsed_precise}<{eta_precise}]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(self.prefix());
            self.bar = Some(bar);
        }
    }

    fn update_split(&mut self, items_processed: usize) {
        let step = items_processed.div_ceil(self.batch_size);
        match self.mode {
            Mode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(step as u64);
                    bar.set_message(self.figures());
                }
            }
            Mode::Lines { every }
                if self.split == "train"
                    && (step >= self.last_line + every || step == self.split_steps) =>
            {
                self.last_line = step;
                println!(
                    "{} step {step}/{} {} [{}]",
                    self.prefix(),
                    self.split_steps,
                    self.figures(),
                    elapsed(self.started.elapsed())
                );
            }
            _ => {}
        }
    }

    fn end_split(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        {
            let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
            match self.split.as_str() {
                "valid" => results.valid.extend(self.finals.iter().cloned()),
                "train" => results.train_secs += self.split_started.elapsed().as_secs_f64(),
                _ => {}
            }
        }
        if self.mode == Mode::Silent {
            return;
        }
        let summary: Vec<String> = self
            .finals
            .iter()
            .filter(|(n, _)| matches!(n.as_str(), "Loss" | "Accuracy"))
            .map(|(n, v)| match n.as_str() {
                "Accuracy" => format!("acc={v:.2}%"),
                _ => format!("loss={v:.4}"),
            })
            .collect();
        println!(
            "{} done: {} steps, {} [{}]",
            self.prefix(),
            self.split_steps,
            summary.join(" "),
            elapsed(self.started.elapsed())
        );
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for Progress {
    fn start_global_progress(&mut self, _: usize) {}
    fn start_test(&mut self, _: &str, _: usize) {}
    fn update_test_progress(&mut self, _: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _: String) {}
}

impl MetricsRendererTraining for Progress {
    fn update_train(&mut self, state: MetricState) {
        self.record(state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.record(state);
    }

    fn on_train_end(
        &mut self,
        _summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        Ok(()) // the closing summary is printed by main
    }
}

impl MetricsRendererEvaluation for Progress {
    fn update_test(&mut self, _: EvaluationName, _: MetricState) {}

    fn on_test_end(
        &mut self,
        _summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        Ok(())
    }
}

impl MetricsRenderer for Progress {
    fn manual_close(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id, definition.name.to_string());
    }
}
