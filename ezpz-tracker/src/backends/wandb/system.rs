//! The system fields the original puts in every W&B run's config (`setup_wandb`), in Rust terms.

use serde_json::{json, Map, Value};

use crate::RankInfo;

/// `hostname`, `world_size`, `machine`, `working_directory`, `year`, `month`, `day`, `tstamp`,
/// `jobid`, `scheduler`, `num_nodes`, `ranks_per_node`, `device_type`, `rust_version`,
/// `ezpz_version`, `ezpz_git_sha`. `device_type` is `null` here: the tracker does not know the
/// training device; the caller's configuration (merged over these) can set it.
pub fn system_config(rank: &RankInfo, start_time: f64) -> Map<String, Value> {
    use chrono::{Datelike, TimeZone};
    let micros = (start_time * 1e6) as i64;
    let local = chrono::Local
        .timestamp_micros(micros)
        .single()
        .unwrap_or_else(chrono::Local::now);
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let num_nodes = rank.num_nodes.max(1);
    let fields = json!({
        "hostname": rank.hostname,
        "world_size": rank.world_size,
        "machine": rank.machine,
        "working_directory": cwd,
        "year": local.year(),
        "month": local.month(),
        "day": local.day(),
        "tstamp": local.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        "jobid": rank.job_id,
        "scheduler": rank.scheduler,
        "num_nodes": num_nodes,
        "ranks_per_node": rank.world_size.div_ceil(num_nodes),
        "device_type": Value::Null,
        "rust_version": option_env!("EZPZ_RUSTC_VERSION"),
        "ezpz_version": env!("CARGO_PKG_VERSION"),
        "ezpz_git_sha": option_env!("EZPZ_GIT_SHA"),
    });
    match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_the_originals_fields() {
        let rank = RankInfo::single().with_rank(0, 8);
        let c = system_config(&rank, 1.7e9);
        for k in [
            "hostname",
            "world_size",
            "machine",
            "working_directory",
            "year",
            "month",
            "day",
            "tstamp",
            "jobid",
            "scheduler",
            "num_nodes",
            "ranks_per_node",
            "device_type",
            "rust_version",
            "ezpz_version",
            "ezpz_git_sha",
        ] {
            assert!(c.contains_key(k), "missing {k}");
        }
        assert_eq!(c["world_size"], 8);
        assert_eq!(c["ranks_per_node"], 8);
        assert!(c["rust_version"]
            .as_str()
            .unwrap_or("")
            .starts_with("rustc "));
    }
}
