//! Records the compiler version and the source's git commit for run metadata (the W&B
//! backend's `rust_version` and `ezpz_git_sha` config fields). Both are optional: a build
//! outside a git checkout, or with an odd `rustc`, simply leaves them out.

use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    if let Some(v) = run(&rustc, &["--version"]) {
        println!("cargo:rustc-env=EZPZ_RUSTC_VERSION={v}");
    }
    if let Some(sha) = run("git", &["rev-parse", "HEAD"]) {
        println!("cargo:rustc-env=EZPZ_GIT_SHA={sha}");
        // Rebuild when the checkout moves to another commit.
        if let Some(head) = run("git", &["rev-parse", "--git-path", "HEAD"]) {
            println!("cargo:rerun-if-changed={head}");
        }
    }
}
