//! Change notifications between replicas.
//!
//! Every write of a credential is announced (`version\nprovider\nsubject`) on a Redis pub/sub
//! channel. Each replica forwards what it hears into a local broadcast channel, where two
//! kinds of listeners wait: the cache (drop headers older than the announced version) and
//! callers waiting for another replica's refresh (re-read when their credential changes).
//!
//! Pub/sub is fire-and-forget: a replica that was disconnected may have missed messages, so
//! after every (re)subscription it emits `Change::Resync` and listeners assume everything
//! changed — not at the disconnect itself, when the cache is all there is to serve from. With the in-memory store the feed is just the local channel.

use super::RedisStore;
use crate::domain::{CredentialId, ProviderName, Subject};
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::broadcast;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The credential was written; `version` is its new version.
    Changed { id: CredentialId, version: u64 },
    /// Messages may have been missed: treat every credential as changed.
    Resync,
}

#[derive(Clone)]
pub struct ChangeFeed {
    local: broadcast::Sender<Change>,
    redis: Option<RedisStore>,
}

impl ChangeFeed {
    pub fn memory() -> Self {
        Self { local: broadcast::channel(1024).0, redis: None }
    }

    /// A feed over Redis pub/sub; spawns the subscriber task (it reconnects by itself and
    /// ends when every handle to the feed is gone).
    pub fn redis(store: RedisStore) -> Self {
        let feed = Self { local: broadcast::channel(1024).0, redis: Some(store.clone()) };
        tokio::spawn(subscribe(store, feed.local.downgrade()));
        feed
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.local.subscribe()
    }

    /// Announces a write. Failures are logged, not returned: the write itself succeeded, and
    /// listeners also have time-to-live and version checks to fall back on.
    pub async fn publish(&self, id: &CredentialId, version: u64) {
        let Some(store) = &self.redis else {
            let _ = self.local.send(Change::Changed { id: id.clone(), version });
            return;
        };
        let message = format!("{version}\n{}\n{}", id.provider, id.subject);
        let result: Result<(), _> = async {
            let mut conn = store.connection().await.map_err(|e| e.to_string())?;
            redis::cmd("PUBLISH")
                .arg(store.changes_channel())
                .arg(message)
                .query_async::<i64>(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(credential = %id, error = %e, "could not announce a change; other replicas catch up by TTL");
        }
    }
}

async fn subscribe(store: RedisStore, local: broadcast::WeakSender<Change>) {
    loop {
        if let Err(e) = listen(&store, &local).await {
            tracing::warn!(error = %e, "change feed disconnected; resubscribing");
        }
        if local.upgrade().is_none() {
            return;
        }
        // No resync here: while Redis is away nobody can write, and this replica's cache is
        // what keeps serving. The resync comes once subscribed again (in `listen`).
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen(store: &RedisStore, local: &broadcast::WeakSender<Change>) -> redis::RedisResult<()> {
    let mut pubsub = store.pubsub_client().await?.get_async_pubsub().await?;
    pubsub.subscribe(store.changes_channel()).await?;
    match local.upgrade() {
        Some(sender) => drop(sender.send(Change::Resync)),
        None => return Ok(()),
    }
    let mut messages = pubsub.into_on_message();
    while let Some(message) = messages.next().await {
        let Some(sender) = local.upgrade() else { return Ok(()) };
        match parse(message.get_payload_bytes()) {
            Some(change) => drop(sender.send(change)),
            None => tracing::warn!("ignoring a malformed change message"),
        }
    }
    Ok(())
}

fn parse(payload: &[u8]) -> Option<Change> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(3, '\n');
    let version = parts.next()?.parse().ok()?;
    let provider = ProviderName::parse("provider", parts.next()?).ok()?;
    let subject = Subject::parse("subject", parts.next()?).ok()?;
    Some(Change::Changed { id: CredentialId::new(provider, subject), version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_junk_is_ignored() {
        let change = parse(b"7\nbro\norg:1 {x}").unwrap();
        let Change::Changed { id, version } = change else { panic!() };
        assert_eq!((id.to_string(), version), ("bro/org:1 {x}".to_owned(), 7));
        assert_eq!(parse(b"x\nbro\norg"), None);
        assert_eq!(parse(b"7\nbro"), None);
    }
}
