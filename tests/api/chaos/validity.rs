//! Validity that holds: the fake Passolution revokes the previous access token at
//! once on every refresh, tokens live 6 s, three replicas serve callers that ask various
//! `min_validity`. No header handed out may be revoked within the validity it promised
//! (checked against the fake's revocation time of each token), every promise must cover what
//! was asked, and there must be one upstream refresh per token lifetime — not one per caller
//! or replica. A `min_validity` no fresh token can meet is refused, never redeemed for.

use super::record_line;
use crate::harness::{Fleet, FleetOptions, issue_tokens, secs};
use credbroker::grpc::pb;
use fake_upstream::Operation;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::Code;

const LIFETIME: Duration = Duration::from_secs(6);
const RUN: Duration = Duration::from_secs(20);
const CALLERS_PER_REPLICA: usize = 10;
/// A fresh 6 s token is promised for 6 × (0.75 − 0.05) − 0.5 = 3.7 s at least: 5 and 8 s
/// can never be met.
const ASKS: [i64; 6] = [0, 1, 2, 3, 5, 8];
const NEVER_MET: i64 = 5;

/// One header handed out, and what the caller asked.
struct Handed {
    token: String,
    promised: SystemTime,
    asked_at: SystemTime,
    min_validity: Duration,
}

#[derive(Default)]
struct Outcomes {
    handed: Vec<Handed>,
    refused_never_met: usize,
    other_errors: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_validity_no_header_is_revoked_within_its_promise() {
    let options =
        FleetOptions { env: vec![("CREDBROKER__UPSTREAM__REFRESH_JITTER", "0.05")], ..FleetOptions::new("", true) };
    let fleet = Fleet::start(options).await;
    fleet.fake.knobs().set_passolution_access_lifetime(LIFETIME);
    let (_, _, tokens) = issue_tokens(&fleet.fake, LIFETIME);
    let put = pb::PutCredentialRequest { provider: "passolution".into(), subject: "v".into(), secret: Some(tokens) };
    fleet.replicas[0].admin.clone().put_credential(put).await.unwrap();
    let started = Instant::now();
    let outcomes = callers(&fleet).await;
    let ran = started.elapsed();

    let mut revoked_early = Vec::new();
    for handed in &outcomes.handed {
        let asked_until = handed.asked_at + handed.min_validity;
        assert!(handed.promised >= asked_until, "a promise shorter than min_validity was handed out");
        if let Some(revoked) = fleet.fake.passolution_access_revoked_at(&handed.token) {
            if revoked < handed.promised {
                revoked_early.push(handed.promised.duration_since(revoked).unwrap_or_default());
            }
        }
    }
    let ledger = fleet.fake.ledger();
    let refreshes = ledger.count(|e| e.operation == Operation::RefreshTokenGrant);
    let line = format!(
        "validity: replicas=3 callers={} ran_ms={} headers={} revoked_within_promise={} refused_never_met={} \
         other_errors={} refreshes={} reuses={}\n",
        CALLERS_PER_REPLICA * 3,
        ran.as_millis(),
        outcomes.handed.len(),
        revoked_early.len(),
        outcomes.refused_never_met,
        outcomes.other_errors.len(),
        refreshes,
        ledger.violations().len(),
    );
    record_line(&line);

    assert!(revoked_early.is_empty(), "headers revoked before their promised end, by {revoked_early:?}");
    assert!(ledger.violations().is_empty(), "a refresh token was redeemed twice");
    assert!(outcomes.other_errors.is_empty(), "{:?}", outcomes.other_errors);
    assert!(outcomes.handed.len() > 100, "the callers were served: {}", outcomes.handed.len());
    assert!(outcomes.refused_never_met > 0, "the never-met asks were refused");
    // One refresh per planned renewal: every 75 % ± 5 % of the 6 s life, whoever asks.
    let (fewest, most) = (ran.as_secs_f64() / (0.8 * 6.0), ran.as_secs_f64() / (0.7 * 6.0));
    assert!(
        (fewest.floor() as usize).saturating_sub(1) <= refreshes && refreshes <= most.ceil() as usize + 1,
        "{refreshes} refreshes in {ran:?}: one per lifetime is {fewest:.1}…{most:.1}"
    );
}

/// Callers on every replica for `RUN`, each cycling through the asks.
async fn callers(fleet: &Fleet) -> Outcomes {
    let mut tasks = Vec::new();
    for (r, replica) in fleet.replicas.iter().enumerate() {
        for c in 0..CALLERS_PER_REPLICA {
            let mut client = replica.broker.clone();
            tasks.push(tokio::spawn(async move {
                let mut outcomes = Outcomes::default();
                let end = Instant::now() + RUN;
                for round in (r * CALLERS_PER_REPLICA + c).. {
                    if Instant::now() >= end {
                        break;
                    }
                    let ask = ASKS[round % ASKS.len()];
                    ask_once(&mut client, ask, &mut outcomes).await;
                    // Paced like a real client (a load generator's pacing, not a timing assumption).
                    tokio::time::sleep(Duration::from_millis(100 + 37 * (round as u64 % 6))).await;
                }
                outcomes
            }));
        }
    }
    let mut all = Outcomes::default();
    for task in tasks {
        let outcomes = task.await.unwrap();
        all.handed.extend(outcomes.handed);
        all.refused_never_met += outcomes.refused_never_met;
        all.other_errors.extend(outcomes.other_errors);
    }
    all
}

async fn ask_once(
    client: &mut pb::credential_broker_client::CredentialBrokerClient<tonic::transport::Channel>,
    ask: i64,
    outcomes: &mut Outcomes,
) {
    let request =
        pb::GetAuthorizationRequest { provider: "passolution".into(), subject: "v".into(), min_validity: secs(ask) };
    let mut request = tonic::Request::new(request);
    request.set_timeout(Duration::from_secs(15));
    let asked_at = SystemTime::now();
    match client.get_authorization(request).await {
        Ok(response) => {
            let response = response.into_inner();
            let expires = response.expires_at.expect("Passolution headers expire");
            let promised = UNIX_EPOCH + Duration::new(expires.seconds as u64, expires.nanos as u32);
            let token = response.headers[0].value.trim_start_matches("Bearer ").to_owned();
            outcomes.handed.push(Handed { token, promised, asked_at, min_validity: Duration::from_secs(ask as u64) });
        }
        Err(status) if status.code() == Code::FailedPrecondition && ask >= NEVER_MET => outcomes.refused_never_met += 1,
        Err(status) => outcomes.other_errors.push(format!("asked {ask}s: {:?} {}", status.code(), status.message())),
    }
}
