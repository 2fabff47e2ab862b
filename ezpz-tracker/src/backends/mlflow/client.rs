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
use crate::retry::{classify, parse_retry_after, Class};
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

impl Failure {
    /// Whether the same request may succeed later (network errors, 408, 429, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            Failure::Network(_) => true,
            Failure::Local(_) => false,
            Failure::Status { status, .. } => classify(*status) == Class::Retry,
        }
    }

    /// Whether the server refused the credentials or the host (401, 403).
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Failure::Status {
                status: 401 | 403,
                ..
            }
        )
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
}

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
        let request = self
            .http
            .put(url)
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
        assert!(Failure::Network("refused".into()).is_retryable());
        assert!(status(503).is_retryable() && status(429).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(status(403).is_auth() && status(401).is_auth() && !status(404).is_auth());
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
