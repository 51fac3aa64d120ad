//! Redis for the tests: a container of the local image (or the server `REDIS_URL` names),
//! `redis-server` processes on loopback (primaries, replicas, sentinels), a Redis Cluster.

mod cluster;
mod container;
mod nodes;

pub use cluster::LocalCluster;
pub use container::{TestRedis, redis_store};
pub use nodes::{MASTER, RedisNode};
