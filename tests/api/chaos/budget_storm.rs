//! Many credentials expiring together against a token endpoint limited to 300 requests per
//! minute (scaled to 30 per 6 s to keep the run short): the fleet's shared budget (240/min)
//! spreads the refreshes so the provider never answers 429, and every caller is served.

use super::record_line;
use crate::harness::{Fleet, FleetOptions, issue_aged_tokens, secs};
use credbroker::grpc::pb;
use fake_upstream::{Operation, Outcome};
use std::time::{Duration, Instant};

pub struct StormReport {
    pub credentials: usize,
    pub refreshes: usize,
    pub rate_limited: usize,
    pub reuses: usize,
    pub served: usize,
    pub callers: usize,
    pub all_served_after: Duration,
}

pub async fn run(credentials: usize) -> StormReport {
    let fleet = Fleet::start(FleetOptions::new("", true)).await;
    fleet.fake.knobs().update(|c| {
        c.passolution_rate_limit = 30;
        c.passolution_rate_window = Duration::from_secs(6);
    });
    // Issued together, 41 s into a 60 s life: all are due for their planned renewal (at 75 %,
    // 45 s) together, a few seconds from now, after they are all stored.
    let issued: Vec<_> = (0..credentials)
        .map(|_| issue_aged_tokens(&fleet.fake, Duration::from_secs(60), Duration::from_secs(41)).2)
        .collect();
    for (i, tokens) in issued.into_iter().enumerate() {
        let put = pb::PutCredentialRequest {
            provider: "passolution".into(),
            subject: format!("storm-{i}"),
            secret: Some(tokens),
        };
        fleet.replicas[i % 3].admin.clone().put_credential(put).await.unwrap();
    }
    // The ledger is not reset here: on a loaded machine the first credentials can come due
    // (and be refreshed) before the last is stored, and those refreshes count too.
    let started = Instant::now();
    let mut callers = Vec::new();
    for i in 0..credentials {
        for replica in &fleet.replicas {
            let mut client = replica.broker.clone();
            callers.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(40);
                while Instant::now() < deadline {
                    let request = pb::GetAuthorizationRequest {
                        provider: "passolution".into(),
                        subject: format!("storm-{i}"),
                        min_validity: secs(20),
                    };
                    if client.get_authorization(request).await.is_ok() {
                        return Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                None
            }));
        }
    }
    let (mut served, mut last) = (0, started);
    let total = callers.len();
    for caller in callers {
        if let Some(at) = caller.await.unwrap() {
            served += 1;
            last = last.max(at);
        }
    }
    let ledger = fleet.fake.ledger();
    StormReport {
        credentials,
        refreshes: ledger.count(|e| e.operation == Operation::RefreshTokenGrant && e.outcome == Outcome::Issued),
        rate_limited: ledger.count(|e| matches!(e.outcome, Outcome::Refused { status: 429, .. })),
        reuses: ledger.violations().len(),
        served,
        callers: total,
        all_served_after: last - started,
    }
}

/// Many credentials expiring at once against a rate-limited token endpoint: spread by the
/// fleet's budget, never rate-limited, nobody dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_many_credentials_expiring_together_stay_under_the_rate_limit() {
    let report = run(40).await;
    record_line(&format!(
        "budget storm: credentials={} refreshes={} rate_limited={} reuses={} served={}/{} all_served_after_ms={}\n",
        report.credentials,
        report.refreshes,
        report.rate_limited,
        report.reuses,
        report.served,
        report.callers,
        report.all_served_after.as_millis()
    ));
    assert_eq!(report.rate_limited, 0, "the provider never had to say 429");
    assert_eq!(report.reuses, 0);
    assert_eq!(report.refreshes, report.credentials, "one refresh per credential, fleet-wide");
    assert_eq!(report.served, report.callers, "a burst is spread, not dropped");
}
