//! The binary's allocator (`src/main.rs`): mimalloc, with its arenas committed as they are
//! used — mimalloc's compile-time default set in `.cargo/config.toml`, no code before `main` —
//! unless the operator sets `MIMALLOC_ARENA_EAGER_COMMIT` (the idle-memory goal: ≤ 20 MB).
//!
//! Read from mimalloc's own statistics (`MIMALLOC_SHOW_STATS=1`, printed to stderr at exit),
//! not from RSS: how much of an eagerly committed arena becomes resident depends on
//! transparent huge pages and on the machine's load, the number of commit calls does not. An
//! eagerly committed arena is committed whole when it is reserved (no commit calls after);
//! a lazy one commits as pages are first used.

use crate::harness::Serve;

/// The `commits` count mimalloc reports when `credbroker serve`, started with `env`, stops.
async fn commits_at_exit(env: &[(&str, &str)]) -> u64 {
    let serve = Serve::new().env("CREDBROKER__TELEMETRY__LOG_FILTER", "warn").env("MIMALLOC_SHOW_STATS", "1");
    let (status, stderr) = serve.envs(env).capture_logs().start().await.finish().await;
    assert!(status.success(), "{status:?}: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("commits"))
        .unwrap_or_else(|| panic!("mimalloc printed no statistics (is it still the binary's allocator?):\n{stderr}"));
    line.split(':').nth(1).and_then(|n| n.trim().parse().ok()).unwrap_or_else(|| panic!("unreadable: {line}"))
}

#[tokio::test]
async fn arenas_are_committed_as_used_unless_the_operator_sets_eager_commit() {
    let lazy = commits_at_exit(&[]).await;
    assert!(lazy > 0, "by default the arena must be committed as it is used (commits: {lazy})");
    let eager = commits_at_exit(&[("MIMALLOC_ARENA_EAGER_COMMIT", "1")]).await;
    assert_eq!(eager, 0, "the operator's MIMALLOC_ARENA_EAGER_COMMIT=1 must still apply");
}
