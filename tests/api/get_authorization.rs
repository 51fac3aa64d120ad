//! GetAuthorization for the credentials that need no token exchange, on both stores.

use crate::both_stores;
use crate::harness::{Broker, StoreKind, bro_code, bro_token, only_header, secs};
use base64::Engine;
use credbroker::grpc::pb::{self, put_credential_request::Secret as PutSecret};
use tonic::Code;

const BRO_USER: &str = "0dce6fc98256|123456789|1234";
const BRO_CODE: &str = "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffee0001";

async fn bro_token_gives_basic_auth(store: StoreKind) {
    let app = Broker::on(store).start().await;
    app.put("bro", "org-1", bro_token(BRO_USER, BRO_CODE)).await.unwrap();
    let response = app.get("bro", "org-1").await.unwrap();
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{BRO_USER}:{BRO_CODE}"));
    assert_eq!(only_header(&response), ("authorization", format!("Basic {expected}").as_str()));
    assert_eq!(response.expires_at, None, "BRO tokens do not expire");
    assert_eq!(response.token_fingerprint.len(), 16);
    // A second (cached) answer is the same.
    assert_eq!(app.get("bro", "org-1").await.unwrap(), response);
}

async fn pass_client_number_gives_app_bearer_and_empty_subject_gives_api_key(store: StoreKind) {
    let app = Broker::on(store).start().await;
    app.put("pass", "client-42", PutSecret::ClientNumber("1234567".into())).await.unwrap();
    let response = app.get("pass", "client-42").await.unwrap();
    // The embedded default's PASS instance has api_key = "fake-pass-api-key"; no space after the comma.
    assert_eq!(only_header(&response), ("authorization", "AppBearer fake-pass-api-key,1234567"));
    let own = app.get("pass", "").await.unwrap();
    assert_eq!(only_header(&own), ("api-key", "fake-pass-api-key"));
    assert_ne!(own.token_fingerprint, response.token_fingerprint);
}

fn oauth(access: &str, expires_in: i64) -> PutSecret {
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(expires_in);
    PutSecret::OauthTokens(pb::OAuthTokens {
        refresh_token: "def-refresh".into(),
        access_token: access.into(),
        access_expires_at: Some(prost_types::Timestamp { seconds: at.unix_timestamp(), nanos: 0 }),
    })
}

async fn passolution_oauth_tokens_give_bearer_while_valid(store: StoreKind) {
    let app = Broker::on(store).start().await;
    app.put("passolution", "user-1", oauth("eyJ-access-1", 3600)).await.unwrap();
    let response = app.get("passolution", "user-1").await.unwrap();
    assert_eq!(only_header(&response), ("authorization", "Bearer eyJ-access-1"));
    // Passolution revokes a token when it is refreshed, so the header is promised until the
    // planned renewal (75 % ± 5 % of its hour, less a 2 s clock skew), not until its expiry.
    let expires = response.expires_at.expect("an access token expires").seconds;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now + 2515..=now + 2880).contains(&expires), "expires_at {expires} vs now {now}");
    // Asking for two hours cannot be served, nor renewed for before the planned renewal.
    let too_long = app.get_valid_for("passolution", "user-1", secs(7200)).await.unwrap_err();
    assert_eq!(too_long.code(), Code::Unavailable, "{too_long:?}");
    assert!(!too_long.message().contains("eyJ-access-1"));
    assert!(app.get_valid_for("passolution", "user-1", secs(1800)).await.is_ok());
}

both_stores!(
    bro_token_gives_basic_auth,
    pass_client_number_gives_app_bearer_and_empty_subject_gives_api_key,
    passolution_oauth_tokens_give_bearer_while_valid,
);

#[tokio::test]
async fn replacing_a_credential_replaces_what_is_served() {
    let app = Broker::new().start().await;
    app.put("bro", "org", bro_token("u|1", &bro_code("code-one"))).await.unwrap();
    let first = app.get("bro", "org").await.unwrap();
    app.put("bro", "org", bro_token("u|1", &bro_code("code-two"))).await.unwrap();
    let second = app.get("bro", "org").await.unwrap();
    assert_ne!(first.token_fingerprint, second.token_fingerprint);
    assert_ne!(only_header(&first).1, only_header(&second).1);
    app.delete("bro", "org").await.unwrap();
    assert_eq!(app.get("bro", "org").await.unwrap_err().code(), Code::NotFound);
}

/// The warm path needs no store: with Redis stopped, cached headers are still served, and a
/// credential that is not cached gets UNAVAILABLE.
#[tokio::test]
async fn warm_answers_survive_redis_going_away() {
    let app = Broker::on(StoreKind::Redis)
        .env("CREDBROKER__STORE__RESPONSE_TIMEOUT", "500ms")
        .env("CREDBROKER__STORE__CONNECT_TIMEOUT", "500ms")
        .start()
        .await;
    app.put("bro", "cached", bro_token("u|1", &bro_code("c1"))).await.unwrap();
    app.put("bro", "cold", bro_token("u|2", &bro_code("c2"))).await.unwrap();
    let warm = app.get("bro", "cached").await.unwrap();
    app.redis().stop().await;
    assert_eq!(app.get("bro", "cached").await.unwrap(), warm);
    let cold = app.get("bro", "cold").await.unwrap_err();
    assert_eq!(cold.code(), Code::Unavailable, "{cold:?}");
    assert_eq!(app.put("bro", "new", bro_token("u|3", &bro_code("c3"))).await.unwrap_err().code(), Code::Unavailable);
}

/// `server.cores`: connections are dealt in turn to one runtime per core (the default), or all
/// served on the shared runtime (0). Every layout serves every connection: six channels of
/// their own after the helper's, so with 3 runtimes every runtime serves some (the dealing
/// itself is `startup::cores`'s unit test).
#[tokio::test]
async fn every_runtime_layout_serves_every_connection() {
    for cores in ["0", "1", "3"] {
        let app = Broker::new().env("CREDBROKER__SERVER__CORES", cores).start().await;
        app.put("bro", "org", bro_token(BRO_USER, BRO_CODE)).await.unwrap();
        for _ in 0..6 {
            let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr)).unwrap();
            let mut client =
                pb::credential_broker_client::CredentialBrokerClient::new(channel.connect().await.unwrap());
            let request =
                pb::GetAuthorizationRequest { provider: "bro".into(), subject: "org".into(), ..Default::default() };
            let response = client.get_authorization(request).await.unwrap_or_else(|e| panic!("cores = {cores}: {e}"));
            assert_eq!(only_header(response.get_ref()).0, "authorization", "cores = {cores}");
        }
    }
}
