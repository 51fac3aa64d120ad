//! The administration part: store, inspect, list and delete credentials, and re-seal them
//! with the active key (`rewrap.rs`).
//!
//! [`Admin`] owns no state of its own: it is a view over the registry, the header cache (what
//! it writes there is dropped) and the renewer (the records, the upstream client, the timing,
//! the budgets and the scheduler), built per call by `Broker::admin`.

use super::cache::AuthCache;
use super::records::Meta;
use super::renew::Renewer;
use super::rewrap::{RewrapReport, RewrapRequest, Rewrapper};
use super::{BrokerError, BrokerResult, known};
use crate::domain::{CredentialId, CredentialState, ProviderName, Secret, SecretMaterial, Subject, Vault};
use crate::providers::{Registry, jwt_expiry, jwt_issued_at};
use crate::store::{CredentialStore, StoredCredential};
use std::sync::Arc;
use time::OffsetDateTime;

/// A stored credential's status: everything but its secret.
#[derive(Debug, Clone)]
pub struct CredentialView {
    pub id: CredentialId,
    pub state: CredentialState,
    /// Why it is not ACTIVE, rendered from the typed reason.
    pub detail: String,
    pub access_expires_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
    pub version: u64,
}

impl CredentialView {
    pub(super) fn new(id: CredentialId, record: &StoredCredential) -> Self {
        Self {
            id,
            state: record.state,
            detail: record.detail(),
            access_expires_at: record.access_expires_at,
            updated_at: record.updated_at,
            version: record.version,
        }
    }
}

/// One page of a listing; `next` is where the following page starts.
#[derive(Debug)]
pub struct Page {
    pub credentials: Vec<CredentialView>,
    pub next: Option<Subject>,
}

pub struct Admin<'a> {
    pub registry: &'a Registry,
    pub cache: &'a AuthCache,
    pub renewer: &'a Arc<Renewer>,
}

impl Admin<'_> {
    /// Stores (or replaces) a credential; it becomes ACTIVE. A secret the provider must
    /// exchange first (a Passolution authorization code: short-lived, single-use) is
    /// exchanged, and nothing is stored if the provider refuses it.
    pub async fn put_credential(&self, id: CredentialId, material: SecretMaterial) -> BrokerResult<CredentialView> {
        let provider = known(self.registry, &id.provider)?;
        provider.accepts(&material)?;
        let renewer = self.renewer;
        let vault = if provider.exchanges(&material) {
            let exchange = provider.exchange(renewer.http(), &material);
            let tokens = renewer.budgets().budgeted(&id.provider, exchange).await?;
            let session = renewer.timing().session(tokens.access_token, tokens.expires_at, tokens.issued_at, true);
            let material = SecretMaterial::OAuthTokens {
                refresh_token: tokens.refresh_token,
                access_token: None,
                access_expires_at: None,
            };
            Vault { material, session: Some(session) }
        } else {
            self.imported(material)
        };
        let record = renewer.records().replace(&id, &Meta::active(None), &vault).await?;
        self.cache.invalidate(&(id.provider.clone(), Some(id.subject.clone())));
        renewer.plan(&id, &record, &vault);
        Ok(CredentialView::new(id, &record))
    }

    pub async fn credential_status(&self, id: CredentialId) -> BrokerResult<CredentialView> {
        known(self.registry, &id.provider)?;
        match self.renewer.store().get(&id).await? {
            Some(record) => Ok(CredentialView::new(id, &record)),
            None => Err(BrokerError::CredentialNotFound(id)),
        }
    }

    /// One page of a provider's credentials, ordered by subject.
    pub async fn list_credentials(
        &self,
        provider: &ProviderName,
        after: Option<&Subject>,
        page_size: usize,
    ) -> BrokerResult<Page> {
        known(self.registry, provider)?;
        // One extra tells whether another page follows without an empty last page.
        let mut listed = self.renewer.store().list(provider, after, page_size + 1).await?;
        let more = listed.len() > page_size;
        listed.truncate(page_size);
        let next = if more { listed.last().map(|l| l.subject.clone()) } else { None };
        let credentials = listed
            .into_iter()
            .map(|l| CredentialView::new(CredentialId::new(provider.clone(), l.subject), &l.credential))
            .collect();
        Ok(Page { credentials, next })
    }

    /// Deletes a credential. A session with an upstream logout (PASS) is logged out first
    /// (best effort: a failed logout is logged, the deletion goes ahead).
    pub async fn delete_credential(&self, id: CredentialId) -> BrokerResult<()> {
        let provider = known(self.registry, &id.provider)?;
        let records = self.renewer.records();
        let record = records.store().get(&id).await?.ok_or_else(|| BrokerError::CredentialNotFound(id.clone()))?;
        if let Ok(vault) = records.open(&id, &record) {
            if let Err(e) = provider.logout(self.renewer.http(), &vault).await {
                tracing::warn!(credential = %id, error = %e, "logout upstream failed; deleting anyway (the token will expire)");
            }
        }
        let existed = records.store().delete(&id).await?;
        self.cache.invalidate(&(id.provider.clone(), Some(id.subject.clone())));
        // Every version is older than this: other replicas drop what they cached.
        records.feed().publish(&id, u64::MAX).await;
        if existed { Ok(()) } else { Err(BrokerError::CredentialNotFound(id)) }
    }

    /// Re-seals up to `max_records` records after the cursor with the active key (`rewrap.rs`).
    pub async fn rewrap(&self, request: RewrapRequest) -> BrokerResult<RewrapReport> {
        Rewrapper { registry: self.registry, renewer: self.renewer }.run(request).await
    }

    /// Secrets stored as given. OAuth tokens obtained elsewhere: the refresh token is the
    /// long-lived secret, the access token the current session. Its expiry is the one stated,
    /// else the JWT's `exp`; an access token of unknown lifetime is treated as expired (the
    /// next use refreshes it). A JWT's `iat` gives its real lifetime, hence its planned renewal.
    fn imported(&self, material: SecretMaterial) -> Vault {
        let SecretMaterial::OAuthTokens { refresh_token, access_token, access_expires_at } = material else {
            return Vault { material, session: None };
        };
        let now = OffsetDateTime::now_utc();
        let session = access_token.map(|token: Secret| {
            let expires_at = access_expires_at.or_else(|| jwt_expiry(&token)).unwrap_or(now);
            let issued_at = jwt_issued_at(&token).filter(|iat| *iat <= now.min(expires_at));
            // Its lifetime says nothing sure about the next token's: not "known" (see `plan`).
            self.renewer.timing().session(token, expires_at, issued_at.unwrap_or(now), false)
        });
        let material = SecretMaterial::OAuthTokens { refresh_token, access_token: None, access_expires_at: None };
        Vault { material, session }
    }
}
