//! CPU time each party of a benchmark spent, from the kernel's own accounting: the time on a
//! CPU of every thread (`/proc/<pid>/task/*/schedstat`) for running processes, and
//! `RUSAGE_CHILDREN` for a child that ran and was waited for (h2load). Both paths of a
//! comparison share the machine's cores, so where one needs more CPU per request or per byte
//! — and which party needs it — is what explains a ratio.

use std::time::Duration;

/// CPU time so far of `pids`' threads whose name starts with `prefix` ("" for all).
pub fn threads(pids: &[u32], prefix: &str) -> Duration {
    let mut nanos = 0u64;
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        for task in tasks.flatten() {
            let named = std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.starts_with(prefix));
            let schedstat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            // The first field is the time spent on a CPU, in nanoseconds.
            nanos += schedstat.split_whitespace().next().filter(|_| named).and_then(|n| n.parse().ok()).unwrap_or(0);
        }
    }
    Duration::from_nanos(nanos)
}

/// User and system time of every child this process has waited for.
pub fn waited_children() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let micros = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    Duration::from_micros(micros(usage.user_time()) + micros(usage.system_time()))
}
