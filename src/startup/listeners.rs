//! The listeners: plaintext or TLS, with the `[server]` connection limits, and the start-up
//! warnings about what is left open.

use super::tasks::Tasks;
use crate::config::ServerSettings;
use crate::security::SecuritySettings;
use crate::security::peer;
use crate::security::peer::Incoming;
use crate::security::tls::ReloadingTls;
use crate::telemetry::rpc_metrics::RpcMetricsLayer;
use futures::future::{BoxFuture, Shared};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tonic::service::Routes;
use tonic::transport::Server;
use tower::layer::util::{Identity, Stack};

/// The largest HTTP/2 frame callers may send (SETTINGS_MAX_FRAME_SIZE).
const MAX_FRAME_SIZE: u32 = 128 * 1024;

/// A bound listener, and the TLS its connections get (if any).
pub(super) struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<Arc<ReloadingTls>>,
}

impl Listener {
    pub async fn bind(addr: SocketAddr, tls: Option<Arc<ReloadingTls>>) -> anyhow::Result<Self> {
        let tcp = TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
        Ok(Self { tcp, tls })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.tcp.local_addr().expect("a bound listener has an address")
    }

    /// Serves `routes` until `shutdown` resolves, with the HTTP/2 limits of `[server]`: each
    /// connection on one of `runtimes`, in turn (one server per runtime; see `cores.rs`).
    /// The accept loop and the servers run as `tasks`.
    pub async fn serve(
        self,
        routes: Routes,
        server: &ServerSettings,
        shutdown: Shutdown,
        (runtimes, tasks): (&[Handle], &Tasks),
    ) -> Result<(), tonic::transport::Error> {
        match self.tls {
            None => {
                let (incoming, accepting) = peer::plaintext(self.tcp, server.first_byte_timeout, runtimes);
                tasks.spawn("accept loop", accepting);
                serve_on((runtimes, tasks), incoming, routes, server, shutdown).await
            }
            Some(tls) => {
                let (incoming, accepting) = tls.incoming(self.tcp, runtimes);
                tasks.spawn("accept loop", accepting);
                serve_on((runtimes, tasks), incoming, routes, server, shutdown).await
            }
        }
    }
}

/// Resolves when the server should stop accepting; every runtime's server waits on a clone.
pub(super) type Shutdown = Shared<BoxFuture<'static, ()>>;

/// One server per runtime, each serving the connections of its `incoming`, until all ended.
async fn serve_on<S>(
    (runtimes, tasks): (&[Handle], &Tasks),
    incoming: Vec<Incoming<S>>,
    routes: Routes,
    server: &ServerSettings,
    shutdown: Shutdown,
) -> Result<(), tonic::transport::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let servers = runtimes.iter().zip(incoming).map(|(runtime, incoming)| {
        let router = builder(server).add_routes(routes.clone());
        tasks.spawn_on("server", router.serve_with_incoming_shutdown(incoming, shutdown.clone()), runtime)
    });
    // Dropped (the grace period ran out), the servers and their connections go on until the
    // drain stops the tasks, after the running renewals.
    for served in futures::future::join_all(servers.collect::<Vec<_>>()).await {
        let served = served.expect("a server task ends by itself: no panic, its runtime still running");
        served.unwrap_or(Ok(()))?;
    }
    Ok(())
}

/// The server with the HTTP/2 limits of `[server]`.
fn builder(server: &ServerSettings) -> Server<Stack<RpcMetricsLayer, Identity>> {
    Server::builder()
        .max_concurrent_streams(server.max_concurrent_streams)
        .http2_keepalive_interval(Some(server.keepalive_interval))
        .http2_keepalive_timeout(Some(server.keepalive_timeout))
        // Frames up to 128 KiB instead of HTTP/2's default 16 KiB: a ProxyCallStream
        // body's 64 KiB messages arrive in one frame, not four (docs/performance.md, 7).
        .max_frame_size(Some(MAX_FRAME_SIZE))
        // Every call's server span has the caller's trace as parent; every call is timed.
        .trace_fn(crate::telemetry::rpc_trace::server_span)
        .layer(RpcMetricsLayer)
}

/// Says, at every start, what protects this broker — and loudly when nothing does.
pub(super) fn announce(server: &ServerSettings, security: &SecuritySettings) {
    let mtls = server.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some());
    match (&server.tls, &security.policy) {
        (Some(_), Some(policy)) => tracing::info!(mtls, rules = policy.rules.len(), "TLS on; policy enforced"),
        _ if server.allow_insecure => tracing::warn!(
            tls = server.tls.is_some(),
            policy = security.policy.is_some(),
            "server.allow_insecure = true: serving without TLS or without policy on purpose"
        ),
        (_, None) => tracing::warn!(
            tls = server.tls.is_some(),
            "no [[policy]]: every caller may fetch every credential (unauthenticated; fine on loopback only)"
        ),
        (None, Some(_)) => tracing::warn!("no [server.tls]: callers are identified by bearer tokens sent in plaintext"),
    }
    if security.audit.is_none() {
        tracing::info!("no [audit]: decisions are not recorded");
    }
}
