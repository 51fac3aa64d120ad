//! The server's TLS: a rustls acceptor whose configuration is rebuilt when the certificate,
//! key or client CA files change on disk (cert-manager and SPIRE rotate them hourly).
//!
//! Why this shape:
//! - The current `ServerConfig` sits in an `ArcSwap`: every new handshake loads it (one
//!   atomic load), a reload swaps it, and connections already established keep the config
//!   they were made with — nothing is dropped.
//! - Files are polled (content compared, not mtimes: a Kubernetes secret volume swaps a
//!   symlink and keeps old mtimes). A half-written or mismatched pair fails to load and the
//!   previous configuration stays, with a warning.
//! - Each handshake runs in its own task under a timeout ([`super::peer::accept`]): a client
//!   that connects and never speaks must not hold up the accept loop, nor a task, for longer
//!   than that.

use super::identity;
use super::peer::{self, Connection, Peer};
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// `[server.tls]`, validated.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Present: mTLS required, client certificates must chain to this bundle.
    pub client_ca_file: Option<PathBuf>,
    /// How often the files are checked for a change.
    pub reload_interval: Duration,
    /// A connection that has not completed its handshake by then is closed.
    pub handshake_timeout: Duration,
}

/// The files' contents, to tell a change.
#[derive(PartialEq, Eq)]
struct Snapshot(Vec<Vec<u8>>);

fn snapshot(settings: &TlsSettings) -> std::io::Result<Snapshot> {
    let mut files = vec![std::fs::read(&settings.cert_file)?, std::fs::read(&settings.key_file)?];
    if let Some(ca) = &settings.client_ca_file {
        files.push(std::fs::read(ca)?);
    }
    Ok(Snapshot(files))
}

/// Builds a rustls server configuration from the files: what a reload does, and what
/// configuration validation tries once so that a bad file stops start-up with its key named.
pub fn load(settings: &TlsSettings) -> Result<ServerConfig, String> {
    let snap = snapshot(settings).map_err(|e| format!("cannot read: {e}"))?;
    build(&snap)
}

fn build(snap: &Snapshot) -> Result<ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&snap.0[0])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("server.tls.cert_file: not a PEM certificate chain: {e}"))?;
    if certs.is_empty() {
        return Err("server.tls.cert_file: no certificate in the file".into());
    }
    // Never echo the key file's content, only that it is unusable.
    let key = PrivateKeyDer::from_pem_slice(&snap.0[1])
        .map_err(|_| "server.tls.key_file: no PEM private key in the file".to_owned())?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("server.tls: {e}"))?;
    let builder = match snap.0.get(2) {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, provider)?),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("server.tls.key_file: does not fit the certificate, or unusable: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

fn client_verifier(
    pem: &[u8],
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("server.tls.client_ca_file: not PEM certificates: {e}"))?;
        roots.add(cert).map_err(|e| format!("server.tls.client_ca_file: unusable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("server.tls.client_ca_file: no certificate in the file".into());
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| format!("server.tls.client_ca_file: {e}"))
}

/// The acceptor with the current configuration; see the module documentation.
pub struct ReloadingTls {
    settings: TlsSettings,
    current: ArcSwap<ServerConfig>,
}

impl ReloadingTls {
    pub fn new(settings: TlsSettings) -> Result<Arc<Self>, String> {
        let config = load(&settings)?;
        Ok(Arc::new(Self { settings, current: ArcSwap::from_pointee(config) }))
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// Polls the files until the acceptor is dropped, swapping the configuration when their
    /// content changes and loads.
    pub async fn watch(self: Arc<Self>) {
        let weak = Arc::downgrade(&self);
        let interval = self.settings.reload_interval;
        let mut seen = snapshot(&self.settings).ok();
        drop(self);
        loop {
            tokio::time::sleep(interval).await;
            let Some(tls) = weak.upgrade() else { return };
            let now = match snapshot(&tls.settings) {
                Ok(now) if Some(&now) != seen.as_ref() => now,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "server.tls: cannot read the certificate files; keeping the current ones");
                    continue;
                }
            };
            match build(&now) {
                Ok(config) => {
                    tls.current.store(Arc::new(config));
                    tracing::info!("server.tls: certificate files changed; new handshakes use them");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "server.tls: changed files do not load (yet); keeping the current ones")
                }
            }
            seen = Some(now);
        }
    }

    /// TLS connections from `listener`, each with its client certificate's identity read
    /// once (see [`super::peer`]); handshakes are bounded by the handshake timeout. One
    /// stream per runtime in `runtimes` (see [`peer::accept`]).
    pub fn incoming(
        self: Arc<Self>,
        listener: TcpListener,
        runtimes: &[Handle],
    ) -> peer::Accepting<TlsStream<TcpStream>> {
        let timeout = self.settings.handshake_timeout;
        peer::accept(listener, timeout, runtimes, move |tcp, addr| {
            let acceptor = self.acceptor();
            async move {
                let stream = acceptor.accept(tcp).await?;
                let certificate_identity = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(identity::from_certificate)
                    .map(Arc::from);
                Ok(Connection::new(stream, Peer { addr: Some(addr), certificate_identity }))
            }
        })
    }
}
