//! The binary's allocator (`src/main.rs`): mimalloc, with its arenas committed as they are
//! used — the option is set before the first allocation, where setting it in `main` would be
//! too late — unless the operator sets `MIMALLOC_ARENA_EAGER_COMMIT` (issue 11: idle ≤ 20 MB).

use crate::shutdown::{free_port, wait_for_port};
use std::process::Stdio;

/// Resident memory (KiB) of `credbroker serve` once it listens, started with `env`.
async fn listening_rss_kib(env: &[(&str, &str)]) -> u64 {
    let port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_credbroker"))
        .arg("serve")
        .env("CREDBROKER__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("CREDBROKER__TELEMETRY__LOG_FILTER", "warn")
        .envs(env.iter().copied())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(port).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id().unwrap())).unwrap();
    child.kill().await.unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// With eager commit, mimalloc commits (and, with transparent huge pages, backs by 2 MiB pages)
/// its first arena as it reserves it: about 10 MB more resident at rest, measured in release
/// and debug builds alike. Without transparent huge pages the two cost the same, so there is
/// nothing to tell apart.
#[tokio::test]
async fn arenas_are_committed_as_used_unless_the_operator_sets_eager_commit() {
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if thp.is_empty() || thp.contains("[never]") {
        eprintln!("transparent huge pages off ({thp:?}): eager and lazy commit cannot be told apart by RSS");
        return;
    }
    let lazy = listening_rss_kib(&[]).await;
    let eager = listening_rss_kib(&[("MIMALLOC_ARENA_EAGER_COMMIT", "1")]).await;
    assert!(
        eager >= lazy + 4 * 1024,
        "the default must commit lazily ({lazy} KiB resident) and the operator's eager commit must \
         still apply ({eager} KiB)"
    );
}
