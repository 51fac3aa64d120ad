//! Cross-replica cache coherence through the real change feed (Redis pub/sub between three
//! real processes): a header cached on every replica stops being served everywhere once the
//! credential is replaced or deleted on one of them. The cache's own freshness bound is set to
//! ten minutes here, so only the feed can make the other replicas let go within the test.

use crate::harness::{Fleet, FleetOptions, eventually, issue_tokens, secs};
use credbroker::grpc::pb;
use std::time::{Duration, Instant};
use tonic::Code;

const SUBJECT: &str = "coherence";
/// Far more than the feed needs (milliseconds), far less than the cache's ten minutes.
const BOUND: Duration = Duration::from_secs(15);

async fn header(fleet: &Fleet, replica: usize) -> Result<String, Code> {
    let request =
        pb::GetAuthorizationRequest { provider: "passolution".into(), subject: SUBJECT.into(), min_validity: secs(0) };
    match fleet.replicas[replica].broker.clone().get_authorization(request).await {
        Ok(answer) => Ok(answer.into_inner().headers.into_iter().map(|h| h.value).collect::<Vec<_>>().join(",")),
        Err(status) => Err(status.code()),
    }
}

/// Polls every replica but the first until `done` holds for all of them; returns how long it
/// took, or panics with what each one still answered after `BOUND`.
async fn until_all(fleet: &Fleet, what: &str, done: impl Fn(&Result<String, Code>) -> bool) -> Duration {
    let started = Instant::now();
    let answers = || async {
        let mut answers = Vec::new();
        for replica in 1..fleet.replicas.len() {
            answers.push(header(fleet, replica).await);
        }
        // What each replica answered, without the header itself.
        let seen: Vec<_> =
            answers.iter().map(|a| a.clone().map(|h| format!("a header of {} bytes", h.len()))).collect();
        if answers.iter().all(&done) { Ok(()) } else { Err(seen) }
    };
    eventually(what, BOUND, answers).await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coherence_replace_and_delete_on_one_replica_reach_the_others_caches() {
    let mut options = FleetOptions::new("", true);
    options.env.push(("CREDBROKER__CACHE__TTL", "10m"));
    let fleet = Fleet::start(options).await;
    let admin = fleet.replicas[0].admin.clone();

    let (first_access, _, tokens) = issue_tokens(&fleet.fake, Duration::from_secs(3600));
    let put =
        pb::PutCredentialRequest { provider: "passolution".into(), subject: SUBJECT.into(), secret: Some(tokens) };
    admin.clone().put_credential(put).await.unwrap();
    for replica in 0..3 {
        let served = header(&fleet, replica).await.unwrap();
        assert!(served.contains(&first_access), "replica {replica} serves the stored token");
    }

    let (second_access, _, tokens) = issue_tokens(&fleet.fake, Duration::from_secs(3600));
    let put =
        pb::PutCredentialRequest { provider: "passolution".into(), subject: SUBJECT.into(), secret: Some(tokens) };
    admin.clone().put_credential(put).await.unwrap();
    let replaced = until_all(&fleet, "every replica serves the replacement", |a| {
        a.as_ref().is_ok_and(|h| h.contains(&second_access))
    })
    .await;

    let reference = pb::CredentialRef { provider: "passolution".into(), subject: SUBJECT.into() };
    admin.clone().delete_credential(reference).await.unwrap();
    let deleted = until_all(&fleet, "every replica knows of the deletion", |a| a == &Err(Code::NotFound)).await;
    println!("coherence: replaced seen everywhere after {replaced:?}, deletion after {deleted:?}");
}
