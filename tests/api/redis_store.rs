//! What actually lands in Redis: no secret in any raw value, ciphertexts bound to their
//! credential, keys of one credential on one cluster slot.

use crate::harness::{Broker, StoreKind, TestRedis, bro_code, bro_token, random_prefix};
use credbroker::grpc::pb::{self, put_credential_request::Secret as PutSecret};
use redis::AsyncCommands;
use tonic::Code;

const SECRETS: [&str; 6] = [
    "b0c0de0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
    "client-number-98765",
    "jo-password-hunter2",
    "refresh-def-abcdef",
    "access-eyJ-zyx",
    "bro|user-name",
];

#[tokio::test]
async fn raw_redis_values_hold_no_secret() {
    let app = Broker::on(StoreKind::Redis).start().await;
    app.put("bro", "org", bro_token(SECRETS[5], SECRETS[0])).await.unwrap();
    app.put("pass", "client", PutSecret::ClientNumber(SECRETS[1].into())).await.unwrap();
    let up = pb::UsernamePassword { username: "jo-user".into(), password: SECRETS[2].into() };
    app.put("jouwomgeving-demo", "app", PutSecret::UsernamePassword(up)).await.unwrap();
    let tokens =
        pb::OAuthTokens { refresh_token: SECRETS[3].into(), access_token: SECRETS[4].into(), access_expires_at: None };
    app.put("passolution", "user", PutSecret::OauthTokens(tokens)).await.unwrap();

    let mut conn = app.redis().connection().await;
    let keys: Vec<String> = conn.keys(format!("{}:*", app.key_prefix)).await.unwrap();
    assert!(keys.len() >= 4 + 4, "4 records and 4 indexes, got {keys:?}");
    let mut dump = String::new();
    for key in &keys {
        let kind: String = redis::cmd("TYPE").arg(key).query_async(&mut conn).await.unwrap();
        let values: Vec<String> = match kind.as_str() {
            "hash" => conn.hgetall::<_, Vec<String>>(key).await.unwrap(),
            "zset" => conn.zrange(key, 0, -1).await.unwrap(),
            // A renewal lease (the scheduler renews the imported, already expired token): an
            // owner nonce — or gone by now.
            "string" if key.ends_with(":lease") => {
                conn.get::<_, Option<String>>(key).await.unwrap().into_iter().collect()
            }
            "none" => Vec::new(),
            other => panic!("unexpected {other} at {key}"),
        };
        dump.push_str(&format!("{key} {values:?}\n"));
    }
    for secret in SECRETS {
        assert!(!dump.contains(secret), "{secret} found in raw Redis values:\n{dump}");
    }
    assert_eq!(dump.matches("v2:primary:").count(), 4, "each record holds a sealed secret:\n{dump}");
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_credential_does_not_open() {
    let app = Broker::on(StoreKind::Redis).start().await;
    app.put("bro", "victim", bro_token("v|1", &bro_code("victim-code"))).await.unwrap();
    app.put("bro", "attacker", bro_token("a|1", &bro_code("attacker-code"))).await.unwrap();
    let mut conn = app.redis().connection().await;
    let victim_key = format!("{}:{{bro:victim}}:cred", app.key_prefix);
    let attacker_key = format!("{}:{{bro:attacker}}:cred", app.key_prefix);
    let data: String = conn.hget(&victim_key, "data").await.unwrap();
    let _: () = conn.hset(&attacker_key, "data", &data).await.unwrap();

    let status = app.get("bro", "attacker").await.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(!status.message().contains(&bro_code("victim-code")));
    let victim = app.get("bro", "victim").await.unwrap();
    assert!(!victim.headers[0].value.is_empty(), "the original still opens where it belongs");
}

/// Records are bound to their version: writing an older record back over a newer one (a
/// rollback by someone with Redis access) does not open, so nothing old is served.
#[tokio::test]
async fn an_older_record_written_back_does_not_open() {
    let app = Broker::on(StoreKind::Redis).start().await;
    let (old_code, new_code) = (bro_code("old-code"), bro_code("new-code"));
    app.put("bro", "org", bro_token("u|1", &old_code)).await.unwrap();
    let mut conn = app.redis().connection().await;
    let key = format!("{}:{{bro:org}}:cred", app.key_prefix);
    let old: String = conn.hget(&key, "data").await.unwrap();
    app.put("bro", "org", bro_token("u|1", &new_code)).await.unwrap();
    let _: () = conn.hset(&key, "data", &old).await.unwrap();

    let status = app.get("bro", "org").await.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(!status.message().contains(&old_code) && !status.message().contains(&new_code));
    // Written back with its own version too, it opens again: the version field is the anchor.
    let _: () = conn.hset(&key, "version", 1).await.unwrap();
    let basic = app.get("bro", "org").await.unwrap().headers[0].value.clone();
    assert!(!basic.is_empty());
}

#[tokio::test]
async fn keys_of_one_credential_share_a_hash_tag() {
    let app = Broker::on(StoreKind::Redis).start().await;
    app.put("bro", "we{ird}:sub", bro_token("u|1", &bro_code("code"))).await.unwrap();
    let mut conn = app.redis().connection().await;
    let keys: Vec<String> = conn.keys(format!("{}:{{bro:*", app.key_prefix)).await.unwrap();
    assert_eq!(keys, [format!("{}:{{bro:we%7Bird%7D%3Asub}}:cred", app.key_prefix)]);
    let slot = |key: &str| -> String { key[key.find('{').unwrap() + 1..key.find('}').unwrap()].to_owned() };
    assert_eq!(slot(&keys[0]), "bro:we%7Bird%7D%3Asub", "the whole escaped subject is the tag");
}

/// The test image runs Redis with its defaults (no AOF): the start-up check must say so; a
/// Redis configured like deploy/redis.conf passes.
#[tokio::test]
async fn durability_settings_are_checked_against_the_real_redis() {
    let redis = TestRedis::start().await;
    let store = redis.store(&random_prefix());
    let problems = store.durability_warnings().await.unwrap();
    assert!(problems.iter().any(|p| p.contains("appendonly")), "{problems:?}");
    let mut conn = redis.connection().await;
    for (key, value) in [("appendonly", "yes"), ("appendfsync", "always"), ("maxmemory-policy", "noeviction")] {
        let _: () = redis::cmd("CONFIG").arg("SET").arg(key).arg(value).query_async(&mut conn).await.unwrap();
    }
    assert_eq!(store.durability_warnings().await.unwrap(), Vec::<String>::new());
}
