//! Timing shared by the throughput benchmarks.

/// CPU seconds used so far by the whole process (every thread).
#[allow(dead_code)] // not every bench uses both clocks
pub fn cpu_seconds() -> f64 {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU seconds used so far by the calling thread: its own cost, whatever else the machine
/// runs (a wall clock on a loaded machine also counts the time the thread was not running).
#[allow(dead_code)]
pub fn thread_cpu_seconds() -> f64 {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn clock(id: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
