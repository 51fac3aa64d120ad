//! # fake-upstream
//!
//! Faithful fakes of the four HTTP APIs credbroker talks to, served by one HTTP server
//! under one path prefix each, so a single fake serves a whole test:
//!
//! | provider     | prefix           | token endpoints                                                   |
//! |--------------|------------------|-------------------------------------------------------------------|
//! | PASS         | `/pass/`         | `token/v1/login`, `token/v1/refresh`, `token/v1/passwordtoken`, `token/v1/changepassword` (also under `rest/`) |
//! | BRO          | `/bro/`          | none (Basic on every call); `api/v2/[{project}/]validatie`        |
//! | Passolution  | `/passolution/`  | `oauth/authorize` (login + consent page), `oauth/token`; data under `api/v2/` |
//! | JouwOmgeving | `/jouwomgeving/` | `api/api-token-auth/`, `api/api-token-refresh/`; data `api/users/` |
//!
//! Every token-endpoint call goes through the failure [`Knobs`] and lands in the
//! [`Ledger`], which flags each attempt to redeem an already-redeemed Passolution refresh
//! token as a violation.
//!
//! # API
//!
//! ```text
//! FakeUpstream::start(config: FakeConfig) -> io::Result<FakeUpstream>        // 127.0.0.1:0
//! FakeUpstream::start_on(listener: TcpListener, config: FakeConfig) -> io::Result<FakeUpstream>
//! fake.base_url() -> String                                  // "http://127.0.0.1:PORT/"
//! fake.url(provider: Provider) -> String                     // "http://127.0.0.1:PORT/pass/"
//! fake.ledger() -> Ledger          fake.knobs() -> Knobs     // cloneable handles
//! fake.add_pass_user(login_name, password, active: bool)
//! fake.pass_api_key() -> String    fake.add_pass_client_number(number)
//! fake.pass_token_expiry(token) -> Option<SystemTime>
//! fake.add_bro_token(username, code)      fake.remove_bro_token(username)
//! fake.add_passolution_client(client_id, client_secret, redirect_uri)
//! fake.issue_passolution_code(client_id, code_challenge: Option<&str>) -> String
//! fake.add_passolution_user(username, password)             // may log in on the consent page
//! fake.passolution_issuer() -> String                        // the `iss` of the authorize redirect
//! fake.passolution_code_verifiers() -> Vec<String>           // PKCE verifiers of code exchanges
//! fake.issue_passolution_tokens(client_id) -> (access_token, refresh_token)
//! fake.issue_passolution_tokens_aged(client_id, age) -> (access_token, refresh_token)   // issued `age` ago
//! fake.passolution_access_revoked_at(access_token) -> Option<SystemTime>
//! fake.revoke_passolution_tokens(client_id)
//! fake.add_jouwomgeving_user(username, password)
//! fake.set_jouwomgeving_user_active(username, active: bool)
//! fake.seed_demo() -> DemoSeed                              // what the binary prints
//! fake.traffic() -> Traffic       // the latest 10 000 requests received: requests() -> Vec<SeenRequest>, clear()
//! blob(len) -> Vec<u8>            // the bytes `data/blob?size=len` serves
//! fake.shutdown().await
//!
//! Knobs (cloneable; a change applies to the next request):
//!   config() -> FakeConfig   update(|c: &mut FakeConfig| ..)
//!   set_pass_max_lifetime(Duration)          set_passolution_access_lifetime(Duration)
//!   set_passolution_refresh_lifetime(Duration)  set_passolution_rate_limit(u32)
//!   set_passolution_error_style(RefreshErrorStyle::{Newer, Older})
//!   set_passolution_iss(IssuerReply::{Correct, Omitted, Wrong})
//!   set_jouwomgeving_jwt_lifetime(Duration)  set_latency(Provider, Duration)
//!   fail(Provider, FailureMode, Times)       fail_only(Provider, Operation, FailureMode, Times)
//!   clear_failures(Provider)                 reset_failures()
//!   FailureMode::{Normal, Status(u16), Hang, DropBeforeProcessing, CommitThenDrop, CommitThenHang}
//!   Times::{Next(n), UntilReset}
//!
//! Ledger (cloneable):
//!   entries() -> Vec<Entry>   reset()   count(|&Entry| bool) -> usize   find(..) -> Vec<Entry>
//!   violations() -> Vec<Entry>   redemptions_of(refresh_token) -> usize   attempts_with(token) -> usize
//!   Entry { seq, at, provider, operation: Operation, credential, presented_token, issued_token,
//!           outcome: Outcome::{Issued, Accepted, Refused{status, reason}, NotProcessed},
//!           delivery: Delivery::{Replied, InjectedStatus(u16), Dropped, Hung}, violation }
//! ```
//!
//! # Layout
//!
//! - `config`: `FakeConfig` (start-up settings) and `Provider`.
//! - `knobs`: run-time changes: lifetimes, latency, rate limit, injected failures.
//! - `ledger`: the record of token-endpoint calls.
//! - `server`: the accept loop, which lets a handler cut its own connection.
//! - `fault`: the path every token-endpoint call takes (failures + ledger).
//! - `pass`, `bro`, `passolution`, `jouwomgeving`: one module per provider.
//! - `data`: data endpoints under each provider's API base (echo, mirror, sink, blob, slow…)
//!   for exercising a proxy, behind that provider's authorization.
//! - `traffic`: the log of every request received.
//! - `demo`: the seed data the binary prints.
//! - `control`: the knobs and ledger over HTTP, for test suites in other languages.

#![forbid(unsafe_code)]

mod app;
mod bro;
mod config;
pub mod control;
mod data;
mod demo;
mod fault;
mod jouwomgeving;
mod knobs;
mod ledger;
mod pass;
mod passolution;
mod server;
mod traffic;
mod util;

use std::io;
use std::net::SocketAddr;
use std::time::SystemTime;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::passolution::{Challenge, Lifetimes};

pub use config::{FakeConfig, IssuerReply, Provider, RefreshErrorStyle};
pub use data::blob;
pub use demo::DemoSeed;
pub use knobs::{FailureMode, Knobs, Times};
pub use ledger::{Delivery, Entry, Ledger, Operation, Outcome};
pub use traffic::{SeenRequest, Traffic};

/// A running fake. Dropping it stops serving too; [`shutdown`](Self::shutdown) also waits.
pub struct FakeUpstream {
    addr: SocketAddr,
    state: AppState,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl FakeUpstream {
    /// Starts on a fresh port of 127.0.0.1.
    pub async fn start(config: FakeConfig) -> io::Result<FakeUpstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::start_on(listener, config).await
    }

    /// Starts on a listener the caller bound (e.g. a fixed port for a demo).
    pub async fn start_on(listener: TcpListener, config: FakeConfig) -> io::Result<FakeUpstream> {
        let addr = listener.local_addr()?;
        let state = AppState::new(config);
        let issuer = format!("http://{addr}/{}", Provider::Passolution.prefix());
        state.passolution.issuer.set(issuer).expect("a new state has no issuer yet");
        let stop = CancellationToken::new();
        let task = server::spawn(listener, app::router(state.clone()), stop.clone());
        Ok(FakeUpstream { addr, state, stop, task: Some(task) })
    }

    /// `http://127.0.0.1:PORT/`, with the trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The base URL of one provider, e.g. `http://127.0.0.1:PORT/passolution/`.
    pub fn url(&self, provider: Provider) -> String {
        format!("{}{}/", self.base_url(), provider.prefix())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn ledger(&self) -> Ledger {
        self.state.ledger.clone()
    }

    pub fn knobs(&self) -> Knobs {
        self.state.knobs.clone()
    }

    /// Every request received so far (token endpoints, data endpoints, unknown paths).
    pub fn traffic(&self) -> Traffic {
        self.state.traffic.clone()
    }

    /// Stops accepting, closes every connection (hung ones too) and waits for that.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    // --- PASS ---

    pub fn add_pass_user(&self, login_name: &str, password: &str, active: bool) {
        self.state.pass.add_user(login_name, password, active);
    }

    /// The API key the fake accepts in `API-Key` and in `AppBearer {api_key},{client_number}`.
    pub fn pass_api_key(&self) -> String {
        self.state.knobs.config().pass_api_key
    }

    /// Makes `AppBearer {api_key},{number}` find a record.
    pub fn add_pass_client_number(&self, number: &str) {
        self.state.pass.add_client_number(number);
    }

    /// The current expiry of a PASS token, after any sliding.
    pub fn pass_token_expiry(&self, token: &str) -> Option<SystemTime> {
        self.state.pass.expiry(token)
    }

    // --- BRO ---

    pub fn add_bro_token(&self, username: &str, code: &str) {
        self.state.bro.add_token(username, code);
    }

    /// Like deleting the token in the portal: later calls with it get 401.
    pub fn remove_bro_token(&self, username: &str) {
        self.state.bro.remove_token(username);
    }

    // --- Passolution ---

    /// Registers an OAuth client; an empty secret makes a public (PKCE-only) client.
    pub fn add_passolution_client(&self, client_id: &str, client_secret: &str, redirect_uri: &str) {
        self.state.passolution.add_client(client_id, client_secret, redirect_uri);
    }

    /// An authorization code for the client's redirect URI, as after the user consented.
    /// With a challenge, the exchange needs the S256 `code_verifier`.
    ///
    /// Panics if the client is unknown: that is a mistake in the test's seeding.
    pub fn issue_passolution_code(&self, client_id: &str, code_challenge: Option<&str>) -> String {
        let redirect_uri = self.passolution_redirect_uri(client_id);
        let lifetime = self.state.knobs.config().passolution_code_lifetime;
        let challenge = code_challenge.map(Challenge::s256);
        self.state.passolution.issue_code(client_id, &redirect_uri, challenge, Vec::new(), lifetime)
    }

    /// An account that may log in on the consent page (`/oauth/authorize`).
    pub fn add_passolution_user(&self, username: &str, password: &str) {
        self.state.passolution.add_user(username, password);
    }

    /// What the authorize redirect sends as `iss` (RFC 9207): `http://127.0.0.1:PORT/passolution`.
    pub fn passolution_issuer(&self) -> String {
        self.state.passolution.issuer.get().cloned().expect("set at start")
    }

    /// Every `code_verifier` a successful code exchange presented (PKCE), oldest first: what a
    /// test looks for where it must never appear.
    pub fn passolution_code_verifiers(&self) -> Vec<String> {
        self.state.passolution.verifiers()
    }

    /// A fresh access and refresh token pair, as if a code exchange had just happened;
    /// not recorded in the ledger. Panics if the client is unknown.
    pub fn issue_passolution_tokens(&self, client_id: &str) -> (String, String) {
        self.passolution_redirect_uri(client_id);
        let lifetimes = Lifetimes::from_config(&self.state.knobs.config());
        let pair = self.state.passolution.issue(client_id, true, &lifetimes);
        (pair.access_token, pair.refresh_token.expect("issued with a refresh token"))
    }

    /// Like [`issue_passolution_tokens`](Self::issue_passolution_tokens), as if issued `age`
    /// ago: the access token's `iat` and expiry count from then (its life is partly spent).
    pub fn issue_passolution_tokens_aged(&self, client_id: &str, age: std::time::Duration) -> (String, String) {
        self.passolution_redirect_uri(client_id);
        let lifetimes = Lifetimes::from_config(&self.state.knobs.config());
        let pair = self.state.passolution.issue_at(client_id, SystemTime::now() - age, &lifetimes);
        (pair.access_token, pair.refresh_token.expect("issued with a refresh token"))
    }

    /// When a Passolution access token was revoked (by the refresh of its refresh token, or
    /// by an operator): what a test checks a promised validity against.
    pub fn passolution_access_revoked_at(&self, access_token: &str) -> Option<SystemTime> {
        self.state.passolution.access_revoked_at(access_token)
    }

    /// Revokes all of a client's tokens, like a user withdrawing the app's access.
    pub fn revoke_passolution_tokens(&self, client_id: &str) {
        self.state.passolution.revoke_client(client_id);
    }

    fn passolution_redirect_uri(&self, client_id: &str) -> String {
        let uri = self.state.passolution.redirect_uri(client_id);
        uri.unwrap_or_else(|| panic!("unknown Passolution client {client_id:?}: call add_passolution_client first"))
    }

    // --- JouwOmgeving ---

    pub fn add_jouwomgeving_user(&self, username: &str, password: &str) {
        self.state.jouwomgeving.add_user(username, password);
    }

    /// Deactivates (or reactivates) a user: logins fail, existing tokens are refused.
    pub fn set_jouwomgeving_user_active(&self, username: &str, active: bool) {
        self.state.jouwomgeving.set_active(username, active);
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
