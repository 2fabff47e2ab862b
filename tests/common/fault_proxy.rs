//! A tiny loopback HTTP proxy that injects server errors in front of a real server.
//!
//! Each request is handled on its own connection (`connection: close` both ways). Per
//! request the proxy either forwards it, answers 500 without forwarding ("failed before"),
//! or forwards it, throws the real answer away and answers 500 ("failed after": the server
//! applied the request but the client never hears so — the case that makes retries
//! dangerous). [`Fault`]s, queued with [`FaultProxy::inject`], replace the next matching
//! requests' answers with what real front ends do: an absurd `Retry-After`, an HTML login
//! page with 200, an HTML 404, no answer at all, a reset after the server applied the
//! request, MLflow's own refusal of one metric key.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything.
    Pass,
    /// Answer 500 to everything, forwarding nothing.
    FailAll,
    /// Fail a request before forwarding it with this percentage, after forwarding it with
    /// the same percentage again; forward the rest. The draws come from a fixed-seed
    /// generator (a periodic pattern could lock step with the client's request sequence).
    Flaky(u64),
}

/// What the proxy does instead of forwarding, for the next requests whose path contains a
/// pattern (see [`FaultProxy::inject`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 503 with `Retry-After: <value>` (e.g. `1e20`, `-1`, `NaN`), not forwarded.
    RetryAfter(String),
    /// 200 with an HTML page (a login portal), not forwarded.
    HtmlOk,
    /// 404 with an HTML page (a misrouted ingress), not forwarded.
    Html404,
    /// Accepts the request and never answers (until the client gives up).
    Hang,
    /// Forwards the request, then closes the connection without an answer.
    ResetAfter,
    /// 502 from a gateway, not forwarded.
    BadGateway,
}

/// Counters of what happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests answered by the server.
    pub forwarded: u64,
    /// Requests answered 500 without reaching the server.
    pub failed_before: u64,
    /// Requests the server applied but whose answer was replaced by a 500.
    pub failed_after: u64,
    /// Requests answered by an injected [`Fault`] (or a refused key).
    pub injected: u64,
}

#[derive(Debug)]
struct State {
    mode: Mode,
    rng: u64,
    counts: Counts,
    /// `(path pattern, fault, remaining)`.
    faults: Vec<(String, Fault, u64)>,
    /// A metric key `log-batch` requests may not contain (answered as MLflow refuses).
    refused_key: Option<String>,
}

impl State {
    /// A number in 0..100 (xorshift64).
    fn draw(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % 100
    }
}

/// See the module docs.
pub struct FaultProxy {
    /// The proxy's port.
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listens on a free loopback port, forwarding to `127.0.0.1:<upstream>`.
    pub fn start(upstream: u16, mode: Mode) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let state = Arc::new(Mutex::new(State {
            mode,
            rng: 0x9E37_79B9_7F4A_7C15,
            counts: Counts::default(),
            faults: Vec::new(),
            refused_key: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let st = st.clone();
                        std::thread::spawn(move || handle(client, upstream, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultProxy { port, state, stop }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Changes what happens to the next requests.
    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// What happened so far.
    pub fn counts(&self) -> Counts {
        self.state.lock().unwrap().counts
    }

    /// Answers the next `times` requests whose path contains `pattern` with `fault`.
    pub fn inject(&self, pattern: &str, fault: Fault, times: u64) {
        self.state
            .lock()
            .unwrap()
            .faults
            .push((pattern.to_string(), fault, times));
    }

    /// Faults not used up yet.
    pub fn faults_left(&self) -> u64 {
        self.state.lock().unwrap().faults.iter().map(|f| f.2).sum()
    }

    /// Refuses every `log-batch` that carries metric `key`, exactly as MLflow refuses a name
    /// (400 `INVALID_PARAMETER_VALUE` naming `metrics[i].name`), as a server with stricter
    /// rules than the client's would.
    pub fn refuse_key(&self, key: &str) {
        self.state.lock().unwrap().refused_key = Some(key.to_string());
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

enum Action {
    Forward,
    FailBefore,
    FailAfter,
    Inject(Fault),
    Refuse(usize),
}

fn path_of(request: &[u8]) -> String {
    let line_end = request
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(request.len());
    String::from_utf8_lossy(&request[..line_end])
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// The index of the first metric named `key` in a `log-batch` body, if any.
fn refused_index(request: &[u8], key: &str) -> Option<usize> {
    let split = request.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let body: serde_json::Value = serde_json::from_slice(&request[split..]).ok()?;
    body["metrics"]
        .as_array()?
        .iter()
        .position(|m| m["key"].as_str() == Some(key))
}

fn handle(client: TcpStream, upstream: u16, state: &Mutex<State>) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let Some(request) = read_request(&client) else {
        return;
    };
    let action = {
        let mut s = state.lock().unwrap();
        let path = path_of(&request);
        let fault = s
            .faults
            .iter_mut()
            .find(|(p, _, left)| *left > 0 && path.contains(p.as_str()))
            .map(|(_, f, left)| {
                *left -= 1;
                f.clone()
            });
        let refused = match (&s.refused_key, path.contains("runs/log-batch")) {
            (Some(key), true) => refused_index(&request, key),
            _ => None,
        };
        let action = match (fault, refused) {
            (Some(f), _) => Action::Inject(f),
            (None, Some(i)) => Action::Refuse(i),
            (None, None) => match s.mode {
                Mode::Pass => Action::Forward,
                Mode::FailAll => Action::FailBefore,
                Mode::Flaky(pct) => match s.draw() {
                    d if d < pct => Action::FailBefore,
                    d if d < 2 * pct => Action::FailAfter,
                    _ => Action::Forward,
                },
            },
        };
        match action {
            Action::Forward => s.counts.forwarded += 1,
            Action::FailBefore => s.counts.failed_before += 1,
            Action::FailAfter => s.counts.failed_after += 1,
            Action::Inject(_) | Action::Refuse(_) => s.counts.injected += 1,
        }
        action
    };
    let mut client = client;
    let answer = match action {
        Action::FailBefore => error_500(),
        Action::Forward | Action::FailAfter => match forward(&request, upstream) {
            Some(real) if matches!(action, Action::Forward) => real,
            Some(_) => error_500(),
            None => return,
        },
        Action::Refuse(i) => answer(
            "400 Bad Request",
            "application/json",
            &[],
            &format!(
                "{{\"error_code\": \"INVALID_PARAMETER_VALUE\", \"message\": \"Invalid value \
                 \\\"x\\\" for parameter 'metrics[{i}].name' supplied: refused by the test \
                 proxy\"}}"
            ),
        ),
        Action::Inject(Fault::RetryAfter(value)) => answer(
            "503 Service Unavailable",
            "text/plain",
            &[("retry-after", value.as_str())],
            "overloaded",
        ),
        Action::Inject(Fault::HtmlOk) => answer(
            "200 OK",
            "text/html",
            &[],
            "<!DOCTYPE html><html><body><form>Sign in to continue</form></body></html>",
        ),
        Action::Inject(Fault::Html404) => answer(
            "404 Not Found",
            "text/html",
            &[],
            "<html><body><h1>404 Not Found</h1>nginx</body></html>",
        ),
        Action::Inject(Fault::BadGateway) => answer(
            "502 Bad Gateway",
            "text/html",
            &[],
            "<html><body>502 Bad Gateway</body></html>",
        ),
        Action::Inject(Fault::Hang) => {
            // Hold the connection open without a word until the client gives up (it
            // closes: the read sees the end) or ten minutes pass.
            let _ = client.set_read_timeout(Some(Duration::from_secs(600)));
            let mut sink = [0u8; 64];
            let _ = client.read(&mut sink);
            return;
        }
        Action::Inject(Fault::ResetAfter) => {
            let _ = forward(&request, upstream);
            let _ = client.shutdown(std::net::Shutdown::Both);
            return;
        }
    };
    let _ = client.write_all(&answer);
    let _ = client.flush();
}

fn answer(status: &str, content_type: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

fn error_500() -> Vec<u8> {
    let body = r#"{"error_code": "INTERNAL_ERROR", "message": "injected by the test proxy"}"#;
    format!(
        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one request (head with `connection: close`, then the body by `content-length`).
fn read_request(stream: &TcpStream) -> Option<Vec<u8>> {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        if lower.starts_with("connection:") {
            continue;
        }
        head.push_str(&line);
    }
    head.push_str("connection: close\r\n\r\n");
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    let mut out = head.into_bytes();
    out.extend(body);
    Some(out)
}

/// Sends the request upstream and returns the whole answer (the server closes after it).
fn forward(request: &[u8], upstream: u16) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", upstream)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    s.write_all(request).ok()?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).ok()?;
    // Make sure the client does not reuse the connection either.
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&answer[..split - 4]).to_string();
    let mut out = String::new();
    for line in head.split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&answer[split..]);
    Some(bytes)
}
