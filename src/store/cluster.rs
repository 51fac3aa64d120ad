//! Redis Cluster: one redis-rs cluster connection, rebuilt when a node stops answering, and
//! scripts loaded on the node that runs them.
//!
//! redis-rs (1.x) repairs its slot map only while it retries a request: after a `MOVED`, or a
//! dropped connection. A node that hangs (SIGSTOP, a partition, a dead host whose packets
//! vanish) never drops the connection: each command waits out the response timeout, which is
//! also the whole request's timeout, and a request whose caller has given up is discarded
//! with its repair. So after its replica was promoted, a connection kept sending that slot's
//! commands to the silent old master — every refresh of that credential failed "store
//! unavailable" for as long as the node stayed silent, while a process with a fresh
//! connection used the promoted master at once. Hence, as with Sentinel: every connection
//! handed out carries its generation; an error that says a node is gone or silent (I/O,
//! timeout, no connection, `CLUSTERDOWN`) retires the generation, and the next command
//! builds a new connection, whose slot map comes from whichever node answers. It starts from
//! every node the last slot map named (the configured one may be the node that died).
//!
//! `SCRIPT LOAD` in a cluster goes to every node and fails if any one is unreachable; after a
//! promotion the new master may not have a script (`NOSCRIPT`), and loading it everywhere
//! failed while the old master was down. A `SCRIPT LOAD` sent on a connection after a script
//! invocation (the redis crate's NOSCRIPT path) goes to the master of that script's slot.

use super::target::RedisAccess;
use futures::future::BoxFuture;
use redis::aio::ConnectionLike;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Arg, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisError, RedisFuture};
use redis::{RedisResult, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Builds cluster connections; hands out the current one.
#[derive(Clone)]
pub struct ClusterConnector {
    shared: Arc<Shared>,
}

struct Shared {
    /// The configured node: scheme, TLS and credentials for every node we start from.
    origin: ConnectionInfo,
    access: RedisAccess,
    connect_timeout: Duration,
    response_timeout: Duration,
    /// Where a new connection starts: the configured node, then every node the last slot map
    /// named. A std mutex: held only to clone or replace, never across an await.
    seeds: Mutex<Vec<(String, u16)>>,
    /// The current generation and its connection, made by the first caller that needs it.
    current: Mutex<(u64, Arc<OnceCell<ClusterConnection>>)>,
}

impl ClusterConnector {
    /// Checks the URL; does not connect.
    pub fn new(
        url: &str,
        access: &RedisAccess,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> RedisResult<Self> {
        let origin = access.connection_info(url.into_connection_info()?);
        let seeds = Mutex::new(address(origin.addr()).into_iter().collect());
        let shared = Shared {
            origin,
            access: access.clone(),
            connect_timeout,
            response_timeout,
            seeds,
            current: Mutex::new((0, Arc::new(OnceCell::new()))),
        };
        // Fail on a bad configuration now, not at the first command.
        shared.client()?;
        Ok(Self { shared: Arc::new(shared) })
    }

    /// The current connection, built on first use. Boxed: the cluster client's futures are
    /// deep, and every store future would otherwise embed them.
    pub fn connect(&self) -> BoxFuture<'_, RedisResult<ClusterConn>> {
        Box::pin(async move {
            let (generation, cell) = self.shared.current.lock().expect("not poisoned").clone();
            let connection = cell.get_or_try_init(|| self.shared.open()).await?.clone();
            Ok(ClusterConn { connection, generation, shared: self.shared.clone(), script_route: None })
        })
    }
}

impl Shared {
    fn client(&self) -> RedisResult<ClusterClient> {
        let seeds = self.seeds.lock().expect("not poisoned").clone();
        let nodes = seeds
            .into_iter()
            .map(|(host, port)| self.origin.clone().set_addr(with_host(self.origin.addr(), host, port)));
        let mut builder = ClusterClient::builder(nodes.collect::<Vec<_>>())
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.response_timeout);
        if let Some(username) = &self.access.username {
            builder = builder.username(username);
        }
        if let Some(password) = &self.access.password {
            builder = builder.password(password.expose());
        }
        if let Some(tls) = &self.access.tls {
            builder = builder.certs(self.access.certificates(tls));
        }
        builder.build()
    }

    /// A new connection; then the nodes its slot map names become the seeds of the next one.
    async fn open(&self) -> RedisResult<ClusterConnection> {
        let mut connection = self.client()?.get_async_connection().await?;
        let slots = connection
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await;
        if let Ok(slots) = slots {
            let mut seeds: Vec<(String, u16)> = address(self.origin.addr()).into_iter().collect();
            for node in nodes_of(&slots, self.origin.addr()) {
                if !seeds.contains(&node) {
                    seeds.push(node);
                }
            }
            *self.seeds.lock().expect("not poisoned") = seeds;
        }
        Ok(connection)
    }

    /// Retires `generation`: the next command builds a new connection.
    fn retire(&self, generation: u64, error: &RedisError) {
        let mut current = self.current.lock().expect("not poisoned");
        if current.0 == generation {
            tracing::warn!(error = %error, "redis cluster node lost; rebuilding the cluster connection");
            *current = (generation + 1, Arc::new(OnceCell::new()));
        }
    }
}

/// `host:port` of an address (none for a Unix socket, which a cluster cannot use).
fn address(addr: &ConnectionAddr) -> Option<(String, u16)> {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => Some((host.clone(), *port)),
        _ => None,
    }
}

/// `addr` moved to `host:port`, keeping its TLS settings.
fn with_host(addr: &ConnectionAddr, host: String, port: u16) -> ConnectionAddr {
    match addr {
        ConnectionAddr::TcpTls { insecure, tls_params, .. } => {
            ConnectionAddr::TcpTls { host, port, insecure: *insecure, tls_params: tls_params.clone() }
        }
        _ => ConnectionAddr::Tcp(host, port),
    }
}

/// Every node of a `CLUSTER SLOTS` reply (`[[first, last, [host, port, id, …], …], …]`); an
/// empty host means the node that answered, which we reach under the configured host.
fn nodes_of(slots: &Value, origin: &ConnectionAddr) -> Vec<(String, u16)> {
    let fallback = address(origin).map(|(host, _)| host).unwrap_or_default();
    let Value::Array(ranges) = slots else { return Vec::new() };
    let mut nodes = Vec::new();
    for range in ranges {
        let Value::Array(parts) = range else { continue };
        for node in parts.iter().skip(2) {
            let Value::Array(fields) = node else { continue };
            let (Some(host), Some(port)) = (fields.first(), fields.get(1)) else { continue };
            let (Ok(host), Ok(port)) =
                (redis::from_redis_value_ref::<String>(host), redis::from_redis_value_ref::<u16>(port))
            else {
                continue;
            };
            let host = if host.is_empty() || host == "?" { fallback.clone() } else { host };
            if !nodes.contains(&(host.clone(), port)) {
                nodes.push((host, port));
            }
        }
    }
    nodes
}

/// Errors after which the slot map may name a node that is gone or silent.
fn node_lost(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_timeout()
        || error.kind() == redis::ErrorKind::ClusterConnectionNotFound
        || matches!(error.code(), Some("CLUSTERDOWN" | "MASTERDOWN"))
}

/// The cluster connection of one generation. Its failures that mean "a node is gone" retire
/// the generation; it remembers the slot of the last script it ran, where a `SCRIPT LOAD`
/// after it belongs.
#[derive(Clone)]
pub struct ClusterConn {
    connection: ClusterConnection,
    generation: u64,
    shared: Arc<Shared>,
    script_route: Option<Route>,
}

impl ClusterConn {
    fn observe<T>(&self, result: &RedisResult<T>) {
        if let Err(error) = result
            && node_lost(error)
        {
            self.shared.retire(self.generation, error);
        }
    }

    /// Notes the slot of a script invocation (`EVALSHA`/`EVAL` with at least one key).
    fn note_script(&mut self, cmd: &Cmd) {
        let args: Vec<&[u8]> = cmd
            .args_iter()
            .take(4)
            .filter_map(|a| match a {
                Arg::Simple(bytes) => Some(bytes),
                _ => None,
            })
            .collect();
        if let [name, _, keys, first_key] = args[..]
            && (name.eq_ignore_ascii_case(b"EVALSHA") || name.eq_ignore_ascii_case(b"EVAL"))
            && keys != b"0"
        {
            self.script_route = Some(Route::with_key(first_key, SlotAddr::Master));
        }
    }

    /// Where this command goes instead of its default route: `SCRIPT LOAD` to the node of
    /// the script that needs it.
    fn script_load_route(&self, cmd: &Cmd) -> Option<RoutingInfo> {
        let mut args = cmd.args_iter();
        let (Some(Arg::Simple(name)), Some(Arg::Simple(sub))) = (args.next(), args.next()) else { return None };
        let load = name.eq_ignore_ascii_case(b"SCRIPT") && sub.eq_ignore_ascii_case(b"LOAD");
        let route = self.script_route?;
        load.then_some(RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)))
    }
}

impl ConnectionLike for ClusterConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.note_script(cmd);
        Box::pin(async move {
            let result = match self.script_load_route(cmd) {
                Some(routing) => self.connection.route_command(cmd.clone(), routing).await,
                None => self.connection.req_packed_command(cmd).await,
            };
            self.observe(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        for cmd in pipeline.cmd_iter() {
            self.note_script(cmd);
        }
        Box::pin(async move {
            let result = self.connection.req_packed_commands(pipeline, offset, count).await;
            self.observe(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.connection.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_of_the_slot_map_is_a_seed() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![Value::BulkString(host.into()), Value::Int(port), Value::BulkString(b"id".to_vec())])
        };
        let slots = Value::Array(vec![
            Value::Array(vec![Value::Int(0), Value::Int(5460), node("10.0.0.1", 7000), node("10.0.0.4", 7003)]),
            Value::Array(vec![Value::Int(5461), Value::Int(16383), node("", 7001)]),
        ]);
        let origin = ConnectionAddr::Tcp("redis.internal".into(), 7000);
        let nodes = nodes_of(&slots, &origin);
        assert_eq!(nodes, [("10.0.0.1".into(), 7000), ("10.0.0.4".into(), 7003), ("redis.internal".to_owned(), 7001)]);
    }
}
