//! A Redis for one test: a fresh container of the local image `credbroker-redis:7` (built by
//! `scripts/redis-image.sh`; no registry is reachable), or the server `REDIS_URL` names.

use credbroker::store::{RedisStore, RedisStoreConfig};
use std::time::Duration;
use testcontainers_modules::redis::{REDIS_PORT, Redis};
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};

/// The local image built by `scripts/redis-image.sh`.
pub const REDIS_IMAGE: (&str, &str) = ("credbroker-redis", "7");

pub struct TestRedis {
    pub url: String,
    /// `None` with `REDIS_URL`: a test that stops its Redis needs a container of its own.
    pub container: Option<ContainerAsync<Redis>>,
}

impl TestRedis {
    pub async fn start() -> Self {
        if let Ok(url) = std::env::var("REDIS_URL") {
            return Self { url, container: None };
        }
        let container = Redis::default().with_name(REDIS_IMAGE.0).with_tag(REDIS_IMAGE.1).start().await.unwrap_or_else(|e| {
            panic!(
                "the Redis tests need a Docker engine with the local image {}:{} (built by scripts/redis-image.sh), \
                 or REDIS_URL pointing at a Redis 7 server: {e}",
                REDIS_IMAGE.0, REDIS_IMAGE.1
            )
        });
        let port = container.get_host_port_ipv4(REDIS_PORT).await.expect("redis port is published");
        Self { url: format!("redis://127.0.0.1:{port}"), container: Some(container) }
    }

    /// A plain connection for the test itself, without a response timeout (tests stall Redis
    /// on purpose).
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let client = redis::Client::open(self.url.as_str()).unwrap();
        client.get_multiplexed_async_connection_with_config(&config).await.unwrap()
    }

    /// Stops its container (the broker's Redis goes away).
    pub async fn stop(&self) {
        let container =
            self.container.as_ref().expect("this test stops its own Redis container; run it without REDIS_URL");
        container.stop().await.unwrap();
    }

    /// A store on it under `prefix`, used directly (no broker).
    pub fn store(&self, prefix: &str) -> RedisStore {
        redis_store(&self.url, prefix)
    }
}

/// A store on the Redis at `url` under `prefix`, with 2 s timeouts.
pub fn redis_store(url: &str, prefix: &str) -> RedisStore {
    RedisStore::new(RedisStoreConfig {
        url: url.to_owned(),
        cluster: false,
        key_prefix: prefix.to_owned(),
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .unwrap()
}
