//! The listeners: plaintext or TLS, with the `[server]` connection limits, and the start-up
//! warnings about what is left open.

use crate::config::ServerSettings;
use crate::security::SecuritySettings;
use crate::security::peer;
use crate::security::tls::ReloadingTls;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;

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

    /// Serves `routes` until `shutdown` resolves, with the HTTP/2 limits of `[server]`.
    pub async fn serve(
        self,
        routes: Routes,
        server: &ServerSettings,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), tonic::transport::Error> {
        let mut builder = Server::builder()
            .max_concurrent_streams(server.max_concurrent_streams)
            .http2_keepalive_interval(Some(server.keepalive_interval))
            .http2_keepalive_timeout(Some(server.keepalive_timeout))
            // Frames up to 128 KiB instead of HTTP/2's default 16 KiB: a ProxyCallStream
            // body's 64 KiB messages arrive in one frame, not four (docs/performance.md, 7).
            .max_frame_size(Some(MAX_FRAME_SIZE))
            // Every call's server span has the caller's trace as parent; every call is timed.
            .trace_fn(crate::telemetry::rpc_trace::server_span)
            .layer(crate::telemetry::rpc_metrics::RpcMetricsLayer);
        let router = builder.add_routes(routes);
        match self.tls {
            None => {
                let incoming = peer::plaintext(self.tcp, server.first_byte_timeout);
                router.serve_with_incoming_shutdown(incoming, shutdown).await
            }
            Some(tls) => router.serve_with_incoming_shutdown(tls.incoming(self.tcp), shutdown).await,
        }
    }
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
