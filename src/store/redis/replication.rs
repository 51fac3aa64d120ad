//! Writes that survive a failover (`store.journal_replicas`).
//!
//! Redis replicates asynchronously: a write acknowledged by a primary that dies before
//! shipping it is gone after Sentinel promotes a replica. For the refresh journal that means
//! a RESERVE forgotten — and another replica free to send the same refresh token — or a
//! COMMIT forgotten, and the newest refresh token with it. So with `journal_replicas = N`
//! every write script is followed by `WAIT N timeout` **in the same pipeline**: WAIT counts
//! the replicas that have everything *this connection* wrote, so it must travel on the
//! connection that carried the write (a reconnect in between would make a fresh connection's
//! WAIT answer at once, with nothing to wait for). A pipeline is sent as one unit on one
//! connection, and fails as one if that connection drops.
//!
//! WAIT blocks the connection it is sent on, so these writes have a connection of their own
//! (`RedisStore::durable`); reads never queue behind a WAIT.
//!
//! With a Redis Cluster the pipeline goes to the master of the credential's slot (its first
//! keyed command decides), so WAIT counts that shard's replicas: the replicas that can be
//! promoted in its place.

use super::{RedisStore, unavailable};
use crate::store::{StoreError, StoreResult};
use redis::{ErrorKind, FromRedisValue, Script, ServerErrorKind};

/// A script's reply, and whether the write it made is on enough replicas.
pub(super) struct Written<T> {
    pub reply: T,
    /// `false`: the primary has it, fewer than `journal_replicas` replicas acknowledged it
    /// within `journal_wait_timeout`; a failover now could undo it.
    pub replicated: bool,
}

impl RedisStore {
    /// Runs a write script with `keys` and `args`; with `journal_replicas`, followed by WAIT.
    pub(super) async fn write_script<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: Vec<Vec<u8>>,
    ) -> StoreResult<Written<T>> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in &args {
            invocation.arg(arg.as_slice());
        }
        let Some(durable) = &self.links.durable else {
            let mut conn = self.connection().await?;
            let reply = invocation.invoke_async(&mut conn).await.map_err(unavailable)?;
            return Ok(Written { reply, replicated: true });
        };
        let mut conn = durable.connect(self.config.connect_timeout, self.durable_timeout()).await?;
        let mut pipe = redis::pipe();
        pipe.cmd("EVALSHA").arg(script.get_hash()).arg(keys.len()).arg(keys).arg(&args);
        pipe.cmd("WAIT").arg(self.config.journal_replicas).arg(self.config.journal_wait_timeout.as_millis() as u64);
        let (reply, acked): (T, u32) = match pipe.query_async(&mut conn).await {
            // Scripts are not replicated: the primary after a failover may not know this one.
            // It is loaded on the node the pipeline went to (with a cluster, the master of the
            // credential's slot: store/cluster.rs), and the unwritten script sent again.
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                invocation.load_async(&mut conn).await.map_err(unavailable)?;
                pipe.query_async(&mut conn).await.map_err(unavailable)?
            }
            sent => sent.map_err(unavailable)?,
        };
        let replicated = acked >= self.config.journal_replicas;
        if !replicated {
            tracing::warn!(
                acked,
                wanted = self.config.journal_replicas,
                "a journal write was not acknowledged by enough replicas in time"
            );
        }
        Ok(Written { reply, replicated })
    }

    /// As `write_script`, for writes whose callers only need to know it is safe: a write the
    /// replicas did not acknowledge is an error (the primary has it; a failover may undo it).
    pub(super) async fn write_replicated<T: FromRedisValue + WriteReply>(
        &self,
        script: &Script,
        keys: &[String],
        args: Vec<Vec<u8>>,
    ) -> StoreResult<T> {
        // Boxed: the write futures nest deep enough to strain the compiler's layout queries.
        let written = Box::pin(self.write_script::<T>(script, keys, args)).await?;
        match written.replicated || !written.reply.wrote() {
            true => Ok(written.reply),
            false => Err(StoreError::NotReplicated),
        }
    }

    fn durable_timeout(&self) -> std::time::Duration {
        self.config.response_timeout + self.config.journal_wait_timeout
    }
}

/// Whether a script's reply says it wrote something (only then do acknowledgements matter).
pub(super) trait WriteReply {
    fn wrote(&self) -> bool;
}

impl WriteReply for Option<u64> {
    fn wrote(&self) -> bool {
        self.is_some()
    }
}
