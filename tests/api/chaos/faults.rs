//! One test per fault of the table (docs/chaos.md): a pause or a kill of the replica holding
//! the refresh at each step, the provider losing or never processing the refresh, Redis
//! restarted mid-refresh; and the negative control that shows the suite can fail.

use super::scenario::{Fault, run};
use super::table::scenario;
use super::{record, runs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_herd_over_three_replicas_makes_one_refresh() {
    for report in scenario("herd").await {
        assert_eq!(report.refreshes, 1, "{report:?}");
        assert_eq!(report.served, report.callers, "every caller is served: {report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sigstop_holder_after_lease() {
    scenario("sigstop after_lease").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sigstop_holder_after_reserve() {
    scenario("sigstop after_reserve").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sigstop_holder_while_sending() {
    scenario("sigstop sending").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kill_holder_after_lease() {
    scenario("kill after_lease").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kill_holder_after_reserve() {
    scenario("kill after_reserve").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kill_holder_while_sending() {
    scenario("kill sending").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_provider_commits_then_drops_the_reply() {
    scenario("commit then drop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_provider_hangs() {
    scenario("provider hangs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_redis_restarted_mid_refresh() {
    scenario("redis restart").await;
}

/// The negative control: with the journal switched off (a lease-only design), the same pause
/// must make the suite catch a refresh token redeemed twice — proof that it can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_negative_control_catches_reuse_without_the_journal() {
    let mut caught = 0;
    for _ in 0..runs() {
        let report = run(Fault::Stop("after_reserve"), false).await;
        record("NEGATIVE CONTROL (journal off) sigstop after_reserve", &report);
        caught += usize::from(report.reuses > 0);
    }
    assert_eq!(caught, runs(), "without the journal, every run must show a reuse");
}
