//! ReportRejected (and a proxied call's rejection): a caller says the header it got was
//! refused upstream. That may force a renewal — the only thing that renews a credential whose
//! refresh revokes the previous token before its planned renewal — so it is limited, or any
//! caller could burn single-use refresh tokens and the provider's budget:
//!
//! - only while the reported header is the credential's current one (an older header's
//!   rejection says nothing about the current one);
//! - only when that header is at least `refresh.rejected_min_age` old (a fresh header that is
//!   refused will not be helped by another);
//! - at most once per `refresh.rejected_interval` per credential, fleet-wide: the record
//!   keeps when a renewal was last forced (`forced_at`).

use super::plan::Timing;
use crate::domain::{CredentialState, Vault};
use crate::providers::{Provider, Renewal};
use crate::store::StoredCredential;
use time::OffsetDateTime;

/// Whether a report may force a renewal of this record now; `current`: whether the reported
/// header is the one this record holds. The caller renews under the lease (`serve.rs`); the
/// provider's own token is limited per replica (`own.rs`).
pub fn forcible(provider: &Provider, record: &StoredCredential, vault: &Vault, current: bool, timing: &Timing) -> bool {
    let now = OffsetDateTime::now_utc();
    let renewable = provider.renewal(vault) != Renewal::Static && provider.rejection_renews(vault);
    let old_enough = vault.session.as_ref().is_none_or(|s| now - s.obtained_at >= timing.rejected_min_age);
    let not_recently = record.forced_at.is_none_or(|at| now - at >= timing.rejected_interval);
    let allowed = record.state == CredentialState::Active && current && renewable;
    if allowed && !(old_enough && not_recently) {
        tracing::info!(provider = %provider.name, old_enough, not_recently, "rejection reported; renewal not forced (limits)");
    }
    allowed && old_enough && not_recently
}
