//! Redis failover under a refresh: one primary, one replica and three sentinels (real
//! processes on loopback), three credbroker replicas finding the master through Sentinel
//! (`redis+sentinel://…`). The primary is SIGKILLed right after RESERVE or right after
//! COMMIT; Sentinel promotes the replica; callers keep asking. With
//! `store.journal_replicas = 1` no refresh token may be redeemed twice and nothing may be
//! lost silently. With 0, and a replica that lags (SIGSTOPped across the refresh, as a slow
//! or partitioned replica would), the promoted replica has neither the reservation nor the
//! commit: the scenario shows the loss docs/redis.md's topology table describes. The killed primary is
//! restarted after the failover (Sentinel makes it a replica): until then the new primary has
//! no replica, and `journal_replicas = 1` rightly refuses every reservation.

use super::report::{Ended, Report, report, stored_refresh_token_at};
use super::scenario::{SUBJECT, collect, leak, settle, spawn_callers};
use super::{record, runs};
use crate::harness::{Fleet, FleetOptions, MASTER, RedisNode, eventually, issue_aged_tokens};
use credbroker::grpc::pb;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// Longer-lived tokens than the other scenarios': a failover, the old primary's return and a
/// fence take seconds, and the probe must still find the old access token within its life.
/// Imported 1 s before its planned renewal (75 %), 31 s left.
const TOKEN_LIFETIME: Duration = Duration::from_secs(120);
const AGE_AT_IMPORT: Duration = Duration::from_secs(89);

/// Where the primary is killed.
#[derive(Debug, Clone, Copy)]
pub enum KillAt {
    AfterReserve,
    AfterCommit,
}

impl KillAt {
    fn point(self) -> &'static str {
        match self {
            Self::AfterReserve => "after_reserve",
            Self::AfterCommit => "after_commit",
        }
    }
}

/// One primary, one replica, three sentinels that know each other and the replica.
struct Topology {
    primary: RedisNode,
    replica: RedisNode,
    sentinels: Vec<RedisNode>,
}

impl Topology {
    /// `lagging`: the primary drops a silent replica after 1 s (`repl-timeout`), so writes
    /// made while the replica is stopped never reach it — not even its socket buffer.
    async fn start(lagging: bool) -> Self {
        let primary = RedisNode::data_with(None, if lagging { &["--repl-timeout", "1"] } else { &[] }).await;
        let replica = RedisNode::data(Some(primary.port)).await;
        replica.wait_until_in_sync().await;
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(RedisNode::sentinel(primary.port).await);
        }
        let topology = Self { primary, replica, sentinels };
        topology.wait_until_sentinels_agree().await;
        topology
    }

    /// A failover needs a quorum of sentinels that have found each other (hello messages,
    /// every 2 s) and the replica.
    async fn wait_until_sentinels_agree(&self) {
        for sentinel in &self.sentinels {
            let agrees = || async {
                let mut conn = sentinel.connection().await;
                let peers: Vec<redis::Value> =
                    redis::cmd("SENTINEL").arg("SENTINELS").arg(MASTER).query_async(&mut conn).await.unwrap();
                let replicas: Vec<redis::Value> =
                    redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER).query_async(&mut conn).await.unwrap();
                peers.len() == 2 && replicas.len() == 1
            };
            eventually("the sentinels find each other and the replica", Duration::from_secs(20), agrees).await;
        }
    }

    /// Until every sentinel names `port` as the master (the new configuration spreads by
    /// hello messages), so the old primary, restarted, is turned into a replica by all.
    async fn wait_until_sentinels_name(&self, port: u16) {
        for sentinel in &self.sentinels {
            let names = || async {
                let mut conn = sentinel.connection().await;
                let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(MASTER)
                    .query_async(&mut conn)
                    .await
                    .ok()
                    .flatten();
                if addr.as_ref().is_some_and(|(_, p)| *p == port) { Ok(()) } else { Err(addr) }
            };
            let what = format!("sentinel {} learns the new master", sentinel.port);
            eventually(&what, Duration::from_secs(20), names).await;
        }
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }
}

/// One failover run; `lagging`: the replica is stopped from before the refresh until the
/// primary is gone, so it has none of the refresh's writes.
pub async fn run(kill_at: KillAt, journal_replicas: u32, lagging: bool) -> Report {
    let mut topology = Topology::start(lagging).await;
    let env = vec![
        ("CREDBROKER__STORE__REDIS_URL", leak(topology.url())),
        ("CREDBROKER__STORE__JOURNAL_REPLICAS", leak(journal_replicas.to_string())),
        ("CREDBROKER__STORE__JOURNAL_WAIT_TIMEOUT", "500ms"),
    ];
    let options = FleetOptions { env, ..FleetOptions::new(leak(format!("{}=400", kill_at.point())), true) };
    let mut fleet = Fleet::start(options).await;
    // A lagging replica is stopped and dropped (a few seconds) before the refresh: the
    // planned renewal is put off by as much, so the callers' need starts it.
    let age = if lagging { AGE_AT_IMPORT - Duration::from_secs(6) } else { AGE_AT_IMPORT };
    let (_, first_refresh, tokens) = issue_aged_tokens(&fleet.fake, TOKEN_LIFETIME, age);
    fleet.fake.knobs().set_passolution_access_lifetime(TOKEN_LIFETIME);
    let put =
        pb::PutCredentialRequest { provider: "passolution".into(), subject: SUBJECT.into(), secret: Some(tokens) };
    fleet.replicas[0].admin.clone().put_credential(put).await.unwrap();
    if lagging {
        topology.replica.signal(Signal::SIGSTOP);
        topology.primary.wait_until_alone().await;
    }
    let started = Instant::now();
    let callers = spawn_callers(&fleet, None);
    let callers_count = callers.len();
    let name = format!("{}-{journal_replicas}-{lagging}", kill_at.point());
    let needle = format!("\"chaos_point\":\"{}\"", kill_at.point());
    let Some(holder) = fleet.first_to_log(&needle, Duration::from_secs(15)).await else {
        keep_logs(&name, &fleet.logs());
        panic!("no replica reached chaos point {}", kill_at.point());
    };
    topology.primary.kill().await;
    topology.replica.signal(Signal::SIGCONT);
    topology.replica.wait_until_master(Duration::from_secs(20)).await;
    topology.wait_until_sentinels_name(topology.replica.port).await;
    // The old primary is restarted, as a supervisor would; Sentinel makes it the new
    // primary's replica, so `journal_replicas = 1` can be met again.
    topology.primary.restart().await;
    let (served, last_served) = collect(callers).await;
    // A replica with an empty cache reads only what the promoted node has (not the holder:
    // its log tells what it did).
    let mut logs = fleet.logs();
    fleet.restart_replica((holder + 1) % 3, |serve| serve).await;
    let (final_state, versions_grew, served_at_end) = settle(&fleet, None).await;
    let stored = stored_refresh_token_at(&topology.replica.url()).await;
    logs.push('\n');
    logs.push_str(&fleet.logs());
    keep_logs(&name, &logs);
    let ended = Ended {
        callers: callers_count,
        served,
        last_served,
        final_state,
        versions_grew,
        clean_exit: None,
        served_at_end,
    };
    report(&fleet, &first_refresh, stored, &logs, started, ended)
}

/// Keeps the run's logs for reading after a failure.
fn keep_logs(name: &str, logs: &str) {
    std::fs::write(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("failover-{name}.log")), logs)
        .unwrap();
}

/// Sentinel failover with `store.journal_replicas = 1`: the primary killed right after a
/// RESERVE or a COMMIT that a replica acknowledged; the promoted replica has it.
async fn failover_safe(name: &str, kill_at: KillAt) {
    for _ in 0..runs() {
        let report = run(kill_at, 1, false).await;
        record(name, &report);
        assert_eq!(report.reuses, 0, "{name}: a refresh token was redeemed twice: {report:?}");
        assert_eq!(report.lost_silently, 0, "{name}: the newest refresh token was lost without a flag: {report:?}");
        assert!(report.versions_grew, "{name}: a version went backwards: {report:?}");
        assert_eq!(report.secrets_in_logs, 0, "{name}: a secret reached a log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_failover_kills_the_primary_after_reserve() {
    failover_safe("failover: primary killed after_reserve, journal_replicas=1", KillAt::AfterReserve).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_failover_kills_the_primary_after_commit() {
    failover_safe("failover: primary killed after_commit, journal_replicas=1", KillAt::AfterCommit).await;
}

/// The same failover with `journal_replicas = 0` and a replica that lagged through the
/// refresh: the promoted replica never saw the RESERVE nor the COMMIT, so it holds the
/// refresh token that was already redeemed, as if current, with no flag — lost silently, and
/// the next renewal sends it again (a reuse, if it comes within the run). The loss docs/redis.md's topology
/// table describes for asynchronous replication; this run shows it (proof that the scenario
/// can fail), it is not a property of the broker with `journal_replicas ≥ 1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_failover_without_journal_replicas_shows_the_loss() {
    let report = run(KillAt::AfterCommit, 0, true).await;
    record("NEGATIVE CONTROL failover: primary killed after_commit, journal_replicas=0, lagging replica", &report);
    assert!(report.reuses + report.lost_silently > 0, "a lagging replica promoted must lose the journal: {report:?}");
}
