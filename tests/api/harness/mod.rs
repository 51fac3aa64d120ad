//! The harness every test starts what it needs through: a broker (in-process or the real
//! binary), several replicas sharing one Redis, the fake upstream, the Redis servers, the gRPC
//! clients, and [`eventually`] for waiting on a condition.
//!
//! ```ignore
//! let app = Broker::on(StoreKind::Redis).fake().start().await;     // in-process, on a fresh Redis
//! app.fake().add_pass_user("jan", "pw", true);
//! app.put("pass", "jan", login("jan", "pw")).await.unwrap();        // Clients: put, get, status, …
//! let served = eventually("jan is served", Duration::from_secs(20), || async {
//!     app.get("pass", "jan").await                                  // Ok(value) ends the wait
//! }).await;
//! ```
//!
//! - [`Broker`] (`broker.rs`): an in-process broker. `Broker::new()` runs the embedded default
//!   configuration (memory store), `Broker::on(store)` the memory store or a fresh Redis. Then
//!   `.env(key, value)` for any `CREDBROKER__…` setting, `.fake()` to point every provider at an
//!   in-process fake upstream (`.with_fake(fake)`: one the test started; `.wired_to(&fake)`:
//!   one replicas share), `.quick_renewals()` for 2 s upstream timeouts and a 100 ms clock
//!   skew, `.proxy(settings)` to serve ProxyCall with chosen limits, `.sharing(url, prefix)` for
//!   a replica on a Redis other replicas use, `.config_file(path)`. `.start()` gives a
//!   [`TestBroker`]: its [`Clients`], `fake()`, `redis()`, `begin_shutdown()`, `stopped()`.
//! - [`Serve`] (`serve.rs`): the real `credbroker serve` in a process of its own, for what
//!   only a process shows (logs, exit codes, signals, the environment, TLS on disk). The same
//!   kind of builder (`.env`, `.config` with `{dir}`, `.file`, `.tls(server, client_ca)`,
//!   `.passolution_at(url)`, `.capture_logs()` or `.log_to_files()`); `.start()` gives a
//!   [`Process`] (`process.rs`): its plaintext [`Clients`], `tls_channel()`, `signal()`,
//!   `exited()`, `finish()` (SIGTERM, exit status, logs), `logs()`, `logged(text)`. A start
//!   that must be refused: `.fails()` (exit status and output).
//! - [`Fleet`] (`fleet.rs`): three replica processes on one real `redis-server` and one fake
//!   upstream, restartable one at a time (the chaos suite, key rotation).
//! - `fake.rs`: the fake upstream with the tests' Passolution client, the settings that point
//!   providers at it, tokens issued by it ([`issue_tokens`], [`issue_aged_tokens`]), [`login`].
//! - `redis/`: [`TestRedis`] (a container of the local image, or `REDIS_URL`), [`RedisNode`]
//!   (a `redis-server` process: primary, replica, sentinel), [`LocalCluster`] (with replicas that
//!   fail over: find, kill or stop the master owning a key).
//! - `clients.rs`: [`Clients`], the two gRPC clients with the calls tests make, and small
//!   request helpers ([`bro_token`], [`secs`], [`only_header`]).
//! - `pki.rs`: certificates made in the test ([`Ca`], [`Leaf`]).
//! - `eventually.rs`: [`eventually`] (poll until a condition holds, or panic with the last
//!   observation), [`poll`] (the same, returning the last observation instead), [`within`].
//! - [`both_stores!`]: a store-generic test written once, run as `…::memory` and `…::redis`.

mod broker;
mod clients;
mod eventually;
mod fake;
mod fleet;
mod pki;
mod process;
mod redis;
mod serve;

pub use broker::{Broker, TestBroker};
pub use clients::{Clients, bro_code, bro_token, only_header, secs};
pub use eventually::{eventually, poll, within};
pub use fake::{CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, issue_aged_tokens, issue_tokens, login, start_fake};
pub use fleet::{Fleet, FleetOptions, LEASE_TTL, RECONCILE_AFTER};
pub use pki::{Ca, Leaf};
pub use process::Process;
pub use redis::{LocalCluster, MASTER, RedisNode, TestRedis, redis_store};
pub use serve::Serve;

/// A fixed test key (32 bytes of 0x07, base64).
pub const TEST_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// Where a broker keeps its credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Redis,
}

/// A key prefix of its own, so tests sharing a Redis never see each other's keys.
pub fn random_prefix() -> String {
    format!("t{:016x}", rand::random::<u64>())
}

/// A loopback port nothing listens on right now (for a child process to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Until something accepts connections on loopback `port` (at most 10 s).
pub async fn wait_for_port(port: u16) {
    let listening = || async { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() };
    eventually(&format!("something listens on port {port}"), std::time::Duration::from_secs(10), listening).await;
}

/// A store-generic test written once: `async fn name(store: StoreKind)` becomes the tests
/// `name::memory` and `name::redis`. Attributes before a name (a doc comment) are kept on
/// its module.
#[macro_export]
macro_rules! both_stores {
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {
        $(
            $(#[$meta])*
            mod $name {
                #[tokio::test]
                async fn memory() {
                    super::$name($crate::harness::StoreKind::Memory).await
                }

                #[tokio::test]
                async fn redis() {
                    super::$name($crate::harness::StoreKind::Redis).await
                }
            }
        )+
    };
}
