//! Which W&B mode a run uses: the original's `_resolve_wandb_mode`, with `dryrun` = offline.

use std::fmt;

use crate::env::{self, var};
use crate::{Error, Result};

/// How the W&B backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WandbMode {
    /// Write the local log and stream to the server.
    Online,
    /// Write the local log only; upload later with `wandb sync`.
    Offline,
    /// Do nothing.
    Disabled,
    /// W&B's multi-writer mode; here the same as online (only rank 0 writes).
    Shared,
}

impl WandbMode {
    /// Whether the run talks to a server.
    pub fn is_online(self) -> bool {
        matches!(self, WandbMode::Online | WandbMode::Shared)
    }

    /// Parses a mode name (case-insensitive); `dryrun` means offline.
    ///
    /// # Errors
    /// Any other name: one message listing the accepted ones.
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_lowercase().as_str() {
            "online" => Ok(WandbMode::Online),
            "offline" | "dryrun" => Ok(WandbMode::Offline),
            "disabled" => Ok(WandbMode::Disabled),
            "shared" => Ok(WandbMode::Shared),
            other => Err(Error::Invalid {
                what: "W&B mode",
                message: format!(
                    "`{other}` (from the code or {}); expected `online`, `offline`, `disabled`, \
                     `shared` or `dryrun`; the wandb backend is not started",
                    env::WANDB_MODE
                ),
            }),
        }
    }
}

impl fmt::Display for WandbMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WandbMode::Online => "online",
            WandbMode::Offline => "offline",
            WandbMode::Disabled => "disabled",
            WandbMode::Shared => "shared",
        })
    }
}

/// Resolves the mode from the environment: a non-empty `WANDB_DISABLED` wins (whatever its
/// value, as in the original); then `explicit`; then `WANDB_MODE`; else online.
///
/// # Errors
/// An unknown mode name (see [`WandbMode::parse`]).
pub fn resolve_mode(explicit: Option<&str>) -> Result<WandbMode> {
    resolve(
        explicit,
        var(env::WANDB_DISABLED).as_deref(),
        var(env::WANDB_MODE).as_deref(),
    )
}

/// [`resolve_mode`] with the environment given (testable without touching the process).
fn resolve(
    explicit: Option<&str>,
    disabled: Option<&str>,
    env_mode: Option<&str>,
) -> Result<WandbMode> {
    if disabled.is_some_and(|d| !d.trim().is_empty()) {
        return Ok(WandbMode::Disabled);
    }
    match explicit.filter(|m| !m.trim().is_empty()).or(env_mode) {
        Some(m) if !m.trim().is_empty() => WandbMode::parse(m),
        _ => Ok(WandbMode::Online),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_env_wins_over_everything() {
        assert_eq!(
            resolve(Some("online"), Some("0"), Some("offline")).unwrap(),
            WandbMode::Disabled
        );
        assert_eq!(
            resolve(None, Some("false"), None).unwrap(),
            WandbMode::Disabled
        );
        // An invalid mode does not matter once W&B is disabled.
        assert_eq!(
            resolve(Some("bogus"), Some("1"), None).unwrap(),
            WandbMode::Disabled
        );
    }

    #[test]
    fn explicit_mode_beats_the_environment() {
        assert_eq!(
            resolve(Some("offline"), None, Some("online")).unwrap(),
            WandbMode::Offline
        );
        assert_eq!(
            resolve(Some(""), None, Some("offline")).unwrap(),
            WandbMode::Offline
        );
        assert_eq!(
            resolve(None, None, Some("Disabled")).unwrap(),
            WandbMode::Disabled
        );
        assert_eq!(resolve(None, None, None).unwrap(), WandbMode::Online);
        assert_eq!(
            resolve(None, Some(""), Some("SHARED")).unwrap(),
            WandbMode::Shared
        );
    }

    #[test]
    fn dryrun_means_offline() {
        assert_eq!(
            resolve(None, None, Some("dryrun")).unwrap(),
            WandbMode::Offline
        );
    }

    #[test]
    fn an_invalid_mode_is_one_clear_error() {
        let err = resolve(None, None, Some("onlin")).unwrap_err().to_string();
        assert!(err.contains("`onlin`"), "{err}");
        assert!(
            err.contains("`online`, `offline`, `disabled`, `shared`"),
            "{err}"
        );
        assert!(err.contains("not started"), "{err}");
    }
}
