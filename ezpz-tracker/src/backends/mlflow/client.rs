//! The REST calls: JSON in, JSON out, every failure classified for the retry policy.
//!
//! One blocking `reqwest` client (rustls), used only on the backend's delivery thread or by
//! `ezpz sync`. Error texts never contain a URL (it may embed credentials) or a secret.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::Url;

use super::auth::{Credentials, Secrets, Tls};
use crate::retry::parse_retry_after;
use crate::{Error, Result};

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// No answer: the connection failed, broke, or timed out.
    Network(String),
    /// A local problem (an unreadable file): retrying will not help.
    Local(String),
    /// The server answered with an error.
    Status {
        /// HTTP status.
        status: u16,
        /// MLflow's `error_code`, when the body had one.
        code: Option<String>,
        /// MLflow's `message`, or the start of the body.
        message: String,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
}

/// MLflow `error_code`s that mean "this request, as it is, will never be accepted". Only an
/// answer in MLflow's JSON error shape with one of these codes (and a 4xx status) is final;
/// everything else may be a proxy, a restart, an overloaded server: it is retried.
const PERMANENT_CODES: &[&str] = &[
    "INVALID_PARAMETER_VALUE",
    "BAD_REQUEST",
    "MALFORMED_REQUEST",
    "RESOURCE_ALREADY_EXISTS",
    "INVALID_STATE_TRANSITION",
];

impl Failure {
    /// Whether the server refused this request for good: MLflow's JSON error body with a
    /// permanent `error_code` (`INVALID_PARAMETER_VALUE`, …) on a 4xx answer, or a local
    /// problem. A 404 or 200 HTML page, a 502 from a proxy, a reset or a timeout are not.
    pub fn is_permanent(&self) -> bool {
        match self {
            Failure::Local(_) => true,
            Failure::Network(_) => false,
            Failure::Status { status, code, .. } => {
                (400..500).contains(status)
                    && !matches!(status, 401 | 403 | 408 | 429)
                    && code
                        .as_deref()
                        .is_some_and(|c| PERMANENT_CODES.contains(&c))
            }
        }
    }

    /// Whether the same request may succeed later: anything that is neither permanent (see
    /// [`is_permanent`](Self::is_permanent)) nor a refusal of access.
    #[cfg(test)]
    pub fn is_retryable(&self) -> bool {
        !self.is_permanent() && !self.is_auth()
    }

    /// Whether the server refused the credentials or the host (401, 403, or MLflow's
    /// `PERMISSION_DENIED` / `UNAUTHENTICATED`).
    pub fn is_auth(&self) -> bool {
        match self {
            Failure::Status { status, code, .. } => {
                matches!(status, 401 | 403)
                    || matches!(
                        code.as_deref(),
                        Some("PERMISSION_DENIED" | "UNAUTHENTICATED" | "CUSTOMER_UNAUTHORIZED")
                    )
            }
            Failure::Network(_) | Failure::Local(_) => false,
        }
    }

    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Status { status, .. } => Some(*status),
            Failure::Network(_) | Failure::Local(_) => None,
        }
    }

    /// MLflow's error code, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            Failure::Status { code, .. } => code.as_deref(),
            Failure::Network(_) | Failure::Local(_) => None,
        }
    }

    /// The server's message (or the network error).
    pub fn message(&self) -> &str {
        match self {
            Failure::Status { message, .. }
            | Failure::Network(message)
            | Failure::Local(message) => message,
        }
    }

    /// How long the server asked us to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status { retry_after, .. } => *retry_after,
            Failure::Network(_) | Failure::Local(_) => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Network(m) => write!(f, "server not reachable ({m})"),
            Failure::Local(m) => f.write_str(m),
            Failure::Status {
                status,
                code: Some(code),
                message,
                ..
            } => write!(f, "HTTP {status} {code}: {message}"),
            Failure::Status {
                status, message, ..
            } => write!(f, "HTTP {status}: {message}"),
        }
    }
}

/// A client for one tracking server.
#[derive(Debug)]
pub(crate) struct RestClient {
    http: Client,
    base: String,
    credentials: Credentials,
    secrets: Secrets,
    timeout: Duration,
}

/// The slowest upload speed a large artifact is given time for: its request timeout grows by
/// one second per this many bytes, so a large file is not cut off (and retried forever).
const MIN_UPLOAD_BYTES_PER_SEC: u64 = 1 << 20;

impl RestClient {
    /// A client for `tracking_uri` (`http(s)://host[:port][/prefix]`).
    ///
    /// # Errors
    /// The URI is not an HTTP(S) URL, or the TLS settings are unusable (an unreadable CA file).
    pub fn new(
        tracking_uri: &str,
        credentials: Credentials,
        tls: &Tls,
        timeout: Duration,
    ) -> Result<Self> {
        let url =
            Url::parse(tracking_uri).map_err(|e| invalid_uri(tracking_uri, &e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid_uri(
                tracking_uri,
                "only http(s) tracking servers are supported (REST)",
            ));
        }
        let mut builder = Client::builder()
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .timeout(timeout)
            .redirect(crate::retry::same_origin_redirects())
            .user_agent(concat!("ezpz-tracker/", env!("CARGO_PKG_VERSION")));
        if tls.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if let Some(path) = &tls.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                Error::io(
                    "cannot read MLFLOW_TRACKING_SERVER_CERT_PATH certificate",
                    path,
                    e,
                )
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::Invalid {
                    what: "MLFLOW_TRACKING_SERVER_CERT_PATH",
                    message: format!("`{}` is not a PEM certificate bundle: {e}", path.display()),
                })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| Error::Invalid {
            what: "MLflow HTTP client",
            message: describe(&e),
        })?;
        let mut secrets = credentials.secret_values();
        secrets.extend(url.password().map(str::to_string));
        let secrets = Secrets::new(secrets);
        Ok(RestClient {
            http,
            base: tracking_uri.trim_end_matches('/').to_string(),
            credentials,
            secrets,
            timeout,
        })
    }

    /// The credentials in use (for messages: [`Credentials::describe`]).
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The secrets to scrub from text.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The tracking URI without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/2.0/mlflow/{path}", self.base)
    }

    /// `POST /api/2.0/mlflow/<path>` with a JSON body; the answer's JSON.
    ///
    /// # Errors
    /// See [`Failure`].
    pub fn post(&self, path: &str, body: String) -> Result<serde_json::Value, Failure> {
        let request = self
            .http
            .post(self.api(path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.json(request)
    }

    /// `GET /api/2.0/mlflow/<path>?<query>`; the answer's JSON.
    ///
    /// # Errors
    /// See [`Failure`].
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<serde_json::Value, Failure> {
        self.json(self.http.get(self.api(path)).query(query))
    }

    /// `PUT`s the file at `src` to `url` (an artifact through the proxy).
    ///
    /// # Errors
    /// See [`Failure`]; an unreadable file is [`Failure::Local`].
    pub fn put_file(&self, url: Url, src: &Path) -> Result<(), Failure> {
        let file = std::fs::File::open(src)
            .map_err(|e| Failure::Local(format!("cannot read `{}`: {e}", src.display())))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let request = self
            .http
            .put(url)
            .timeout(upload_timeout(self.timeout, size))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(file);
        self.send(request).map(drop)
    }

    fn json(&self, request: RequestBuilder) -> Result<serde_json::Value, Failure> {
        let response = self.send(request)?;
        let text = response
            .text()
            .map_err(|e| Failure::Network(self.secrets.redact(&describe(&e))))?;
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Object(Default::default()));
        }
        serde_json::from_str(&text).map_err(|e| Failure::Status {
            status: 200,
            code: None,
            message: format!("the answer is not JSON ({e})"),
            retry_after: None,
        })
    }

    fn send(&self, request: RequestBuilder) -> Result<Response, Failure> {
        let response = self
            .credentials
            .apply(request)
            .send()
            .map_err(|e| Failure::Network(self.secrets.redact(&describe(&e))))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| response.url().join(l).ok())
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_else(|| "an unknown address".into());
            return Err(Failure::Status {
                status,
                code: None,
                message: format!(
                    "the server redirects to {to}; credentials are only sent to the tracking \
                     server's own address (same scheme, host and port), so the redirect is not \
                     followed: set MLFLOW_TRACKING_URI to the address it redirects to"
                ),
                retry_after: None,
            });
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = response.text().unwrap_or_default();
        let (code, message) = error_fields(&body);
        Err(Failure::Status {
            status,
            code,
            message: self.secrets.redact(&message),
            retry_after,
        })
    }
}

/// A request timeout for uploading `size` bytes: the usual one, plus a second per MiB.
fn upload_timeout(base: Duration, size: u64) -> Duration {
    base.saturating_add(Duration::from_secs(size / MIN_UPLOAD_BYTES_PER_SEC))
}

fn invalid_uri(uri: &str, why: &str) -> Error {
    Error::Invalid {
        what: "MLFLOW_TRACKING_URI",
        message: format!("`{}`: {why}", super::auth::strip_userinfo(uri)),
    }
}

/// MLflow's `error_code` and `message` from an error body; a body that is not MLflow JSON
/// (auth proxies answer HTML or plain text) gives its first line, shortened.
fn error_fields(body: &str) -> (Option<String>, String) {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        let code = v["error_code"].as_str().map(str::to_string);
        if let Some(message) = v["message"].as_str() {
            return (code, shorten(message));
        }
        if code.is_some() {
            return (code, String::new());
        }
    }
    let first = body.lines().map(str::trim).find(|l| !l.is_empty());
    (None, shorten(first.unwrap_or("(empty answer)")))
}

fn shorten(text: &str) -> String {
    const MAX: usize = 300;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// A reqwest error as text without its URL (which may embed credentials), with its causes.
fn describe(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    if e.is_timeout() {
        parts.push("timed out".into());
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        let text = e.to_string();
        parts.push(match e.url() {
            Some(url) => text.replace(url.as_str(), "<url>"),
            None => text,
        });
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlflow_error_bodies_and_plain_text() {
        let (code, msg) = error_fields(
            r#"{"error_code":"RESOURCE_ALREADY_EXISTS","message":"Experiment(name=x) already exists."}"#,
        );
        assert_eq!(code.as_deref(), Some("RESOURCE_ALREADY_EXISTS"));
        assert_eq!(msg, "Experiment(name=x) already exists.");
        let (code, msg) =
            error_fields("\nInvalid Host header - possible DNS rebinding attack detected\n");
        assert_eq!(code, None);
        assert_eq!(
            msg,
            "Invalid Host header - possible DNS rebinding attack detected"
        );
        assert!(shorten(&"x".repeat(1000)).chars().count() <= 301);
    }

    #[test]
    fn failures_are_classified() {
        let status = |s: u16| Failure::Status {
            status: s,
            code: None,
            message: String::new(),
            retry_after: None,
        };
        let mlflow = |s: u16, code: &str| Failure::Status {
            status: s,
            code: Some(code.into()),
            message: String::new(),
            retry_after: None,
        };
        assert!(Failure::Network("refused".into()).is_retryable());
        assert!(status(503).is_retryable() && status(429).is_retryable());
        // Without MLflow's JSON error body nothing is final: HTML 404s, 405s, 200 login
        // pages, a 400 from a proxy.
        for s in [200, 302, 400, 404, 405, 409, 500, 502] {
            assert!(status(s).is_retryable() && !status(s).is_permanent(), "{s}");
        }
        assert!(mlflow(400, "INVALID_PARAMETER_VALUE").is_permanent());
        assert!(mlflow(400, "BAD_REQUEST").is_permanent());
        assert!(!mlflow(500, "INVALID_PARAMETER_VALUE").is_permanent());
        assert!(mlflow(500, "INTERNAL_ERROR").is_retryable());
        assert!(mlflow(404, "ENDPOINT_NOT_FOUND").is_retryable());
        assert!(mlflow(429, "REQUEST_LIMIT_EXCEEDED").is_retryable());
        assert!(status(403).is_auth() && status(401).is_auth() && !status(404).is_auth());
        assert!(!status(403).is_retryable() && !status(403).is_permanent());
    }

    #[test]
    fn uploads_get_time_in_proportion_to_their_size() {
        let base = Duration::from_secs(120);
        assert_eq!(upload_timeout(base, 0), base);
        assert_eq!(
            upload_timeout(base, 10 << 30),
            base + Duration::from_secs(10 * 1024)
        );
    }

    #[test]
    fn only_http_uris_are_accepted() {
        let tls = Tls::default();
        let t = Duration::from_secs(5);
        assert!(RestClient::new("http://127.0.0.1:1", Credentials::None, &tls, t).is_ok());
        let e = RestClient::new("file:///tmp/mlruns", Credentials::None, &tls, t).unwrap_err();
        assert!(e.to_string().contains("only http(s)"), "{e}");
        let e = RestClient::new("ftp://u:topsecret@x/", Credentials::None, &tls, t).unwrap_err();
        assert!(!e.to_string().contains("topsecret"), "{e}");
    }

    /// One HTTP answer on a loopback port; returns the port and the request it received.
    fn one_answer(answer: String) -> (u16, std::thread::JoinHandle<String>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            listener.set_nonblocking(false).unwrap();
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = vec![0u8; 65536];
            let n = s.read(&mut buf).unwrap_or(0);
            let _ = s.write_all(answer.as_bytes());
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (port, handle)
    }

    #[test]
    fn credentials_never_follow_a_redirect_to_another_origin() {
        // The "other host": anything it receives is a leak.
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other_port = other.local_addr().unwrap().port();
        other.set_nonblocking(true).unwrap();
        let (port, server) = one_answer(format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{other_port}/steal\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n"
        ));
        let c = RestClient::new(
            &format!("http://127.0.0.1:{port}"),
            Credentials::ApiKey("api-key-secret-987".into()),
            &Tls::default(),
            Duration::from_secs(5),
        )
        .unwrap();
        let f = c.post("runs/log-batch", "{}".into()).unwrap_err();
        let request = server.join().unwrap();
        assert!(
            request.to_ascii_lowercase().contains("x-api-key"),
            "{request}"
        );
        assert!(other.accept().is_err(), "the redirect was followed");
        assert_eq!(f.status(), Some(307));
        assert!(f.is_retryable(), "kept and retried, never dropped: {f}");
        let text = f.to_string();
        assert!(text.contains("MLFLOW_TRACKING_URI") && text.contains(&other_port.to_string()));
        assert!(
            !text.contains("api-key-secret-987") && !text.contains("steal"),
            "{text}"
        );
    }

    #[test]
    fn an_html_page_with_200_is_retried_not_dropped() {
        let page = "<html><body>Sign in</body></html>";
        let (port, server) = one_answer(format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{page}",
            page.len()
        ));
        let c = RestClient::new(
            &format!("http://127.0.0.1:{port}"),
            Credentials::None,
            &Tls::default(),
            Duration::from_secs(5),
        )
        .unwrap();
        let f = c.post("runs/log-batch", "{}".into()).unwrap_err();
        server.join().unwrap();
        assert!(f.is_retryable() && !f.is_permanent(), "{f:?}");
    }

    #[test]
    fn a_refused_connection_is_a_network_failure() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The listener is dropped: nothing listens on the port now.
        let c = RestClient::new(
            &format!("http://user:pw-secret-1@127.0.0.1:{port}"),
            Credentials::None,
            &Tls::default(),
            Duration::from_secs(5),
        )
        .unwrap();
        let f = c
            .get("experiments/get-by-name", &[("experiment_name", "x")])
            .unwrap_err();
        assert!(matches!(f, Failure::Network(_)), "{f:?}");
        assert!(!f.to_string().contains("pw-secret-1"), "{f}");
    }
}
