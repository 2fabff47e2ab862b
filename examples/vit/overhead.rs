//! What tracking costs in CPU time: ezpz's own threads (named `ezpz-…`) plus ezpz's hooks on
//! burn's threads (`ezpz_burn::hook_cpu_time`), as a share of the process's CPU time. Unlike
//! images/s, a CPU-time share barely moves on a machine whose other load comes and goes.

/// CPU seconds, measured once training has ended (before the tracker finishes).
#[derive(Debug, Clone, Copy)]
pub struct Overhead {
    /// The threads named `ezpz-…` (backend workers, hand-off, aggregation).
    pub ezpz_threads: f64,
    /// ezpz's renderer on burn's event thread and the watch on the training thread.
    pub hooks: f64,
    /// The whole process so far.
    pub process: f64,
}

/// `/proc` reports CPU times in clock ticks of `USER_HZ`, 100 on every Linux ABI.
const TICKS_PER_SEC: f64 = 100.0;

/// utime + stime of a `/proc/…/stat` line, in seconds (the fields after the `(comm)`).
fn cpu_seconds(stat: &str) -> Option<f64> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Field 14 (utime) and 15 (stime) of proc(5); field 3 is the first after `(comm)`.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

impl Overhead {
    /// Now; `None` where `/proc` is not there.
    pub fn measure() -> Option<Overhead> {
        let process = cpu_seconds(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        let mut ezpz_threads = 0.0;
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let path = task.path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if name.starts_with("ezpz-") {
                let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
                ezpz_threads += cpu_seconds(&stat).unwrap_or(0.0);
            }
        }
        Some(Overhead {
            ezpz_threads,
            hooks: ezpz_burn::hook_cpu_time().as_secs_f64(),
            process,
        })
    }

    /// ezpz's share of the process's CPU time, in percent.
    pub fn percent(&self) -> f64 {
        if self.process > 0.0 {
            100.0 * (self.ezpz_threads + self.hooks) / self.process
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_a_name_with_spaces() {
        let stat = "42 (ezpz-csv (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert!(Overhead::measure().is_none_or(|o| o.process >= 0.0));
    }
}
