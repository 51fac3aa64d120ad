//! The accept loop. Connections are served with hyper by hand, not with `axum::serve`, so
//! that a handler can cut its own connection mid-request: that is how the fake loses a reply
//! after committing a refresh, which a client sees as an incomplete message.

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Put into every request's extensions: lets the handler close the connection it came on.
#[derive(Clone, Debug)]
pub(crate) struct Connection {
    cut: CancellationToken,
}

impl Connection {
    /// Closes the connection without a reply. The calling handler's future is dropped with
    /// the connection, so call this last and then wait forever.
    pub(crate) async fn cut(&self) -> ! {
        self.cut.cancel();
        hang().await
    }
}

/// Never returns; used for the "hang" failure modes and after cutting a connection.
pub(crate) async fn hang() -> ! {
    std::future::pending::<()>().await;
    unreachable!("pending() never completes")
}

/// Serves `router` on `listener` until `stop` is cancelled; the task ends when every
/// connection (hung ones included) has been closed.
pub(crate) fn spawn(listener: TcpListener, router: Router, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let connections = TaskTracker::new();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => {
                    // Accept errors (e.g. too many open files) are transient; keep serving.
                    if let Ok((stream, _)) = accepted {
                        connections.spawn(serve(stream, router.clone(), stop.clone()));
                    }
                }
            }
        }
        connections.close();
        connections.wait().await;
    })
}

async fn serve(stream: TcpStream, router: Router, stop: CancellationToken) {
    let connection = Connection { cut: CancellationToken::new() };
    let cut = connection.cut.clone();
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(connection.clone());
        router.clone().oneshot(request)
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let serving = builder.serve_connection(TokioIo::new(stream), service);
    // Dropping `serving` drops the socket (and the handler future inside it) at once,
    // with no response written: the peer reads EOF in the middle of its exchange.
    tokio::select! {
        _ = serving => {}
        _ = cut.cancelled() => {}
        _ = stop.cancelled() => {}
    }
}
