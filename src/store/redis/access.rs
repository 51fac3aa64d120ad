//! The start-up check of how we reach Redis. A wrong password, a TLS mismatch or a bad
//! certificate will not fix themselves, so they stop the broker at once with a message that
//! names the keys to look at. An unreachable Redis does not: the broker starts anyway and
//! serves what it has while Redis is away (connections are lazy and retried).

use super::RedisStore;
use crate::store::StoreError;
use redis::{ErrorKind, RedisError};

/// Why Redis turned us away, in words an operator can act on (never a password or URL).
#[derive(Debug, thiserror::Error)]
pub enum AccessRefused {
    #[error(
        "redis refused our credentials ({0}): check store.username and store.password / store.password_file (or the URL's user)"
    )]
    Credentials(String),
    #[error(
        "redis connection failed before any reply ({0}): a redis:// URL to a TLS port, a rediss:// URL to a plaintext port, or a certificate the configured CA (store.tls_ca_file) does not accept"
    )]
    Transport(String),
}

impl RedisStore {
    /// PINGs Redis once, bounded by the connect and response timeouts.
    pub async fn check_access(&self) -> Result<(), AccessRefused> {
        let bound = self.config.connect_timeout * 3 + self.config.response_timeout;
        let ping = async {
            let mut conn = self.connection().await.map_err(redis_error)?;
            redis::cmd("PING").query_async::<String>(&mut conn).await.map(drop)
        };
        match tokio::time::timeout(bound, ping).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => judge(&error),
            Err(_) => {
                tracing::warn!("redis did not answer at start-up; starting anyway, connecting later");
                Ok(())
            }
        }
    }
}

/// The Redis error behind a store error (connections fail only with Redis errors).
fn redis_error(error: StoreError) -> RedisError {
    match error {
        StoreError::Unavailable(e) => match e.downcast::<RedisError>() {
            Ok(e) => *e,
            Err(e) => RedisError::from((ErrorKind::Io, "connecting failed", e.to_string())),
        },
        other => RedisError::from((ErrorKind::Io, "connecting failed", other.to_string())),
    }
}

fn judge(error: &RedisError) -> Result<(), AccessRefused> {
    let auth = error.kind() == ErrorKind::AuthenticationFailed
        || matches!(error.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"));
    if auth {
        return Err(AccessRefused::Credentials(error.to_string()));
    }
    // Nobody listening, or not yet: Redis is down, which the broker rides out.
    if error.is_connection_refusal() || error.is_timeout() {
        tracing::warn!(error = %error, "redis unreachable at start-up; starting anyway, connecting later");
        return Ok(());
    }
    if error.is_io_error() || error.is_connection_dropped() || error.kind() == ErrorKind::Parse {
        return Err(AccessRefused::Transport(error.to_string()));
    }
    tracing::warn!(error = %error, "redis answered the start-up check with an error; starting anyway");
    Ok(())
}
