//! One connection type for a single Redis server or a Redis Cluster.
//!
//! Both connect lazily (the broker starts, and serves cached headers, while Redis is down) and
//! reconnect by themselves. In a cluster, scripts are routed by their first key's slot: every
//! key of one credential shares a hash tag, so the journal's multi-key scripts stay atomic.

use super::{StoreError, StoreResult};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
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
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How to connect, decided once from configuration.
#[derive(Clone)]
pub enum Connector {
    Single { client: redis::Client, manager: Arc<OnceCell<ConnectionManager>> },
    Cluster { client: ClusterClient, connection: Arc<OnceCell<ClusterConnection>> },
}

impl Connector {
    pub fn new(
        url: &str,
        cluster: bool,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> redis::RedisResult<Self> {
        if !cluster {
            return Ok(Self::Single { client: redis::Client::open(url)?, manager: Arc::new(OnceCell::new()) });
        }
        let client = ClusterClient::builder(vec![url])
            .connection_timeout(connect_timeout)
            .response_timeout(response_timeout)
            .build()?;
        Ok(Self::Cluster { client, connection: Arc::new(OnceCell::new()) })
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
            Self::Cluster { client, connection } => {
                let connection =
                    connection.get_or_try_init(|| client.get_async_connection()).await.map_err(unavailable)?;
                Ok(Conn::Cluster(connection.clone()))
            }
        }
    }
}
