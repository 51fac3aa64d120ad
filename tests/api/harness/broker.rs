//! An in-process broker: built by `Application::build` from the embedded default plus
//! `CREDBROKER__…` settings, served on a random loopback port, reached through [`Clients`].
//! Each Redis-backed broker gets its own key prefix.

use super::clients::Clients;
use super::fake::{every_provider, start_fake};
use super::redis::TestRedis;
use super::{StoreKind, TEST_KEY, random_prefix};
use credbroker::config::Settings;
use credbroker::proxy::ProxySettings;
use credbroker::startup::Application;
use fake_upstream::FakeUpstream;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Server;

/// What a broker is built from; [`Broker::start`] runs it.
#[must_use = "a builder does nothing until `.start()`"]
pub struct Broker {
    store: StoreKind,
    env: Vec<(String, String)>,
    /// Start a fake upstream of its own and point the providers at it.
    fake: bool,
    /// Or one the test started (to use its URLs in settings), to own and point them at.
    given_fake: Option<FakeUpstream>,
    /// Settings pointing the providers at a fake upstream (its own, or a shared one).
    wiring: Vec<(String, String)>,
    quick_renewals: bool,
    proxy: Option<ProxySettings>,
    config_file: Option<PathBuf>,
}

impl Broker {
    /// The embedded default configuration: the memory store, providers at their default URLs.
    pub fn new() -> Self {
        Self::on(StoreKind::Memory)
    }

    /// The memory store, or a fresh Redis (a container, or `REDIS_URL`) with the test key.
    pub fn on(store: StoreKind) -> Self {
        Self {
            store,
            env: Vec::new(),
            fake: false,
            given_fake: None,
            wiring: Vec::new(),
            quick_renewals: false,
            proxy: None,
            config_file: None,
        }
    }

    /// A `CREDBROKER__…` setting; later ones win, and they win over what `.fake()` sets.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn envs(self, settings: &[(&str, &str)]) -> Self {
        settings.iter().fold(self, |broker, (key, value)| broker.env(key, value))
    }

    /// Every provider pointed at an in-process fake upstream (see [`TestBroker::fake`]), and
    /// renewals forced by ReportRejected allowed at once and again (their limits have tests of
    /// their own).
    pub fn fake(mut self) -> Self {
        self.fake = true;
        self
    }

    /// Like [`Broker::fake`] with a fake the test started already (say, to use its URLs in a
    /// setting).
    pub fn with_fake(mut self, fake: FakeUpstream) -> Self {
        self.given_fake = Some(fake);
        self
    }

    /// Like [`Broker::fake`], with a fake upstream the test holds (replicas share one).
    pub fn wired_to(mut self, fake: &FakeUpstream) -> Self {
        self.wiring = every_provider(fake);
        self.wiring.push(("CREDBROKER__REFRESH__REJECTED_MIN_AGE".to_owned(), "0s".to_owned()));
        self.wiring.push(("CREDBROKER__REFRESH__REJECTED_INTERVAL".to_owned(), "0s".to_owned()));
        self
    }

    /// Upstream calls time out after 2 s (a hanging provider ends within a test's patience)
    /// and the clock-skew allowance is 100 ms (one machine, one clock).
    pub fn quick_renewals(mut self) -> Self {
        self.quick_renewals = true;
        self
    }

    /// Serves the gRPC routes with these proxy limits (small ones are cheap to cross) instead
    /// of running the application's own listener.
    pub fn proxy(mut self, settings: ProxySettings) -> Self {
        self.proxy = Some(settings);
        self
    }

    /// A replica on a Redis other replicas use too: its URL, their key prefix, the test key.
    pub fn sharing(self, redis_url: &str, prefix: &str) -> Self {
        self.env("CREDBROKER__STORE__REDIS_URL", redis_url)
            .env("CREDBROKER__STORE__KEY_PREFIX", prefix)
            .env("CREDBROKER__ENCRYPTION__KEY", TEST_KEY)
    }

    /// A configuration file under the settings.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    pub async fn start(mut self) -> TestBroker {
        let fake = match self.given_fake.take() {
            Some(fake) => Some(fake),
            None if self.fake => Some(start_fake().await),
            None => None,
        };
        if let Some(fake) = &fake {
            self = self.wired_to(fake);
        }
        let redis = match self.store {
            StoreKind::Memory => None,
            StoreKind::Redis => Some(TestRedis::start().await),
        };
        let prefix = random_prefix();
        let settings = self.settings(redis.as_ref().map(|r| (r.url.as_str(), prefix.as_str())));
        let (addr, serving) = match self.proxy {
            None => Serving::application(settings).await,
            Some(proxy) => Serving::proxy_routes(settings, proxy).await,
        };
        TestBroker { addr, clients: Clients::lazy(addr), redis, key_prefix: prefix, fake, serving }
    }

    /// A random port, then the fake's URLs, then the store, then the test's own settings.
    fn settings(&self, redis: Option<(&str, &str)>) -> Settings {
        let mut env = vec![("CREDBROKER__SERVER__LISTEN".to_owned(), "127.0.0.1:0".to_owned())];
        env.extend(self.wiring.iter().cloned());
        let mut set = |key: &str, value: &str| env.push((key.to_owned(), value.to_owned()));
        if self.quick_renewals {
            set("CREDBROKER__UPSTREAM__REQUEST_TIMEOUT", "2s");
            set("CREDBROKER__REFRESH__CLOCK_SKEW", "100ms");
        }
        if let Some((url, prefix)) = redis {
            set("CREDBROKER__STORE__REDIS_URL", url);
            set("CREDBROKER__STORE__KEY_PREFIX", prefix);
            set("CREDBROKER__ENCRYPTION__KEY", TEST_KEY);
        }
        env.extend(self.env.iter().cloned());
        Settings::load(self.config_file.as_deref(), env).expect("test settings are valid")
    }
}

/// A running in-process broker; stops when dropped. Derefs to its [`Clients`].
pub struct TestBroker {
    pub addr: SocketAddr,
    clients: Clients,
    /// The broker's own Redis (`Broker::on(StoreKind::Redis)`), and its key prefix.
    pub redis: Option<TestRedis>,
    pub key_prefix: String,
    fake: Option<FakeUpstream>,
    serving: Serving,
}

impl Deref for TestBroker {
    type Target = Clients;
    fn deref(&self) -> &Clients {
        &self.clients
    }
}

impl TestBroker {
    /// The fake upstream its providers call (`.fake()`).
    pub fn fake(&self) -> &FakeUpstream {
        self.fake.as_ref().expect("a broker started with .fake()")
    }

    /// Its own Redis (`Broker::on(StoreKind::Redis)`).
    pub fn redis(&self) -> &TestRedis {
        self.redis.as_ref().expect("a broker started on StoreKind::Redis")
    }

    /// Clients on a connection of their own.
    pub async fn connect(&self) -> Clients {
        Clients::connect(self.addr).await
    }

    /// Signals shutdown; the server then finishes in-flight RPCs and returns.
    pub fn begin_shutdown(&mut self) {
        if let Serving::Application { shutdown, .. } = &mut self.serving {
            shutdown.take().map(|tx| tx.send(()));
        }
    }

    /// The server's end, once it has stopped (after [`TestBroker::begin_shutdown`]).
    pub async fn stopped(&mut self) -> anyhow::Result<()> {
        let Serving::Application { server: Some(server), .. } = &mut self.serving else {
            panic!("only a broker serving its own listener stops, once")
        };
        let result = server.await.expect("the server task ends without panicking");
        self.serving = Serving::Stopped;
        result
    }
}

/// How the broker's gRPC routes are served.
enum Serving {
    /// `Application::run_until_stopped`, as the binary runs it.
    Application {
        shutdown: Option<oneshot::Sender<()>>,
        server: Option<JoinHandle<anyhow::Result<()>>>,
    },
    /// The broker's routes with chosen proxy limits on a listener of the test's; the
    /// application is built (its broker and background work live) but its listener unused.
    ProxyRoutes {
        _application: Box<Application>,
        _stop: oneshot::Sender<()>,
    },
    Stopped,
}

impl Serving {
    async fn application(settings: Settings) -> (SocketAddr, Self) {
        let application = Application::build(settings).await.expect("application builds");
        let addr = application.local_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(application.run_until_stopped(async move {
            let _ = rx.await;
        }));
        (addr, Self::Application { shutdown: Some(tx), server: Some(server) })
    }

    async fn proxy_routes(settings: Settings, proxy: ProxySettings) -> (SocketAddr, Self) {
        let application = Application::build(settings).await.expect("application builds");
        let routes = credbroker::grpc::routes_with_proxy(application.broker(), proxy).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let server = Server::builder().add_routes(routes).serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        });
        tokio::spawn(server);
        (addr, Self::ProxyRoutes { _application: Box::new(application), _stop: stop })
    }
}
