//! Rewrap: re-sealing every stored record with the active key, so that an old key can be
//! removed (`docs/key-rotation.md` has the procedure across replicas).
//!
//! One call walks the credentials of every configured provider instance (by name, then by
//! subject) strictly after a cursor, examines at most `max_records` of them, and returns its
//! counts and the cursor to continue from. Progress is reported per call; a run that stops
//! (client gone, replica restarted) resumes from the last cursor it was given, and re-walking
//! from the start costs one read per record already done.
//!
//! Per record:
//! - already sealed with the active key (seen in the listing; nothing is decrypted) → counted;
//! - otherwise, paced (`per_second`; a few records at once, counted in listing order) and
//!   under the credential's fleet lease — the lease a renewal takes, so a rewrap and a
//!   renewal never race for one record — it is opened, sealed again and written with
//!   compare-and-swap on the version it was read at. Only the sealed secret changes: the
//!   secret itself, state, detail, expiry and `updated_at` (which times the probe of an
//!   INDETERMINATE credential) stay as they were;
//! - a record that changed between read and write is re-read and tried again, a few times;
//!   it is never overwritten;
//! - REFRESHING records are left alone and reported: their holder records its outcome with
//!   compare-and-swap on the version it reserved, and a re-seal in between would turn a clean
//!   commit or reopen into a conflict to recover from;
//! - a record this replica cannot open (sealed with a key it lacks, or tampered) is reported
//!   with the reason and logged; nothing is written.
//!
//! A re-seal is announced on the change feed like any write, so replicas drop headers cached
//! from the older version; they re-read the same secret, and its fingerprint does not change.

mod report;

pub use report::{ProblemKind, RewrapCursor, RewrapProblem, RewrapReport, RewrapRequest};

use super::records::Records;
use super::renew::Renewer;
use super::{BrokerError, BrokerResult, known};
use crate::domain::{CredentialId, CredentialState, ProviderName};
use crate::providers::Registry;
use crate::store::{CredentialStore, StoredCredential};
use futures::StreamExt;
use report::{Outcome, Walk};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Attempts at one record that keeps changing under us before it is reported.
const ATTEMPTS: usize = 3;
/// Records listed per store round trip.
const PAGE: usize = 100;
/// Records worked on at once.
const IN_FLIGHT: usize = 8;

/// One rewrap call: the provider instances to walk and the renewer whose records (and leases)
/// it re-seals under.
pub struct Rewrapper<'a> {
    pub registry: &'a Registry,
    pub renewer: &'a Arc<Renewer>,
}

impl Rewrapper<'_> {
    /// Re-seals up to `max_records` records after the cursor with the active key.
    #[tracing::instrument(name = "rewrap", skip_all, fields(active_key = self.renewer.records().keyring().active_id()))]
    pub async fn run(&self, request: RewrapRequest) -> BrokerResult<RewrapReport> {
        let active = self.renewer.records().keyring().active_id().to_owned();
        if let Some(expected) = request.expect_active_key.as_ref().filter(|e| **e != active) {
            return Err(BrokerError::ActiveKeyMismatch { expected: expected.clone(), active });
        }
        let mut walk = Walk {
            report: RewrapReport { active_key: active, ..Default::default() },
            budget: request.max_records,
            position: request.after.clone(),
        };
        let mut pace = Pace::new(request.per_second);
        for provider in self.providers(&request)? {
            if !self.provider(&provider, &mut walk, &mut pace).await? {
                walk.report.next = walk.position.take();
                return Ok(walk.finish());
            }
        }
        Ok(walk.finish())
    }

    /// The provider instances to walk, by name, from the cursor's on.
    fn providers(&self, request: &RewrapRequest) -> BrokerResult<Vec<ProviderName>> {
        let mut names: Vec<ProviderName> = match &request.provider {
            Some(name) => vec![known(self.registry, name)?.name.clone()],
            None => self.registry.iter().map(|p| p.name.clone()).collect(),
        };
        names.sort();
        if let Some(cursor) = &request.after {
            known(self.registry, &cursor.provider)?;
            names.retain(|name| *name >= cursor.provider);
        }
        Ok(names)
    }

    /// Walks one provider's credentials; `Ok(false)` when the call's budget ran out first.
    /// Up to `IN_FLIGHT` records are worked on at once (Redis shares one fsync among
    /// concurrent writes); outcomes are counted in listing order, so the cursor only ever
    /// passes records that are done.
    async fn provider(&self, provider: &ProviderName, walk: &mut Walk, pace: &mut Pace) -> BrokerResult<bool> {
        let mut after = walk.position.as_ref().filter(|c| c.provider == *provider).map(|c| c.subject.clone());
        loop {
            let want = walk.budget.min(PAGE);
            if want == 0 {
                return Ok(false);
            }
            let page = self.renewer.store().list(provider, after.as_ref(), want).await?;
            let work: Vec<_> = page
                .iter()
                .map(|listed| {
                    let id = CredentialId::new(provider.clone(), listed.subject.clone());
                    self.listed(id, &listed.credential, pace)
                })
                .collect();
            let mut outcomes = futures::stream::iter(work).buffered(IN_FLIGHT);
            while let Some((id, outcome)) = outcomes.next().await {
                walk.count(id, outcome?);
            }
            if page.len() < want {
                return Ok(true);
            }
            after = page.last().map(|l| l.subject.clone());
        }
    }

    /// One listed record: counted when current, else re-sealed under its lease in its paced
    /// slot (booked as the page is read).
    fn listed(
        &self,
        id: CredentialId,
        listed: &StoredCredential,
        pace: &mut Pace,
    ) -> impl Future<Output = (CredentialId, BrokerResult<Outcome>)> + use<> {
        let current = self.renewer.records().keyring().is_current(&listed.sealed);
        let slot = (!current).then(|| pace.book(Instant::now()));
        let (renewer, listed) = (Arc::clone(self.renewer), listed.clone());
        async move {
            let Some(slot) = slot else { return (id, Ok(Outcome::AlreadyCurrent)) };
            tokio::time::sleep_until(slot).await;
            // Spawned: a caller that goes away stops the run between records, never inside
            // one (with the lease held, or a write made but not announced).
            let task = tokio::spawn({
                let id = id.clone();
                async move {
                    let Some(lease) = renewer.try_lease(&id).await? else {
                        let detail = "another replica is renewing it; run again";
                        return Ok(Outcome::Problem(ProblemKind::Busy, detail.into()));
                    };
                    let outcome = reseal(renewer.records(), &id, listed).await;
                    lease.release().await;
                    outcome
                }
            });
            (id, task.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())))
        }
    }
}

/// Writes `record` (as read) back sealed with the active key, with compare-and-swap on its
/// version; after a lost race, re-reads and tries again.
pub(super) async fn reseal(
    records: &Records,
    id: &CredentialId,
    mut record: StoredCredential,
) -> BrokerResult<Outcome> {
    for _ in 0..ATTEMPTS {
        let resealed = match resealed(records, id, &record) {
            Ok(resealed) => resealed,
            Err(outcome) => return Ok(outcome),
        };
        if let Some(version) = records.store().compare_and_swap(id, record.version, &resealed).await? {
            records.feed().publish(id, version).await;
            return Ok(Outcome::Rewrapped);
        }
        match records.store().get(id).await? {
            Some(current) => record = current,
            None => return Ok(Outcome::Problem(ProblemKind::Deleted, "deleted meanwhile".into())),
        }
    }
    Ok(Outcome::Problem(ProblemKind::Changed, format!("changed during {ATTEMPTS} attempts; run again")))
}

/// `record` sealed with the active key, everything else as it was; or why not to write it.
fn resealed(records: &Records, id: &CredentialId, record: &StoredCredential) -> Result<StoredCredential, Outcome> {
    if records.keyring().is_current(&record.sealed) {
        return Err(Outcome::AlreadyCurrent);
    }
    if record.state == CredentialState::Refreshing {
        let detail = "a refresh is in flight, or its replica stopped (resolved when next renewed); run again";
        return Err(Outcome::Problem(ProblemKind::MidRefresh, detail.into()));
    }
    let vault = match records.open(id, record) {
        Ok(vault) => vault,
        Err(BrokerError::Sealed { source, .. }) => {
            tracing::warn!(credential = %id, reason = %source, "rewrap: cannot open this record here; left as it is");
            return Err(Outcome::Problem(ProblemKind::Unreadable, source.to_string()));
        }
        Err(other) => return Err(Outcome::Problem(ProblemKind::Unreadable, other.to_string())),
    };
    // Sealed for the version the compare-and-swap creates, like every write (`records.rs`).
    Ok(StoredCredential { sealed: records.keyring().seal(id, record.version + 1, &vault), ..record.clone() })
}

/// Spaces re-seals `1 / per_second` apart. An idle stretch (records already current) earns
/// no burst afterwards.
struct Pace {
    gap: Duration,
    next: Instant,
}

impl Pace {
    fn new(per_second: u32) -> Self {
        Self { gap: Duration::from_secs(1) / per_second.max(1), next: Instant::now() }
    }

    /// When a re-seal asked for at `now` may start; books that slot.
    fn book(&mut self, now: Instant) -> Instant {
        let at = self.next.max(now);
        self.next = at + self.gap;
        at
    }
}

#[cfg(test)]
mod tests;
