//! Finding the W&B API key: `WANDB_API_KEY`, else the `~/.netrc` entry that `wandb login`
//! writes for the server's host. The key is never printed.

use std::path::Path;

use crate::env::{self, var};

/// The API key for `base_url`, if any.
pub fn api_key(base_url: &str) -> Option<String> {
    var(env::WANDB_API_KEY).or_else(|| {
        let home = std::env::var_os("HOME")?;
        let netrc = std::fs::read_to_string(Path::new(&home).join(".netrc")).ok()?;
        netrc_password(&netrc, host_of(base_url)?)
    })
}

/// Whether the user is logged in to W&B for `WANDB_BASE_URL` (else the public server):
/// `WANDB_API_KEY` is set, or `~/.netrc` has the entry `wandb login` writes.
pub fn logged_in() -> bool {
    let base = var(env::WANDB_BASE_URL).unwrap_or_else(|| super::DEFAULT_BASE_URL.into());
    api_key(base.trim_end_matches('/')).is_some()
}

/// The host of a URL (`https://api.wandb.ai:443/x` → `api.wandb.ai`).
pub fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

/// The `password` of `machine <host>` in netrc text (tokens separated by any whitespace).
fn netrc_password(text: &str, host: &str) -> Option<String> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let mut i = 0;
    let mut in_machine = false;
    while i < tokens.len() {
        match tokens[i] {
            "machine" => {
                in_machine = tokens.get(i + 1) == Some(&host);
                i += 2;
            }
            "default" => {
                in_machine = false;
                i += 1;
            }
            "password" if in_machine => return tokens.get(i + 1).map(|s| s.to_string()),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_of("https://api.wandb.ai"), Some("api.wandb.ai"));
        assert_eq!(host_of("http://127.0.0.1:8080/base"), Some("127.0.0.1"));
        assert_eq!(host_of("http://u:p@h.example:1/"), Some("h.example"));
    }

    #[test]
    fn netrc_entry_for_the_host() {
        let text = "machine other\n  login user\n  password nope\nmachine api.wandb.ai\n  login user\n  password k3y\n";
        assert_eq!(netrc_password(text, "api.wandb.ai").as_deref(), Some("k3y"));
        assert_eq!(netrc_password(text, "missing"), None);
    }
}
