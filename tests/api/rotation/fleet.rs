//! The procedure of `docs/key-rotation.md` on three real `credbroker` processes and one real
//! `redis-server`: every step a rolling restart with that step's configuration file, and
//! after every single restart (mixed fleets included) the fleet is checked: every credential
//! is served by every replica, BRO fingerprints are the ones handed out before the rotation
//! began, and a `ReportRejected` on each replica of a header fetched from each other replica
//! renews it (checked on fresh Passolution credentials, one per report).

use super::support::{NEW_ID, NEW_KEY, Step, bro_code, pin, run, run_paced, sealed_with};
use crate::harness::{Fleet, FleetOptions, Serve, TEST_KEY, bro_token, eventually, issue_tokens};
use credbroker::grpc::pb::{self, RewrapProblemKind};
use std::collections::BTreeMap;
use std::time::Duration;
use tonic::Code;

const BRO: usize = 4;
/// Passolution credentials: each cross-replica report uses a fresh one.
const OAUTH: usize = 130;

struct Rotation {
    fleet: Fleet,
    dir: tempfile::TempDir,
    /// BRO subject → the fingerprint handed out before the rotation began.
    fingerprints: BTreeMap<String, String>,
    /// Passolution subjects not yet used for a report.
    fresh: Vec<String>,
    reports: usize,
}

fn get(provider: &str, subject: &str) -> pb::GetAuthorizationRequest {
    pb::GetAuthorizationRequest { provider: provider.into(), subject: subject.into(), min_validity: None }
}

fn oauth_subject(i: usize) -> String {
    format!("user-{i:03}")
}

impl Rotation {
    async fn start() -> Self {
        let fleet = Fleet::start(FleetOptions::new("", true)).await;
        // Hour-long access tokens: nothing renews by itself during the test, so a changed
        // header is the work of a report.
        fleet.fake.knobs().set_passolution_access_lifetime(Duration::from_secs(3600));
        let admin = fleet.replicas[0].admin.clone();
        for i in 0..BRO {
            let put = pb::PutCredentialRequest {
                provider: "bro".into(),
                subject: format!("org-{i}"),
                secret: Some(bro_token(&format!("user|{i}"), &bro_code(i))),
            };
            admin.clone().put_credential(put).await.unwrap();
        }
        for i in 0..OAUTH {
            let (_, _, tokens) = issue_tokens(&fleet.fake, Duration::from_secs(3600));
            let put = pb::PutCredentialRequest {
                provider: "passolution".into(),
                subject: oauth_subject(i),
                secret: Some(tokens),
            };
            admin.clone().put_credential(put).await.unwrap();
        }
        let mut fingerprints = BTreeMap::new();
        for i in 0..BRO {
            let served = fleet.replicas[0].broker.clone().get_authorization(get("bro", &format!("org-{i}"))).await;
            fingerprints.insert(format!("org-{i}"), served.unwrap().into_inner().token_fingerprint);
        }
        let fresh = (0..OAUTH).rev().map(oauth_subject).collect();
        Self { fleet, dir: tempfile::tempdir().unwrap(), fingerprints, fresh, reports: 0 }
    }

    /// Restarts replica `index` with `step`'s configuration file.
    async fn restart(&mut self, index: usize, step: Step) {
        let path = step.config_file(self.dir.path());
        self.fleet
            .restart_replica(index, |serve| serve.env_remove("CREDBROKER__ENCRYPTION__KEY").config_file(path))
            .await;
    }

    /// A rolling restart into `step`, the fleet checked after each replica.
    async fn roll(&mut self, step: Step) {
        for index in 0..3 {
            self.restart(index, step).await;
            self.check(&format!("{step:?}, {} of 3 replicas restarted", index + 1)).await;
        }
    }

    async fn check(&mut self, context: &str) {
        self.servable(context).await;
        for from in 0..3 {
            for to in (0..3).filter(|to| *to != from) {
                self.report_renews(from, to, context).await;
            }
        }
    }

    /// Every credential is served by every replica; BRO fingerprints never changed; equal
    /// headers have equal fingerprints whichever replica serves them.
    async fn servable(&self, context: &str) {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (index, replica) in self.fleet.replicas.iter().enumerate() {
            let bro = (0..BRO).map(|i| ("bro", format!("org-{i}")));
            for (provider, subject) in bro.chain((0..OAUTH).map(|i| ("passolution", oauth_subject(i)))) {
                let answer = replica.broker.clone().get_authorization(get(provider, &subject)).await;
                let answer =
                    answer.unwrap_or_else(|e| panic!("{context}: replica {index}, {provider}/{subject}: {e:?}"));
                let answer = answer.into_inner();
                if let Some(before) = self.fingerprints.get(&subject) {
                    assert_eq!(&answer.token_fingerprint, before, "{context}: replica {index}, {subject}");
                }
                let fingerprint =
                    seen.entry(answer.headers[0].value.clone()).or_insert(answer.token_fingerprint.clone());
                assert_eq!(*fingerprint, answer.token_fingerprint, "{context}: replica {index}, {subject}");
            }
        }
    }

    /// A header fetched from replica `from`, reported on replica `to`, is renewed.
    async fn report_renews(&mut self, from: usize, to: usize, context: &str) {
        let subject = self.fresh.pop().expect("enough fresh credentials for every report");
        self.reports += 1;
        let fetched = self.fleet.replicas[from].broker.clone().get_authorization(get("passolution", &subject)).await;
        let fetched = fetched.unwrap().into_inner();
        let report = pb::ReportRejectedRequest {
            provider: "passolution".into(),
            subject: subject.clone(),
            token_fingerprint: fetched.token_fingerprint.clone(),
        };
        // Reported until renewed: a report may be turned away while the header is very young
        // (a limit on renewals), never when its fingerprint matches once that is over.
        let renewed = || async {
            let mut to_replica = self.fleet.replicas[to].broker.clone();
            let _ = to_replica.report_rejected(report.clone()).await;
            let now = to_replica.get_authorization(get("passolution", &subject)).await.unwrap().into_inner();
            (now.headers != fetched.headers).then_some(now)
        };
        let what =
            format!("{context}: a ReportRejected on replica {to} of the header replica {from} handed out renews it");
        let now = eventually(&what, Duration::from_secs(15), renewed).await;
        assert_ne!(now.token_fingerprint, fetched.token_fingerprint);
    }

    /// How many stored records are sealed with key `id` (the fleet has its Redis to itself).
    async fn sealed_with(&self, id: &str) -> usize {
        sealed_with(&self.fleet.redis.url(), "*").await.iter().filter(|(_, key)| key == id).count()
    }

    /// Step 4 done too early on replica 2: records still sealed with the old key answer
    /// INTERNAL there, with a log line naming the cause, and a rewrap run there reports them
    /// and writes nothing. Then replica 2 goes back to step 2's configuration.
    async fn premature_removal(&mut self) {
        let stale = self.sealed_with("primary").await;
        assert!(stale >= BRO, "the BRO tokens are still sealed with the old key");
        self.restart(2, Step::NewOnly).await;
        let refused = self.fleet.replicas[2].broker.clone().get_authorization(get("bro", "org-0")).await.unwrap_err();
        assert_eq!(
            (refused.code(), refused.message()),
            (Code::Internal, "stored credential bro/org-0 cannot be opened")
        );
        let logged = "sealed with key id \\\"primary\\\", which this replica does not have";
        let said =
            || async { self.fleet.replicas[2].lines().iter().any(|l| l.contains("bro/org-0") && l.contains(logged)) };
        eventually("a log line says why bro/org-0 cannot be opened", Duration::from_secs(10), said).await;

        let report = run(&self.fleet.replicas[2].admin, 1000, NEW_ID).await;
        assert_eq!((report.unreadable as usize, report.rewrapped), (stale, 0), "{report:?}");
        assert!(report.problems.iter().all(|p| p.kind() == RewrapProblemKind::Unreadable));
        assert_eq!(self.sealed_with("primary").await, stale, "nothing written");
        self.restart(2, Step::BothNewActive).await;
        self.check("replica 2 back on step 2").await;
    }

    /// Step 3: a paced run on replica 0 while reports keep being made on the other two; then
    /// passes until one finds every record current.
    async fn rewrap(&mut self) {
        let admin = self.fleet.replicas[0].admin.clone();
        let started = tokio::spawn(async move { run_paced(&admin, 7, 50, NEW_ID).await });
        let mut rounds = 0;
        // Keep what the last rolling restart's checks need (3 × 6 reports).
        while rounds == 0 || (!started.is_finished() && self.fresh.len() > 3 * 6 + 2) {
            self.report_renews(1, 2, "during the rewrap").await;
            self.report_renews(2, 1, "during the rewrap").await;
            rounds += 1;
        }
        let first = started.await.unwrap();
        let total = (BRO + OAUTH) as u64;
        assert_eq!((first.seen, first.unreadable, first.active_key.as_str()), (total, 0, NEW_ID), "{first:?}");
        assert!(first.rewrapped > 0);
        for pass in 0.. {
            let report = run(&self.fleet.replicas[1].admin, 50, NEW_ID).await;
            if (report.seen, report.already_current) == (total, total) {
                break;
            }
            assert!(pass < 5, "passes keep finding work: {report:?}");
        }
        assert_eq!(self.sealed_with("primary").await, 0);
        assert_eq!(self.sealed_with(NEW_ID).await, BRO + OAUTH);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_across_three_replicas_keeps_every_credential_and_every_report_working() {
    let mut rotation = Rotation::start().await;
    rotation.check("before the rotation").await;
    rotation.roll(Step::Pinned).await;
    rotation.roll(Step::BothOldActive).await;
    // A rewrap started now reaches replicas that still seal with the old key: refused.
    let early = pb::RewrapRequest { expect_active_key: NEW_ID.into(), ..Default::default() };
    let refused = rotation.fleet.replicas[0].admin.clone().rewrap(early).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    rotation.roll(Step::BothNewActive).await;
    rotation.premature_removal().await;
    rotation.rewrap().await;
    rotation.roll(Step::NewOnly).await;

    let ledger = rotation.fleet.fake.ledger();
    assert_eq!(ledger.violations().len(), 0, "no refresh token was sent twice");
    let renewals = ledger.count(|e| e.operation == fake_upstream::Operation::RefreshTokenGrant);
    assert_eq!(renewals, rotation.reports, "one renewal per report, none otherwise");
    let logs = rotation.fleet.logs();
    let tokens = ledger.entries().into_iter().flat_map(|e| [e.presented_token, e.issued_token]).flatten();
    for secret in tokens.chain([TEST_KEY, NEW_KEY, pin()].map(String::from)) {
        assert!(!logs.contains(&secret), "a secret reached a log");
    }
}

/// Two keys and no fingerprint key: fingerprints would change with the active key, so the
/// replica refuses to start, exit code 78, naming the setting.
#[tokio::test]
async fn key_rotation_refuses_two_keys_without_a_fingerprint_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = Step::TwoKeysUnpinned.config_file(dir.path());
    let (status, stderr) = Serve::new().config_file(&path).fails().await;
    assert_eq!(status.code(), Some(78));
    assert!(stderr.contains("encryption.fingerprint_key: required with several encryption keys"), "{stderr}");
}
