//! The admin use cases: store, inspect, list and delete credentials.

use super::{Broker, BrokerError, BrokerResult};
use crate::domain::{CredentialId, CredentialState, ProviderName, SecretMaterial, Session, Subject, Vault};
use crate::providers::{ProviderSettings, jwt_expiry, pass, passolution};
use crate::store::{CredentialStore, StoredCredential};
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
    pub(super) fn new(id: CredentialId, record: &StoredCredential) -> Self {
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

impl Broker {
    /// Stores (or replaces) a credential; it becomes ACTIVE. A Passolution authorization code
    /// is exchanged first (codes are short-lived and single-use: nothing to keep otherwise).
    pub async fn put_credential(&self, id: CredentialId, material: SecretMaterial) -> BrokerResult<CredentialView> {
        let provider = self.provider(&id.provider)?.clone();
        provider.accepts(&material)?;
        let vault = match (&provider.settings, material) {
            (
                ProviderSettings::Passolution(settings),
                SecretMaterial::AuthorizationCode { code, redirect_uri, code_verifier },
            ) => {
                let verifier = code_verifier.as_ref();
                let exchange = passolution::exchange_code(&self.http, settings, &code, &redirect_uri, verifier);
                let tokens = self.budgeted(&id.provider, exchange).await?;
                let session = Session {
                    token: tokens.access_token,
                    expires_at: tokens.expires_at,
                    obtained_at: OffsetDateTime::now_utc(),
                };
                let material = SecretMaterial::OAuthTokens {
                    refresh_token: tokens.refresh_token,
                    access_token: None,
                    access_expires_at: None,
                };
                Vault { material, session: Some(session) }
            }
            (_, SecretMaterial::OAuthTokens { refresh_token, access_token, access_expires_at }) => {
                imported(refresh_token, access_token, access_expires_at)
            }
            (_, material) => Vault { material, session: None },
        };
        let mut record = StoredCredential {
            version: 0,
            state: CredentialState::Active,
            detail: String::new(),
            access_expires_at: vault.expires_at(),
            updated_at: OffsetDateTime::now_utc(),
            sealed: self.seal(&id, &vault),
        };
        record.version = self.store.put(&id, &record).await?;
        self.cache.invalidate(&(id.provider.clone(), Some(id.subject.clone()))).await;
        self.feed.publish(&id, record.version).await;
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

    /// Deletes a credential. A PASS session is logged out upstream first (best effort: a
    /// failed logout is logged, the deletion goes ahead).
    pub async fn delete_credential(&self, id: CredentialId) -> BrokerResult<()> {
        let provider = self.provider(&id.provider)?.clone();
        let record = self.store.get(&id).await?.ok_or_else(|| BrokerError::CredentialNotFound(id.clone()))?;
        if let (ProviderSettings::Pass(settings), Ok(Vault { session: Some(session), .. })) =
            (&provider.settings, self.open(&id, &record))
        {
            if let Err(e) = pass::logout(&self.http, settings, &session.token).await {
                tracing::warn!(credential = %id, error = %e, "PASS logout failed; deleting anyway (the token will expire)");
            }
        }
        let existed = self.store.delete(&id).await?;
        self.cache.invalidate(&(id.provider.clone(), Some(id.subject.clone()))).await;
        // Every version is older than this: other replicas drop what they cached.
        self.feed.publish(&id, u64::MAX).await;
        if existed { Ok(()) } else { Err(BrokerError::CredentialNotFound(id)) }
    }
}

/// Tokens obtained elsewhere: the refresh token is the long-lived secret, the access token the
/// current session. Without a stated expiry, a JWT's `exp` is used; an access token of
/// unknown lifetime is treated as expired (the next use refreshes it).
fn imported(
    refresh_token: Option<crate::domain::Secret>,
    access_token: Option<crate::domain::Secret>,
    expires: Option<OffsetDateTime>,
) -> Vault {
    let now = OffsetDateTime::now_utc();
    let session = access_token.map(|token| {
        let expires_at = expires.or_else(|| jwt_expiry(&token)).unwrap_or(now);
        Session { token, expires_at, obtained_at: now }
    });
    Vault {
        material: SecretMaterial::OAuthTokens { refresh_token, access_token: None, access_expires_at: None },
        session,
    }
}
