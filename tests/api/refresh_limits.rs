//! What no caller can make the broker do: burn refresh tokens by reporting rejections
//! or spend one on a `min_validity` no token can meet.

use crate::both_stores;
use crate::harness::{Broker, StoreKind, TestBroker, TestRedis, issue_tokens, random_prefix, secs, start_fake};
use fake_upstream::{FakeUpstream, Operation};
use std::time::Duration;
use tonic::Code;

fn refresh_grants(fake: &FakeUpstream) -> usize {
    fake.ledger().count(|e| e.operation == Operation::RefreshTokenGrant)
}

/// Two replicas on one Redis, both pointing at `fake`, with `limits` as `[refresh]` settings.
async fn two_replicas(fake: &FakeUpstream, limits: &[(&str, &str)]) -> (TestBroker, TestBroker, TestRedis) {
    let redis = TestRedis::start().await;
    let prefix = random_prefix();
    let replica = || Broker::new().wired_to(fake).sharing(&redis.url, &prefix).envs(limits).start();
    let (a, b) = (replica().await, replica().await);
    (a, b, redis)
}

/// 20 rounds of GetAuthorization → ReportRejected with the header just received, spread over
/// two replicas: at most one renewal per interval, fleet-wide (the record knows when).
#[tokio::test]
async fn reports_force_at_most_one_renewal_per_interval_fleet_wide() {
    let fake = start_fake().await;
    let limits = [("CREDBROKER__REFRESH__REJECTED_INTERVAL", "1h"), ("CREDBROKER__REFRESH__REJECTED_MIN_AGE", "0s")];
    let (a, b, _redis) = two_replicas(&fake, &limits).await;
    let (_, _, tokens) = issue_tokens(&fake, Duration::from_secs(3600));
    a.put("passolution", "u", tokens).await.unwrap();
    for round in 0..20 {
        let app = if round % 2 == 0 { &a } else { &b };
        let served = app.get("passolution", "u").await.unwrap();
        app.report("passolution", "u", &served.token_fingerprint).await.unwrap();
    }
    assert_eq!(refresh_grants(&fake), 1, "{:?}", fake.ledger().entries());
    assert!(fake.ledger().violations().is_empty());
}

/// A header younger than the minimum age is not renewed on a report, however often.
#[tokio::test]
async fn reports_of_a_fresh_header_force_nothing() {
    let fake = start_fake().await;
    let limits = [("CREDBROKER__REFRESH__REJECTED_INTERVAL", "0s"), ("CREDBROKER__REFRESH__REJECTED_MIN_AGE", "1h")];
    let (a, _b, _redis) = two_replicas(&fake, &limits).await;
    let (_, _, tokens) = issue_tokens(&fake, Duration::from_secs(3600));
    a.put("passolution", "u", tokens).await.unwrap();
    for _ in 0..20 {
        let served = a.get("passolution", "u").await.unwrap();
        a.report("passolution", "u", &served.token_fingerprint).await.unwrap();
    }
    assert_eq!(refresh_grants(&fake), 0);
}

/// Once the broker knows how long the provider's tokens live, a `min_validity` no fresh token
/// can be promised for is refused before anything is redeemed — however often it is asked —
/// and the header handed out before stays valid.
async fn a_min_validity_no_token_meets_is_refused_before_any_redemption(store: StoreKind) {
    let app = Broker::on(store).fake().quick_renewals().start().await;
    let (_, _, tokens) = issue_tokens(app.fake(), Duration::from_secs(3600));
    app.put("passolution", "u", tokens).await.unwrap();
    // The provider now issues 20 s tokens; a forced renewal teaches the broker that.
    app.fake().knobs().set_passolution_access_lifetime(Duration::from_secs(20));
    let imported = app.get("passolution", "u").await.unwrap();
    app.report("passolution", "u", &imported.token_fingerprint).await.unwrap();
    let fresh = app.get_valid_for("passolution", "u", secs(1)).await.unwrap();
    assert_ne!(fresh.token_fingerprint, imported.token_fingerprint);
    // A fresh 20 s token is promised for at most 20 × 0.7 − 0.1 = 13.9 s.
    for _ in 0..3 {
        let refused = app.get_valid_for("passolution", "u", secs(30)).await.unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(refused.message().contains("min_validity"), "{}", refused.message());
    }
    assert_eq!(refresh_grants(app.fake()), 1, "{store:?}: only the forced renewal");
    let token = fresh.headers[0].value.trim_start_matches("Bearer ");
    assert_eq!(app.fake().passolution_access_revoked_at(token), None, "{store:?}: the header handed out stays valid");
}

both_stores!(a_min_validity_no_token_meets_is_refused_before_any_redemption);

/// The promised end of a Passolution header is its planned renewal (minus the clock skew),
/// not the token's expiry: asking past it waits for that renewal and gets the new header.
#[tokio::test]
async fn a_passolution_header_is_promised_until_its_planned_renewal() {
    let app = Broker::new().fake().quick_renewals().env("CREDBROKER__UPSTREAM__REFRESH_JITTER", "0").start().await;
    let (_, _, tokens) = issue_tokens(app.fake(), Duration::from_secs(4));
    app.put("passolution", "u", tokens).await.unwrap();
    let first = app.get_valid_for("passolution", "u", secs(0)).await.unwrap();
    let promised = first.expires_at.unwrap().seconds;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(promised <= now + 3, "promised until the renewal at ~75 % of 4 s, not the expiry: {promised} vs {now}");
    app.fake().knobs().set_passolution_access_lifetime(Duration::from_secs(3600));
    let second = app.get_valid_for("passolution", "u", secs(60)).await.unwrap();
    assert_ne!(second.token_fingerprint, first.token_fingerprint);
    assert_eq!(refresh_grants(app.fake()), 1);
    let old = first.headers[0].value.trim_start_matches("Bearer ");
    let revoked = app.fake().passolution_access_revoked_at(old).expect("the refresh revoked the old token");
    let promised = std::time::UNIX_EPOCH + Duration::new(promised as u64, first.expires_at.unwrap().nanos as u32);
    assert!(revoked >= promised, "revoked {revoked:?} before the promised {promised:?}");
}
