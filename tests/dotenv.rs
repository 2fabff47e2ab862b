//! Credentials files never override the job's own environment, and only the working
//! directory's `.env` is read: a `.env` in a shared parent directory (a project or scratch
//! directory others can write) cannot redirect the tracking URI or switch TLS checks off
//! while the token is attached.
//!
//! One test in its own binary: it changes the working directory and the environment.

use ezpz_tracker::env::load_dotenv;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[test]
fn dotenv_files_never_override_and_parents_are_not_read() {
    let root = tempfile::tempdir().unwrap();
    let parent = root.path();
    let cwd = parent.join("job");
    std::fs::create_dir_all(&cwd).unwrap();
    // A shared parent directory: everything in it must be ignored.
    std::fs::write(
        parent.join(".env"),
        "MLFLOW_TRACKING_URI=http://attacker.example\n\
         MLFLOW_TRACKING_INSECURE_TLS=true\n\
         EZPZ_DOTENV_FROM_PARENT=1\n",
    )
    .unwrap();
    // The job's own `.env`: fills in what is missing, overrides nothing.
    std::fs::write(
        cwd.join(".env"),
        "MLFLOW_TRACKING_TOKEN=from-dotenv\nEZPZ_DOTENV_FROM_CWD=1\n",
    )
    .unwrap();
    let home = parent.join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".amsc.env"),
        "MLFLOW_TRACKING_TOKEN=from-amsc\nAMSC_API_KEY=amsc-key\nEZPZ_DOTENV_FROM_CWD=2\n",
    )
    .unwrap();

    std::env::set_current_dir(&cwd).unwrap();
    std::env::set_var("HOME", &home);
    std::env::set_var("MLFLOW_TRACKING_URI", "http://tracking.internal:5000");
    std::env::set_var("MLFLOW_TRACKING_TOKEN", "exported-token");
    std::env::remove_var("MLFLOW_TRACKING_INSECURE_TLS");
    std::env::remove_var("AMSC_API_KEY");
    std::env::remove_var("EZPZ_DOTENV_FROM_PARENT");
    std::env::remove_var("EZPZ_DOTENV_FROM_CWD");
    load_dotenv();

    assert_eq!(
        var("MLFLOW_TRACKING_URI").as_deref(),
        Some("http://tracking.internal:5000")
    );
    assert_eq!(
        var("MLFLOW_TRACKING_TOKEN").as_deref(),
        Some("exported-token")
    );
    assert_eq!(var("MLFLOW_TRACKING_INSECURE_TLS"), None);
    assert_eq!(var("EZPZ_DOTENV_FROM_PARENT"), None);
    // The working directory's `.env` first, then `~/.amsc.env`, each only for what is unset.
    assert_eq!(var("EZPZ_DOTENV_FROM_CWD").as_deref(), Some("1"));
    assert_eq!(var("AMSC_API_KEY").as_deref(), Some("amsc-key"));
}
