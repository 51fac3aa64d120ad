//! Redis Sentinel: the sentinels say which node is the master; we keep one multiplexed
//! connection to it and ask again when it stops being one.
//!
//! The redis crate finds and verifies the master (`ROLE` must say master) but does not
//! follow a failover by itself. So every connection handed out carries the generation it was
//! made in; an error that says the node is gone (I/O, dropped connection) or demoted
//! (`READONLY`, `MASTERDOWN`) retires that generation, and the next command asks the
//! sentinels again. A command that fails this way is not retried here: the store reports it
//! unavailable and its caller decides (a refresh journal write that failed sends nothing).

use super::target::{RedisAccess, SentinelSettings, sentinel_addr};
use futures::future::BoxFuture;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Finds the master through the sentinels and keeps a connection to it.
#[derive(Clone)]
pub struct SentinelConnector {
    /// Behind a tokio mutex: asking the sentinels is async, and one ask at a time is enough.
    client: Arc<tokio::sync::Mutex<SentinelClient>>,
    /// The connection to the current master and its generation. A std mutex: held only to
    /// clone or swap, never across an await.
    current: Arc<Mutex<Slot>>,
    config: AsyncConnectionConfig,
}

#[derive(Default)]
struct Slot {
    generation: u64,
    connection: Option<MultiplexedConnection>,
}

impl SentinelConnector {
    pub fn new(
        sentinel: &SentinelSettings,
        access: &RedisAccess,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> RedisResult<Self> {
        let addresses = sentinel.addresses.iter().map(|a| sentinel_addr(a));
        let mut builder = SentinelClientBuilder::new(addresses, &sentinel.master_name, SentinelServerType::Master)?;
        if let Some(username) = &access.username {
            builder = builder.set_client_to_redis_username(username);
        }
        if let Some(password) = &access.password {
            builder = builder.set_client_to_redis_password(password.expose());
        }
        if let (Some(tls), Some(mode)) = (&access.tls, access.tls_mode()) {
            builder =
                builder.set_client_to_redis_tls_mode(mode).set_client_to_redis_certificates(access.certificates(tls));
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout));
        Ok(Self {
            client: Arc::new(tokio::sync::Mutex::new(builder.build()?)),
            current: Arc::new(Mutex::new(Slot::default())),
            config,
        })
    }

    /// A connection to the current master, asking the sentinels if we have none. Boxed: the
    /// sentinel client's types are deep, and every store future would otherwise embed them.
    pub fn connect(&self) -> BoxFuture<'_, RedisResult<SentinelConn>> {
        match self.cached() {
            Some(conn) => Box::pin(std::future::ready(Ok(conn))),
            None => Box::pin(self.discover()),
        }
    }

    async fn discover(&self) -> RedisResult<SentinelConn> {
        let mut client = self.client.lock().await;
        // Another task may have reconnected while we waited for the lock.
        if let Some(conn) = self.cached() {
            return Ok(conn);
        }
        let master = client.async_get_client().await?;
        let connection = master.get_multiplexed_async_connection_with_config(&self.config).await?;
        let mut slot = self.current.lock().expect("not poisoned");
        slot.generation += 1;
        slot.connection = Some(connection.clone());
        Ok(SentinelConn { inner: connection, generation: slot.generation, slot: self.current.clone() })
    }

    /// A client for the current master (pub/sub opens its own connection).
    pub fn master_client(&self) -> BoxFuture<'_, RedisResult<redis::Client>> {
        Box::pin(async move { self.client.lock().await.async_get_client().await })
    }

    fn cached(&self) -> Option<SentinelConn> {
        let slot = self.current.lock().expect("not poisoned");
        let inner = slot.connection.clone()?;
        Some(SentinelConn { inner, generation: slot.generation, slot: self.current.clone() })
    }
}

/// A connection to the master of one generation; its failures that mean "not the master any
/// more" retire the generation.
#[derive(Clone)]
pub struct SentinelConn {
    inner: MultiplexedConnection,
    generation: u64,
    slot: Arc<Mutex<Slot>>,
}

impl SentinelConn {
    fn observe<T>(&self, result: &RedisResult<T>) {
        let Err(error) = result else { return };
        if !master_lost(error) {
            return;
        }
        let mut slot = self.slot.lock().expect("not poisoned");
        if slot.generation == self.generation && slot.connection.is_some() {
            tracing::warn!(error = %error, "redis master lost; asking the sentinels again");
            slot.connection = None;
        }
    }
}

/// Errors after which this node is not (or no longer reachably) the master.
fn master_lost(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_unrecoverable_error()
        || error.is_timeout()
        || matches!(error.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = self.inner.req_packed_command(cmd).await;
            self.observe(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = self.inner.req_packed_commands(cmd, offset, count).await;
            self.observe(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}
