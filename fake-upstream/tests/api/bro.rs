//! BRO: Basic auth on every call, validation report.

use fake_upstream::{Operation, Outcome, Provider};

use crate::helpers::{spawn, status_json};

const USER: &str = "0dce6fc98256|123456789|1234";
const CODE: &str = "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a1c3e5b7d9f0a2c4e6b8d0f";

#[tokio::test]
async fn validation_needs_the_token() {
    let t = spawn().await;
    t.fake.add_bro_token(USER, CODE);
    let xml = "<registrationRequest/>";
    for path in ["api/v2/validatie", "api/v2/P1234/validatie"] {
        let request = t.http.post(t.url(Provider::Bro, path)).basic_auth(USER, Some(CODE));
        let (status, body) = status_json(request.body(xml).send().await.unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(body, serde_json::json!({"status": "VALIDE", "errors": []}));
    }
    let empty = t.http.post(t.url(Provider::Bro, "api/v2/validatie")).basic_auth(USER, Some(CODE));
    let (_, body) = status_json(empty.send().await.unwrap()).await;
    assert_eq!(body["status"], "NIET-VALIDE");

    let wrong = t.http.post(t.url(Provider::Bro, "api/v2/validatie")).basic_auth(USER, Some("0".repeat(64)));
    assert_eq!(wrong.body(xml).send().await.unwrap().status(), 401);
    let anonymous = t.http.post(t.url(Provider::Bro, "api/v2/validatie"));
    assert_eq!(anonymous.body(xml).send().await.unwrap().status(), 401);

    let ledger = t.fake.ledger();
    assert_eq!(ledger.count(|e| e.operation == Operation::Validate), 5);
    let refused = ledger.find(|e| matches!(e.outcome, Outcome::Refused { status: 401, .. }));
    assert_eq!(refused[0].credential.as_deref(), Some(USER));
    assert_eq!(refused[1].credential, None);
}
