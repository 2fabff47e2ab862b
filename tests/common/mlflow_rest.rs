//! Reading runs back from a real MLflow server over its REST API.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A metric point as the server stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Its step.
    pub step: u64,
    /// Its value (`NaN` for the server's `"NaN"`).
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

/// A REST reader for one server.
pub struct Rest {
    base: String,
    http: reqwest::blocking::Client,
}

impl Rest {
    /// A reader for `uri`.
    pub fn new(uri: &str) -> Rest {
        Rest {
            base: format!("{}/api/2.0/mlflow", uri.trim_end_matches('/')),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
        }
    }

    /// `GET` a REST path; panics on an error answer.
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let r = self
            .http
            .get(format!("{}/{path}", self.base))
            .query(query)
            .send()
            .expect("GET");
        let status = r.status();
        let text = r.text().expect("body");
        assert!(status.is_success(), "GET {path}: {status} {text}");
        serde_json::from_str(&text).expect("json")
    }

    /// `POST` a REST path; the status and the JSON answer.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/{path}", self.base))
            .json(body)
            .send()
            .expect("POST");
        let status = r.status().as_u16();
        let text = r.text().expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `runs/get` → the run.
    pub fn run(&self, run_id: &str) -> Value {
        self.get("runs/get", &[("run_id", run_id)])["run"].clone()
    }

    /// A run's full history of `key`, in server order.
    pub fn history(&self, run_id: &str, key: &str) -> Vec<Point> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut q = vec![
                ("run_id", run_id),
                ("metric_key", key),
                ("max_results", "25000"),
            ];
            if !token.is_empty() {
                q.push(("page_token", token.as_str()));
            }
            let page = self.get("metrics/get-history", &q);
            for m in page["metrics"].as_array().cloned().unwrap_or_default() {
                let value = match &m["value"] {
                    Value::String(s) if s == "NaN" => f64::NAN,
                    Value::String(s) if s == "Infinity" => f64::INFINITY,
                    Value::String(s) if s == "-Infinity" => f64::NEG_INFINITY,
                    v => v.as_f64().expect("numeric value"),
                };
                out.push(Point {
                    step: m["step"].as_u64().unwrap_or(0),
                    value,
                    timestamp: m["timestamp"].as_i64().unwrap_or(0),
                });
            }
            match page["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_string(),
                _ => return out,
            }
        }
    }

    /// A run's metric names (from its latest values).
    pub fn metric_keys(&self, run_id: &str) -> Vec<String> {
        let run = self.run(run_id);
        let mut keys: Vec<String> = run["data"]["metrics"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m["key"].as_str().map(str::to_string))
            .collect();
        keys.sort();
        keys
    }

    /// A run's params or tags (`kind` = "params" | "tags") as a map.
    pub fn kv(&self, run_id: &str, kind: &str) -> BTreeMap<String, String> {
        let run = self.run(run_id);
        run["data"][kind]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|p| {
                (
                    p["key"].as_str().unwrap_or_default().to_string(),
                    p["value"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// An artifact's bytes (`GET /get-artifact`).
    pub fn artifact(&self, run_id: &str, path: &str) -> Vec<u8> {
        let root = self.base.trim_end_matches("/api/2.0/mlflow");
        let r = self
            .http
            .get(format!("{root}/get-artifact"))
            .query(&[("run_id", run_id), ("path", path)])
            .send()
            .expect("get-artifact");
        assert!(r.status().is_success(), "artifact {path}: {}", r.status());
        r.bytes().expect("bytes").to_vec()
    }

    /// The experiment's id by name, if it exists.
    pub fn experiment_id(&self, name: &str) -> Option<String> {
        let r = self
            .http
            .get(format!("{}/experiments/get-by-name", self.base))
            .query(&[("experiment_name", name)])
            .send()
            .expect("get-by-name");
        if !r.status().is_success() {
            return None;
        }
        let v: Value = r.json().expect("json");
        v["experiment"]["experiment_id"]
            .as_str()
            .map(str::to_string)
    }

    /// Every run of the experiment called `name` (none when it does not exist).
    pub fn runs(&self, experiment: &str) -> Vec<Value> {
        let Some(id) = self.experiment_id(experiment) else {
            return Vec::new();
        };
        let (status, v) = self.post(
            "runs/search",
            &json!({"experiment_ids": [id], "max_results": 1000, "run_view_type": "ALL"}),
        );
        assert_eq!(status, 200, "{v}");
        v["runs"].as_array().cloned().unwrap_or_default()
    }

    /// The only run of `experiment` (panics unless there is exactly one) → its id.
    pub fn only_run(&self, experiment: &str) -> String {
        let runs = self.runs(experiment);
        assert_eq!(runs.len(), 1, "runs in `{experiment}`: {runs:#?}");
        runs[0]["info"]["run_id"]
            .as_str()
            .expect("run id")
            .to_string()
    }

    /// Waits until the run's history of `key` has at least `n` points.
    pub fn wait_for_points(&self, experiment: &str, key: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let runs = self.runs(experiment);
            if let Some(id) = runs.first().and_then(|r| r["info"]["run_id"].as_str()) {
                if self.history(id, key).len() >= n {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "`{key}` did not reach {n} points in `{experiment}` within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Asserts that `points` hold every step of `steps` exactly once with `value(step)`.
pub fn assert_exactly_once(
    points: &[Point],
    steps: impl IntoIterator<Item = u64>,
    value: impl Fn(u64) -> f64,
    what: &str,
) {
    let mut by_step: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for p in points {
        by_step.entry(p.step).or_default().push(p.value);
    }
    let expected: Vec<u64> = steps.into_iter().collect();
    let dupes: Vec<(&u64, &Vec<f64>)> = by_step.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(dupes.is_empty(), "{what}: duplicated steps {dupes:?}");
    let got: Vec<u64> = by_step.keys().copied().collect();
    assert_eq!(got, expected, "{what}: steps differ");
    for (step, values) in &by_step {
        assert_eq!(values[0], value(*step), "{what}: value at step {step}");
    }
}
