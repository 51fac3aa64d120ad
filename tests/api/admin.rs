//! The admin API on both stores: put, status, list (paged), delete.

use crate::both_stores;
use crate::harness::{Broker, StoreKind, bro_code, bro_token};
use credbroker::grpc::pb::{self, CredentialState, put_credential_request::Secret as PutSecret};
use std::collections::BTreeSet;
use tonic::Code;

async fn credential_lifecycle(store: StoreKind) {
    let app = Broker::on(store).start().await;
    let codes = [bro_code("secret-code-a"), bro_code("secret-code-b"), bro_code("secret-code-c")];
    let first = app.put("bro", "org-a", bro_token("user|a", &codes[0])).await.unwrap();
    assert_eq!(
        (first.state(), first.version, first.provider.as_str(), first.subject.as_str()),
        (CredentialState::Active, 1, "bro", "org-a")
    );
    assert!(first.updated_at.is_some());
    let second = app.put("bro", "org-a", bro_token("user|a", &codes[1])).await.unwrap();
    assert_eq!(second.version, 2);
    let status = app.status("bro", "org-a").await.unwrap();
    assert_eq!((status.state(), status.version, status.detail.as_str()), (CredentialState::Active, 2, ""));
    assert!(codes.iter().all(|code| !format!("{status:?}").contains(code.as_str())), "status must not carry a secret");

    app.delete("bro", "org-a").await.unwrap();
    assert_eq!(app.status("bro", "org-a").await.unwrap_err().code(), Code::NotFound);
    assert_eq!(app.delete("bro", "org-a").await.unwrap_err().code(), Code::NotFound);
    // Versions only grow, even across a delete.
    let again = app.put("bro", "org-a", bro_token("user|a", &codes[2])).await.unwrap();
    assert!(again.version > second.version, "{} after {}", again.version, second.version);
    // Unknown provider vs unknown credential: both NOT_FOUND, different words.
    assert_eq!(app.status("nope", "org-a").await.unwrap_err().code(), Code::NotFound);
    assert_eq!(app.status("bro", "org-zzz").await.unwrap_err().code(), Code::NotFound);
}

async fn listing_pages_through_everything_once(store: StoreKind) {
    let app = Broker::on(store).start().await;
    let subjects: BTreeSet<String> = (0..250).map(|i| format!("subject-{i:03}")).collect();
    for subject in &subjects {
        app.put("bro", subject, bro_token("u|1", &bro_code("listing-secret"))).await.unwrap();
    }
    // Another provider's credentials never show up in this listing.
    app.put("pass", "subject-x", PutSecret::ClientNumber("77".into())).await.unwrap();
    let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = app.list("bro", 100, &token).await.unwrap();
        pages += 1;
        assert!(page.credentials.len() <= 100);
        assert!(!format!("{page:?}").contains(&bro_code("listing-secret")));
        seen.extend(page.credentials.iter().map(|c| c.subject.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, subjects.into_iter().collect::<Vec<_>>(), "every subject once, in order");
    let bad = app.list("bro", 10, "not-a-token!").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("page_token"));
    let empty = app.list("passolution", 0, "").await.unwrap();
    assert_eq!((empty.credentials.len(), empty.next_page_token.as_str()), (0, ""));
}

both_stores!(credential_lifecycle, listing_pages_through_everything_once);

#[tokio::test]
async fn put_reports_oauth_expiry_in_status() {
    let app = Broker::new().start().await;
    let at = prost_types::Timestamp { seconds: 4_102_444_800, nanos: 0 }; // 2100-01-01
    let tokens = pb::OAuthTokens { refresh_token: "r".into(), access_token: "a".into(), access_expires_at: Some(at) };
    let status = app.put("passolution", "u", PutSecret::OauthTokens(tokens)).await.unwrap();
    assert_eq!(status.access_expires_at, Some(at));
}
