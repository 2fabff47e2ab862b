//! Credentials and TLS settings, exactly as MLflow's client reads them plus the original's
//! API key: `MLFLOW_TRACKING_USERNAME` + `MLFLOW_TRACKING_PASSWORD` → Basic; else
//! `MLFLOW_TRACKING_TOKEN` → Bearer; else `AMSC_API_KEY` (or `AM_SC_API_KEY`) → `X-Api-Key`.
//!
//! Secrets never leave this module in readable form: `Debug` redacts them, and [`Secrets`]
//! scrubs them from any text we print, store or send as a param.

use std::fmt;
use std::path::PathBuf;

use crate::env::{self, var};

/// How requests authenticate.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// No credentials.
    #[default]
    None,
    /// HTTP Basic.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `X-Api-Key: <key>`.
    ApiKey(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl Credentials {
    /// Reads the credentials from the environment (after the dotenv files were loaded).
    pub fn from_env() -> Self {
        if let (Some(user), Some(password)) = (
            var(env::MLFLOW_TRACKING_USERNAME),
            var(env::MLFLOW_TRACKING_PASSWORD),
        ) {
            Credentials::Basic { user, password }
        } else if let Some(token) = var(env::MLFLOW_TRACKING_TOKEN) {
            Credentials::Bearer(token)
        } else if let Some(key) = var(env::AMSC_API_KEY).or_else(|| var(env::AM_SC_API_KEY)) {
            Credentials::ApiKey(key)
        } else {
            Credentials::None
        }
    }

    /// Which variables supplied them (never their values), for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Credentials::None => "no credentials",
            Credentials::Basic { .. } => {
                "basic auth from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"
            }
            Credentials::Bearer(_) => "a bearer token from MLFLOW_TRACKING_TOKEN",
            Credentials::ApiKey(_) => "an X-Api-Key from AMSC_API_KEY",
        }
    }

    /// Adds the credentials to a request.
    pub fn apply(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match self {
            Credentials::None => request,
            Credentials::Basic { user, password } => request.basic_auth(user, Some(password)),
            Credentials::Bearer(token) => request.bearer_auth(token),
            Credentials::ApiKey(key) => request.header("X-Api-Key", key),
        }
    }

    /// The secret values, for scrubbing (see [`Secrets::new`]).
    pub fn secret_values(&self) -> Vec<String> {
        let mut values = match self {
            Credentials::None => Vec::new(),
            Credentials::Basic { password, .. } => vec![password.clone()],
            Credentials::Bearer(t) | Credentials::ApiKey(t) => vec![t.clone()],
        };
        // Every secret this process knows is scrubbed, used here or not (W&B's key too).
        values.extend(crate::report::known_secrets());
        values
    }
}

/// Secret values to scrub from text.
#[derive(Clone, Default)]
pub(crate) struct Secrets(Vec<String>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

impl Secrets {
    /// Scrubs these values (very short ones are kept: they would mangle ordinary text and are
    /// not secrets anyone relies on).
    pub fn new(mut values: Vec<String>) -> Self {
        values.retain(|v| v.len() >= 4);
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Secrets(values)
    }

    /// `text` with every secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.0 {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

/// TLS settings (`MLFLOW_TRACKING_INSECURE_TLS`, `MLFLOW_TRACKING_SERVER_CERT_PATH`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tls {
    /// Skip certificate verification.
    pub insecure: bool,
    /// Extra CA certificates (PEM) to trust.
    pub ca_cert: Option<PathBuf>,
}

impl Tls {
    /// Reads the settings from the environment.
    pub fn from_env() -> Self {
        Tls {
            insecure: var(env::MLFLOW_TRACKING_INSECURE_TLS)
                .is_some_and(|v| matches!(v.to_lowercase().as_str(), "true" | "1" | "yes")),
            ca_cert: var(env::MLFLOW_TRACKING_SERVER_CERT_PATH).map(PathBuf::from),
        }
    }
}

/// A URI without the user name and password it may embed (`https://u:p@h/` → `https://h/`),
/// for display and for files.
pub(crate) fn strip_userinfo(uri: &str) -> String {
    match reqwest::Url::parse(uri) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credentials::Basic {
            user: "alice".into(),
            password: "hunter2-very-secret".into(),
        };
        let text = format!("{c:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("MLFLOW_TRACKING_USERNAME"));
        let t = Credentials::Bearer("tok-123456".into());
        assert!(!format!("{t:?}").contains("tok-123456"));
    }

    #[test]
    fn redaction_replaces_every_occurrence() {
        let s = Secrets::new(vec!["sekrit-token".into(), "abc".into()]);
        assert_eq!(
            s.redact("train.py --token sekrit-token x=sekrit-token abc"),
            "train.py --token *** x=*** abc"
        );
        assert!(!format!("{s:?}").contains("sekrit"));
    }

    #[test]
    fn userinfo_is_stripped() {
        assert_eq!(
            strip_userinfo("https://bob:pw@mlflow.example:8443/prefix"),
            "https://mlflow.example:8443/prefix"
        );
        assert_eq!(
            strip_userinfo("http://127.0.0.1:5000"),
            "http://127.0.0.1:5000"
        );
    }
}
