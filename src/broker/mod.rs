//! The broker's use cases: serve authorization, and manage stored credentials.
//!
//! Protocol-free: the gRPC layer parses requests into domain types and calls these methods;
//! the store and providers are reached only from here.

mod cache;
mod error;

pub use cache::{AuthCache, Served};
pub use error::{BrokerError, BrokerResult};

use crate::crypto::Keyring;
use crate::domain::{CredentialId, CredentialState, ProviderName, SecretMaterial, Subject};
use crate::providers::{Authorization, Provider, Registry};
use crate::store::{AnyStore, CredentialStore, StoredCredential};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// A stored credential's status: everything but its secret.
#[derive(Debug, Clone)]
pub struct CredentialView {
    pub id: CredentialId,
    pub state: CredentialState,
    pub detail: String,
    pub access_expires_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
    pub version: u64,
}

impl CredentialView {
    fn new(id: CredentialId, record: &StoredCredential) -> Self {
        Self {
            id,
            state: record.state,
            detail: record.detail.clone(),
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

pub struct Broker {
    registry: Registry,
    store: AnyStore,
    keyring: Keyring,
    cache: AuthCache,
}

impl Broker {
    pub fn new(registry: Registry, store: AnyStore, keyring: Keyring, cache: AuthCache) -> Self {
        Self { registry, store, keyring, cache }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn store(&self) -> &AnyStore {
        &self.store
    }

    fn provider(&self, name: &ProviderName) -> BrokerResult<&Arc<Provider>> {
        self.registry.get(name).ok_or_else(|| BrokerError::UnknownProvider(name.clone()))
    }

    /// Headers valid for at least `min_validity`, from the cache when it has them.
    pub async fn get_authorization(
        &self,
        provider: &ProviderName,
        subject: Option<&Subject>,
        min_validity: Duration,
    ) -> BrokerResult<Arc<Served>> {
        let provider = self.provider(provider)?;
        let until = OffsetDateTime::now_utc() + min_validity;
        let key = (provider.name.clone(), subject.cloned());
        if let Some(served) = self.cache.get(&key).await.filter(|s| s.valid_until(until)) {
            return Ok(served);
        }
        let served = Arc::new(match subject {
            None => self.serve(provider.own_authorization()?, 0),
            Some(subject) => self.load(provider, subject, until).await?,
        });
        self.cache.insert(key, served.clone()).await;
        Ok(served)
    }

    /// A cache miss: read the store, open the secret, ask the provider for headers.
    async fn load(&self, provider: &Provider, subject: &Subject, until: OffsetDateTime) -> BrokerResult<Served> {
        let id = CredentialId::new(provider.name.clone(), subject.clone());
        let record = self.store.get(&id).await?.ok_or_else(|| BrokerError::CredentialNotFound(id.clone()))?;
        if record.state != CredentialState::Active {
            return Err(BrokerError::NotServable { id, state: record.state, detail: record.detail });
        }
        let material = self.open(&id, &record)?;
        Ok(self.serve(provider.authorization(&material, until)?, record.version))
    }

    fn serve(&self, authorization: Authorization, version: u64) -> Served {
        let fingerprint = self.keyring.fingerprint(authorization.headers.iter().map(|(_, v)| v.expose()));
        Served { headers: authorization.headers, expires_at: authorization.expires_at, fingerprint, version }
    }

    fn open(&self, id: &CredentialId, record: &StoredCredential) -> BrokerResult<SecretMaterial> {
        self.keyring.open(id, &record.sealed).map_err(|source| BrokerError::Sealed { id: id.clone(), source })
    }

    /// Stores (or replaces) a credential's secret; it becomes ACTIVE.
    pub async fn put_credential(&self, id: CredentialId, material: SecretMaterial) -> BrokerResult<CredentialView> {
        self.provider(&id.provider)?.accepts(&material)?;
        let access_expires_at = match &material {
            SecretMaterial::OAuthTokens { access_expires_at, .. } => *access_expires_at,
            _ => None,
        };
        let mut record = StoredCredential {
            version: 0,
            state: CredentialState::Active,
            detail: String::new(),
            access_expires_at,
            updated_at: OffsetDateTime::now_utc(),
            sealed: self.keyring.seal(&id, &material),
        };
        record.version = self.store.put(&id, &record).await?;
        self.cache.invalidate(&(id.provider.clone(), Some(id.subject.clone()))).await;
        Ok(CredentialView::new(id, &record))
    }

    pub async fn credential_status(&self, id: CredentialId) -> BrokerResult<CredentialView> {
        self.provider(&id.provider)?;
        match self.store.get(&id).await? {
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
        self.provider(provider)?;
        // One extra tells whether another page follows without an empty last page.
        let mut listed = self.store.list(provider, after, page_size + 1).await?;
        let more = listed.len() > page_size;
        listed.truncate(page_size);
        let next = if more { listed.last().map(|l| l.subject.clone()) } else { None };
        let credentials = listed
            .into_iter()
            .map(|l| CredentialView::new(CredentialId::new(provider.clone(), l.subject), &l.credential))
            .collect();
        Ok(Page { credentials, next })
    }

    pub async fn delete_credential(&self, id: CredentialId) -> BrokerResult<()> {
        self.provider(&id.provider)?;
        let existed = self.store.delete(&id).await?;
        self.cache.invalidate(&(id.provider.clone(), Some(id.subject.clone()))).await;
        if existed { Ok(()) } else { Err(BrokerError::CredentialNotFound(id)) }
    }
}
