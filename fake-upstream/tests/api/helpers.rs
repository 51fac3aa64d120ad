//! Starting a fake per test and talking to it.

use std::time::{Duration, SystemTime};

use fake_upstream::{FakeConfig, FakeUpstream, Provider};
use serde_json::Value;

pub struct TestFake {
    pub fake: FakeUpstream,
    pub http: reqwest::Client,
}

pub async fn spawn() -> TestFake {
    spawn_with(FakeConfig::default()).await
}

pub async fn spawn_with(config: FakeConfig) -> TestFake {
    let fake = FakeUpstream::start(config).await.expect("fake starts");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client builds");
    TestFake { fake, http }
}

impl TestFake {
    pub fn url(&self, provider: Provider, path: &str) -> String {
        format!("{}{path}", self.fake.url(provider))
    }
}

/// Status and JSON body of a response.
pub async fn status_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.expect("JSON body");
    (status, body)
}

/// Sleeps until the wall clock's Unix second is at least `secs` (+50 ms of margin).
pub async fn sleep_until_unix(secs: u64) {
    let target = SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(50);
    if let Ok(wait) = target.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
}

pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

/// A transport failure with no HTTP status: what a cut connection looks like to a client.
pub fn assert_transport_error(result: Result<reqwest::Response, reqwest::Error>) {
    let error = match result {
        Ok(response) => panic!("expected a transport error, got HTTP {}", response.status()),
        Err(error) => error,
    };
    assert!(error.status().is_none() && !error.is_timeout(), "{error:?}");
    let chain = format!("{error:?}");
    assert!(
        chain.contains("IncompleteMessage") || chain.contains("ConnectionReset") || chain.contains("closed"),
        "not a dropped connection: {chain}"
    );
}
