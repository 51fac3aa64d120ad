//! Accepted connections and what is known about their peer, worked out once per connection.
//!
//! Why this shape:
//! - The caller's certificate identity (first URI SAN, else first DNS SAN) cannot change
//!   within a TLS connection, so it is parsed from the certificate once, right after the
//!   handshake, and every request on the connection reads it from [`Peer`] (a request
//!   extension). Parsing the DER on every call cost a measurable share of warm
//!   GetAuthorization under mTLS (`cargo bench --bench grpc_load -- --tls`, docs/performance.md).
//! - Every connection — TLS or plaintext — is set up in its own task under a timeout: a
//!   client that connects and never speaks (no TLS ClientHello, no HTTP/2 preface) is closed
//!   after `server.tls.handshake_timeout` or `server.first_byte_timeout` and holds no task,
//!   buffer or slot of the accept loop meanwhile.

use futures::future::BoxFuture;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tonic::transport::server::Connected;

/// The peer of a connection, in every request's extensions.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: Option<SocketAddr>,
    /// From a verified client certificate (mTLS); `None` without one.
    pub certificate_identity: Option<Arc<str>>,
}

/// An accepted connection (TCP, or TLS over TCP) and its [`Peer`].
pub struct Connection<S> {
    stream: S,
    peer: Peer,
}

impl<S> Connection<S> {
    pub fn new(stream: S, peer: Peer) -> Self {
        Self { stream, peer }
    }
}

impl<S> Connected for Connection<S> {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Connection<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Connection<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Accepted connections, ready for the server to serve.
pub type Incoming<S> = tokio_stream::wrappers::ReceiverStream<io::Result<Connection<S>>>;

/// The streams of accepted connections, one per runtime, and the accept loop that fills them:
/// the caller runs it (startup owns the tasks) until the servers stop polling every stream.
pub type Accepting<S> = (Vec<Incoming<S>>, BoxFuture<'static, ()>);

/// Plaintext connections from `listener`, each handed on once its first byte has arrived;
/// one stream per runtime in `runtimes` (see [`accept`]).
pub fn plaintext(listener: TcpListener, first_byte_timeout: Duration, runtimes: &[Handle]) -> Accepting<TcpStream> {
    accept(listener, first_byte_timeout, runtimes, |tcp, addr| async move {
        // `peek` leaves the byte for HTTP/2 to read.
        tcp.peek(&mut [0u8; 1]).await?;
        Ok(Connection::new(tcp, Peer { addr: Some(addr), certificate_identity: None }))
    })
}

/// Connections from `listener`, spread over `runtimes` in turn: the stream at index `i`
/// yields the connections set up on `runtimes[i]`, to be served there. Each accepted socket
/// moves to its runtime's reactor and is set up by `setup` (a TLS handshake, or waiting for
/// the first byte) in a task of its own there, bounded by `timeout`; failures are logged at
/// debug and dropped. Accepting stops when the server stops polling every stream.
pub fn accept<S, F, Fut>(listener: TcpListener, timeout: Duration, runtimes: &[Handle], setup: F) -> Accepting<S>
where
    S: Send + 'static,
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<Connection<S>>> + Send + 'static,
{
    let (senders, incoming): (Vec<_>, Vec<_>) = runtimes
        .iter()
        .map(|runtime| {
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            ((runtime.clone(), tx), Incoming::new(rx))
        })
        .collect();
    let setup = Arc::new(setup);
    let accept_loop = Box::pin(async move {
        let all_closed = || async {
            for (_, tx) in &senders {
                tx.closed().await;
            }
        };
        for turn in 0usize.. {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                // The server stopped serving: stop accepting (and free the port).
                () = all_closed() => return,
            };
            let (tcp, addr) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            // Off this runtime's reactor, onto the serving runtime's (below).
            let tcp = match tcp.into_std() {
                Ok(tcp) => tcp,
                Err(e) => {
                    tracing::debug!(peer = %addr, error = %e, "connection set-up failed");
                    continue;
                }
            };
            // The next runtime whose server still serves (all of them, until shutdown).
            let open = (0..senders.len()).map(|k| &senders[(turn + k) % senders.len()]).find(|(_, tx)| !tx.is_closed());
            let Some((runtime, tx)) = open.cloned() else { return };
            let setup = setup.clone();
            runtime.spawn(async move {
                let connection = async { setup(TcpStream::from_std(tcp)?, addr).await };
                match tokio::time::timeout(timeout, connection).await {
                    Ok(Ok(connection)) => {
                        let _ = tx.send(Ok(connection)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "connection set-up failed"),
                    Err(_) => tracing::debug!(peer = %addr, "connection closed: nothing received in time"),
                }
            });
        }
    });
    (incoming, accept_loop)
}
