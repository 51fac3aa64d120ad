//! One connection type for a single Redis server, a Redis Cluster, or the master that Redis
//! Sentinel names (`sentinel.rs`), each with TLS and ACL credentials (`target.rs`).
//!
//! All connect lazily (the broker starts, and serves cached headers, while Redis is down) and
//! reconnect by themselves. In a cluster, scripts are routed by their first key's slot: every
//! key of one credential shares a hash tag, so the journal's multi-key scripts stay atomic.
//!
//! A cluster connection is rebuilt when a node stops answering (`cluster.rs`): redis-rs
//! refreshes its slot map only while it retries a request, and a request whose caller timed
//! out is never retried, so a connection pointed at a hung or unreachable master stayed
//! pointed at it after its replica was promoted.

use super::cluster::{ClusterConn, ClusterConnector};
use super::sentinel::{SentinelConn, SentinelConnector};
use super::target::{RedisAccess, SentinelSettings};
use super::{StoreError, StoreResult};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConn),
    Sentinel(SentinelConn),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Sentinel(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
        }
    }
}

/// Where Redis is, as configuration names it.
#[derive(Debug, Clone, Copy)]
pub enum Topology<'a> {
    /// One server (or a primary with replicas behind a fixed address).
    Single(&'a str),
    /// One node of a Redis Cluster; the others are discovered.
    Cluster(&'a str),
    Sentinel(&'a SentinelSettings),
}

/// How to connect, decided once from configuration.
#[derive(Clone)]
pub enum Connector {
    Single { client: redis::Client, manager: Arc<OnceCell<ConnectionManager>> },
    Cluster(ClusterConnector),
    Sentinel(SentinelConnector),
}

impl Connector {
    pub fn new(
        topology: Topology<'_>,
        access: &RedisAccess,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> redis::RedisResult<Self> {
        Ok(match topology {
            Topology::Single(url) => Self::Single { client: access.client(url)?, manager: Arc::new(OnceCell::new()) },
            Topology::Cluster(url) => {
                Self::Cluster(ClusterConnector::new(url, access, connect_timeout, response_timeout)?)
            }
            Topology::Sentinel(sentinel) => {
                Self::Sentinel(SentinelConnector::new(sentinel, access, connect_timeout, response_timeout)?)
            }
        })
    }

    pub async fn connect(&self, connect_timeout: Duration, response_timeout: Duration) -> StoreResult<Conn> {
        let unavailable = |e: redis::RedisError| StoreError::Unavailable(Box::new(e));
        match self {
            Self::Single { client, manager } => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout))
                    .set_number_of_retries(2);
                let manager = manager
                    .get_or_try_init(|| client.get_connection_manager_with_config(config))
                    .await
                    .map_err(unavailable)?;
                Ok(Conn::Single(manager.clone()))
            }
            Self::Cluster(cluster) => cluster.connect().await.map(Conn::Cluster).map_err(unavailable),
            Self::Sentinel(sentinel) => sentinel.connect().await.map(Conn::Sentinel).map_err(unavailable),
        }
    }

    /// With Sentinel, a client for the master the sentinels name now (pub/sub opens its own
    /// connection); `None` otherwise.
    pub async fn master_client(&self) -> Option<redis::RedisResult<redis::Client>> {
        match self {
            Self::Sentinel(sentinel) => Some(sentinel.master_client().await),
            _ => None,
        }
    }
}
