//! One single-threaded runtime per core for the main listener's connections (`server.cores`;
//! default one per core the process may use, 0: none, connections are served on the shared
//! work-stealing runtime that runs everything else).
//!
//! Why: a proxied call crosses three tasks — the caller's HTTP/2 connection, its stream's
//! handler, the upstream connection — and on a work-stealing runtime each hand-over may wake
//! another thread (a futex, an inter-processor wake-up, cache lines moving). Pinned to one
//! runtime per core, a connection's tasks wake each other on the thread they are on
//! (docs/performance.md, step 10). The accept loop hands each new connection to the next
//! runtime in turn, so a few long-lived connections (gRPC channels) are spread evenly, which
//! `SO_REUSEPORT`'s hashing does not promise. One connection's calls all run on one core,
//! as in nginx's workers; on the bench's 2-core machine a single connection was not slower
//! than on the shared runtime, and a streamed transfer was not measurably slower either.
//!
//! The runtimes live until the `Cores` is dropped — after the server has drained and running
//! renewals have ended — because tasks a request spawned (a renewal that must not be cut in
//! half) run on the runtime of that request.

use std::io;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

pub(super) struct Cores {
    /// Empty: no runtimes of their own; connections are served on the shared runtime.
    handles: Vec<Handle>,
    /// Dropping these lets each core's thread return and drop its runtime.
    _release: Vec<oneshot::Sender<()>>,
}

impl Cores {
    /// `n` runtimes, each driven by a thread of its own (none for 0).
    pub fn start(n: usize) -> io::Result<Self> {
        let (mut handles, mut release) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (tx, rx) = oneshot::channel::<()>();
            handles.push(runtime.handle().clone());
            release.push(tx);
            // `block_on` of the runtime itself (not of a handle) is what runs its spawned tasks.
            std::thread::Builder::new().name(format!("credbroker-core-{i}")).spawn(move || {
                runtime.block_on(async {
                    let _ = rx.await;
                })
            })?;
        }
        Ok(Self { handles, _release: release })
    }

    /// Where connections are served: these runtimes, or (with none) the current one.
    pub fn runtimes(&self) -> Vec<Handle> {
        if self.handles.is_empty() { vec![Handle::current()] } else { self.handles.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::peer;
    use futures::StreamExt;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// Four connections over two runtimes: two each, whatever their ports hash to.
    #[tokio::test]
    async fn connections_are_dealt_to_the_runtimes_in_turn() {
        let cores = Cores::start(2).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mut incoming, accepting) = peer::plaintext(listener, Duration::from_secs(10), &cores.runtimes());
        tokio::spawn(accepting);
        let mut clients = Vec::new();
        for _ in 0..4 {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(b"x").await.unwrap(); // the first byte: the connection is handed on
            clients.push(client);
        }
        for (i, stream) in incoming.iter_mut().enumerate() {
            for n in 0..2 {
                let next = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
                next.unwrap_or_else(|_| panic!("runtime {i} got only {n} connections")).unwrap().unwrap();
            }
        }
    }

    #[tokio::test]
    async fn without_cores_connections_are_served_where_they_are_accepted() {
        let cores = Cores::start(0).unwrap();
        assert_eq!(cores.runtimes().len(), 1);
    }
}
