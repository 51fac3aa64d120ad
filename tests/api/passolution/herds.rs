//! Many callers at once: a herd on an expired token, and many reports of one header, each
//! cause one refresh.

use super::refresh_grants;
use crate::both_stores;
use crate::harness::{Broker, StoreKind, bro_code, bro_token, issue_tokens};
use fake_upstream::Provider;
use std::time::Duration;
use tonic::Code;

async fn a_herd_on_an_expired_token_causes_one_refresh(store: StoreKind) {
    let app = Broker::on(store).fake().quick_renewals().start().await;
    app.fake().knobs().set_latency(Provider::Passolution, Duration::from_millis(100));
    let (_, refresh, tokens) = issue_tokens(app.fake(), Duration::from_secs(1));
    app.put("passolution", "herd", tokens).await.unwrap();
    let answers = app.herd("passolution", "herd", 500).await;
    assert_eq!(answers.len(), 1, "all 500 callers got the same new header");
    assert_eq!(refresh_grants(app.fake()), 1, "exactly one upstream refresh");
    assert_eq!(app.fake().ledger().redemptions_of(&refresh), 1);
}

both_stores!(a_herd_on_an_expired_token_causes_one_refresh);

#[tokio::test]
async fn many_reports_of_one_header_cause_one_refresh_and_old_reports_none() {
    let app = Broker::new().fake().quick_renewals().start().await;
    let (_, _, tokens) = issue_tokens(app.fake(), Duration::from_secs(3600));
    app.put("passolution", "u", tokens).await.unwrap();
    let first = app.get("passolution", "u").await.unwrap();
    let reports: Vec<_> = (0..20)
        .map(|_| {
            let (clients, fp) = ((*app).clone(), first.token_fingerprint.clone());
            tokio::spawn(async move { clients.report("passolution", "u", &fp).await })
        })
        .collect();
    for r in reports {
        r.await.unwrap().unwrap();
    }
    assert_eq!(refresh_grants(app.fake()), 1);
    let second = app.get("passolution", "u").await.unwrap();
    assert_ne!(second.token_fingerprint, first.token_fingerprint);
    app.report("passolution", "u", &first.token_fingerprint).await.unwrap();
    assert_eq!(refresh_grants(app.fake()), 1, "a report for an older header changes nothing");
    // Static credentials cannot be renewed: a report is accepted and changes nothing.
    app.put("bro", "org", bro_token("u|1", &bro_code("c"))).await.unwrap();
    let bro = app.get("bro", "org").await.unwrap();
    app.report("bro", "org", &bro.token_fingerprint).await.unwrap();
    assert_eq!(app.get("bro", "org").await.unwrap(), bro);
    let bad = app.report("passolution", "u", "").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}
