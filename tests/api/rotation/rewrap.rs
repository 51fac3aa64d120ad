//! `CredentialAdmin/Rewrap` through gRPC, on a real Redis shared by in-process replicas that
//! run the configurations of the rotation's steps.

use super::support::{NEW_ID, Step, bro_code, cursor, replica, request, run, sealed_with};
use crate::harness::{Broker, TestBroker, TestRedis, bro_token, only_header, random_prefix};
use credbroker::grpc::pb::{self, CredentialState, RewrapProblemKind, put_credential_request::Secret as PutSecret};
use std::collections::BTreeMap;
use tonic::Code;

/// Stored: five BRO tokens and three PASS client numbers, written with the old key.
async fn seed(app: &TestBroker) -> Vec<(&'static str, String)> {
    let mut credentials = Vec::new();
    for i in 0..5 {
        app.put("bro", &format!("org-{i}"), bro_token(&format!("user|{i}"), &bro_code(i))).await.unwrap();
        credentials.push(("bro", format!("org-{i}")));
    }
    for i in 0..3 {
        app.put("pass", &format!("client-{i}"), PutSecret::ClientNumber(format!("10000{i}"))).await.unwrap();
        credentials.push(("pass", format!("client-{i}")));
    }
    credentials
}

async fn versions(app: &TestBroker) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for provider in ["bro", "pass"] {
        for status in app.list(provider, 100, "").await.unwrap().credentials {
            out.insert(format!("{}/{}", status.provider, status.subject), status.version);
        }
    }
    out
}

#[tokio::test]
async fn rewrap_reseals_every_record_once_in_batches_and_an_interrupted_run_resumes_elsewhere() {
    let redis = TestRedis::start().await;
    let prefix = random_prefix();
    let old = replica(&redis.url, &prefix, Step::Old).await;
    let credentials = seed(&old).await;
    let mut served = Vec::new();
    for (provider, subject) in &credentials {
        served.push(old.get(provider, subject).await.unwrap());
    }
    let before = versions(&old).await;

    let mut first = replica(&redis.url, &prefix, Step::BothNewActive).await;
    let one = first.admin.clone().rewrap(request(3, None)).await.unwrap().into_inner();
    assert_eq!((one.seen, one.rewrapped, one.active_key.as_str()), (3, 3, NEW_ID));
    assert_eq!(one.next, Some(cursor("bro", "org-2")), "instances by name, subjects in order");
    let two = first.admin.clone().rewrap(request(3, one.next)).await.unwrap().into_inner();
    assert_eq!((two.seen, two.rewrapped), (3, 3));
    assert_eq!(two.next, Some(cursor("pass", "client-0")), "on to the next instance with records");
    // The run is interrupted here; another replica continues from the last cursor.
    first.begin_shutdown();
    let second = replica(&redis.url, &prefix, Step::BothNewActive).await;
    let mut after = two.next;
    let mut rest = 0;
    while let Some(cursor) = after {
        let call = second.admin.clone().rewrap(request(3, Some(cursor))).await.unwrap().into_inner();
        assert_eq!(call.seen, call.rewrapped, "nothing done twice, nothing skipped: {call:?}");
        rest += call.rewrapped;
        after = call.next;
    }
    assert_eq!(rest, 2);

    let sealed = sealed_with(&redis.url, &prefix).await;
    assert_eq!(sealed.len(), credentials.len());
    assert!(sealed.iter().all(|(_, key)| key == NEW_ID), "{sealed:?}");
    let after_versions = versions(&second).await;
    for (name, version) in &before {
        assert_eq!(after_versions[name], version + 1, "{name}: re-sealed exactly once");
    }
    let again = run(&second.admin, 500, NEW_ID).await;
    assert_eq!((again.seen, again.already_current, again.rewrapped), (8, 8, 0), "a second pass finds nothing to do");

    // The old key can go: a replica with only the new one serves the same headers, with the
    // same fingerprints.
    let newest = replica(&redis.url, &prefix, Step::NewOnly).await;
    for ((provider, subject), before) in credentials.iter().zip(&served) {
        assert_eq!(&newest.get(provider, subject).await.unwrap(), before, "{provider}/{subject}");
    }
}

#[tokio::test]
async fn rewrap_on_a_replica_without_the_old_key_reports_what_it_cannot_open_and_writes_nothing() {
    let redis = TestRedis::start().await;
    let prefix = random_prefix();
    let old = replica(&redis.url, &prefix, Step::Old).await;
    for i in 0..3 {
        old.put("bro", &format!("org-{i}"), bro_token("user|1", &bro_code(i))).await.unwrap();
    }
    let before = sealed_with(&redis.url, &prefix).await;

    let lacking = replica(&redis.url, &prefix, Step::NewOnly).await;
    let refused = lacking.get("bro", "org-0").await.unwrap_err();
    assert_eq!(refused.code(), Code::Internal);
    assert_eq!(refused.message(), "stored credential bro/org-0 cannot be opened");
    let report = run(&lacking.admin, 500, "").await;
    assert_eq!((report.seen, report.unreadable, report.rewrapped), (3, 3, 0));
    for problem in &report.problems {
        assert_eq!(problem.kind(), RewrapProblemKind::Unreadable);
        assert!(problem.detail.contains("\"primary\""), "names the missing key: {}", problem.detail);
    }
    assert_eq!(sealed_with(&redis.url, &prefix).await, before, "nothing written");
    assert_eq!(versions(&old).await.values().sum::<u64>(), 3, "versions unchanged");
}

/// Rewrites one stored record's JSON in place (as a stuck refresh would have left it).
async fn set_state(redis: &TestRedis, prefix: &str, subject: &str, state: &str, detail: &str) {
    let mut conn = redis.connection().await;
    let key = format!("{prefix}:{{bro:{subject}}}:cred");
    let data: String = redis::cmd("HGET").arg(&key).arg("data").query_async(&mut conn).await.unwrap();
    let mut record: serde_json::Value = serde_json::from_str(&data).unwrap();
    record["state"] = state.into();
    record["detail"] = detail.into();
    let () = redis::cmd("HSET").arg(&key).arg("data").arg(record.to_string()).query_async(&mut conn).await.unwrap();
}

#[tokio::test]
async fn rewrap_leaves_records_mid_refresh_or_leased_and_keeps_indeterminate_ones_as_they_are() {
    let redis = TestRedis::start().await;
    let prefix = random_prefix();
    let old = replica(&redis.url, &prefix, Step::Old).await;
    for subject in ["a-refreshing", "b-flagged", "c-leased", "d-plain"] {
        old.put("bro", subject, bro_token("user|1", &bro_code(1))).await.unwrap();
    }
    set_state(&redis, &prefix, "a-refreshing", "REFRESHING", "a refresh was sent").await;
    set_state(&redis, &prefix, "b-flagged", "INDETERMINATE", "refresh outcome unknown").await;
    let lease = format!("{prefix}:{{bro:c-leased}}:lease");
    let mut conn = redis.connection().await;
    let () = redis::cmd("SET")
        .arg(&lease)
        .arg("another-replica")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let flagged = old.status("bro", "b-flagged").await.unwrap();
    let untouched = sealed_with(&redis.url, &prefix).await;

    let new = replica(&redis.url, &prefix, Step::BothNewActive).await;
    let report = run(&new.admin, 500, NEW_ID).await;
    assert_eq!((report.seen, report.rewrapped, report.skipped, report.unreadable), (4, 2, 2, 0), "{report:?}");
    let kinds: Vec<_> = report.problems.iter().map(|p| (p.subject.as_str(), p.kind())).collect();
    assert_eq!(kinds, [("a-refreshing", RewrapProblemKind::MidRefresh), ("c-leased", RewrapProblemKind::Busy)]);
    let now = sealed_with(&redis.url, &prefix).await;
    for (key, sealed) in &now {
        let skipped = key.contains("a-refreshing") || key.contains("c-leased");
        let before = &untouched.iter().find(|(k, _)| k == key).unwrap().1;
        assert_eq!(sealed == before, skipped, "{key}: only the skipped ones keep the old key");
    }
    let kept = new.status("bro", "b-flagged").await.unwrap();
    assert_eq!(kept.state(), CredentialState::Indeterminate);
    assert_eq!((kept.detail.as_str(), kept.updated_at), (flagged.detail.as_str(), flagged.updated_at));
    assert_eq!(kept.version, flagged.version + 1);

    // Once the refresh is over and the lease is free, a later pass finishes the job.
    set_state(&redis, &prefix, "a-refreshing", "ACTIVE", "").await;
    let () = redis::cmd("DEL").arg(&lease).query_async(&mut conn).await.unwrap();
    let report = run(&new.admin, 500, NEW_ID).await;
    assert_eq!((report.seen, report.rewrapped, report.already_current), (4, 2, 2), "{report:?}");
}

#[tokio::test]
async fn rewrap_racing_writes_never_brings_back_an_older_secret() {
    let redis = TestRedis::start().await;
    let prefix = random_prefix();
    let old = replica(&redis.url, &prefix, Step::Old).await;
    let new = replica(&redis.url, &prefix, Step::BothNewActive).await;
    old.put("bro", "hot", bro_token("user|1", &bro_code(0))).await.unwrap();
    let writer = {
        let admin = old.admin.clone();
        tokio::spawn(async move {
            for i in 1..=150 {
                let put = pb::PutCredentialRequest {
                    provider: "bro".into(),
                    subject: "hot".into(),
                    secret: Some(bro_token("user|1", &bro_code(i))),
                };
                admin.clone().put_credential(put).await.unwrap();
            }
        })
    };
    let mut resealed = 0;
    while !writer.is_finished() {
        let call = pb::RewrapRequest { provider: "bro".into(), ..request(10, None) };
        resealed += new.admin.clone().rewrap(call).await.unwrap().into_inner().rewrapped;
    }
    writer.await.unwrap();
    assert!(resealed > 0, "the rewrap ran while the secret was being replaced");
    let last = new.get("bro", "hot").await.unwrap();
    let expected = only_header(&last).1.to_owned();
    let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("user|1:{}", bro_code(150)));
    assert_eq!(expected, format!("Basic {basic}"), "the newest secret is the one stored");
}

#[tokio::test]
async fn rewrap_refuses_another_active_key_and_bad_requests() {
    let app = Broker::new().start().await;
    app.put("bro", "org-1", bro_token("user|1", &bro_code(1))).await.unwrap();
    let admin = || app.admin.clone();
    let refused =
        admin().rewrap(pb::RewrapRequest { expect_active_key: NEW_ID.into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("\"ephemeral\"") && refused.message().contains(NEW_ID), "{refused:?}");

    let cases = [
        (pb::RewrapRequest { provider: "nope".into(), ..Default::default() }, Code::NotFound, "nope"),
        (request(0, Some(cursor("nope", "x"))), Code::NotFound, "nope"),
        (
            pb::RewrapRequest { provider: "bro".into(), ..request(0, Some(cursor("pass", "x"))) },
            Code::InvalidArgument,
            "after.provider",
        ),
        (request(0, Some(cursor("bro", ""))), Code::InvalidArgument, "after.subject"),
        (request(10_001, None), Code::InvalidArgument, "max_records"),
        (
            pb::RewrapRequest { records_per_second: 10_001, ..Default::default() },
            Code::InvalidArgument,
            "records_per_second",
        ),
    ];
    for (request, code, names) in cases {
        let status = admin().rewrap(request.clone()).await.unwrap_err();
        assert_eq!(status.code(), code, "{request:?}: {status:?}");
        assert!(status.message().contains(names), "{request:?}: {status:?}");
    }
    // With the one (ephemeral) key, everything is current: defaults apply, nothing to do.
    let report = admin().rewrap(pb::RewrapRequest::default()).await.unwrap().into_inner();
    assert_eq!((report.seen, report.already_current, report.next), (1, 1, None));
}
