//! The ledger: a record of every token-endpoint call, so tests can check what a client
//! really did — above all that no Passolution refresh token was redeemed twice.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::config::Provider;

/// What a token-endpoint call asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// PASS `POST /token/v1/login`; JouwOmgeving `api-token-auth/`.
    Login,
    /// PASS `/token/v1/refresh`; JouwOmgeving `api-token-refresh/`.
    Refresh,
    /// PASS `DELETE /token/v1/login`.
    Logout,
    /// PASS `POST /token/v1/passwordtoken`.
    PasswordToken,
    /// PASS `POST /token/v1/changepassword`.
    ChangePassword,
    /// BRO `validatie`, the documented way to check a token.
    Validate,
    /// Passolution `grant_type=authorization_code`.
    AuthorizationCodeGrant,
    /// Passolution `grant_type=refresh_token`.
    RefreshTokenGrant,
    /// Passolution `grant_type=client_credentials`.
    ClientCredentialsGrant,
    /// Passolution with a missing or unknown `grant_type`.
    UnsupportedGrant,
}

/// What the provider did with the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Tokens issued (a refresh also revoked the old pair).
    Issued,
    /// Accepted without issuing a token: a logout, a password change, a BRO check.
    Accepted,
    /// Processed and refused with this status; `reason` is the error or hint.
    Refused { status: u16, reason: String },
    /// Not processed at all: an injected failure struck first.
    NotProcessed,
}

/// Whether the client got to see the outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The provider's own reply was sent.
    Replied,
    /// An injected status was sent instead of processing.
    InjectedStatus(u16),
    /// The connection was closed without a reply.
    Dropped,
    /// The reply is held back forever.
    Hung,
}

/// One token-endpoint call.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Position in the ledger, from 1, never reused (also not after `reset`).
    pub seq: u64,
    pub at: SystemTime,
    pub provider: Provider,
    pub operation: Operation,
    /// client_id, login name or username, when the call named one.
    pub credential: Option<String>,
    /// The refresh token (or PASS/JouwOmgeving token) the call presented.
    pub presented_token: Option<String>,
    /// The token the call issued: the refresh token, or the access token when no refresh
    /// token comes with it (PASS, JouwOmgeving, Passolution client_credentials).
    pub issued_token: Option<String>,
    pub outcome: Outcome,
    pub delivery: Delivery,
    /// The call tried to redeem a refresh token that an earlier call had already redeemed.
    pub violation: bool,
}

impl Entry {
    /// The provider changed state (issued, rotated, revoked) whether or not the client heard.
    pub fn committed(&self) -> bool {
        matches!(self.outcome, Outcome::Issued | Outcome::Accepted)
    }

    /// The outcome was committed but the reply never reached the client.
    pub fn committed_but_lost(&self) -> bool {
        self.committed() && matches!(self.delivery, Delivery::Dropped | Delivery::Hung)
    }
}

#[derive(Debug, Default)]
struct LedgerState {
    next_seq: u64,
    entries: Vec<Entry>,
}

/// Cloneable handle on the ledger.
#[derive(Clone, Debug, Default)]
pub struct Ledger(Arc<Mutex<LedgerState>>);

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, LedgerState> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn record(&self, mut entry: Entry) {
        let mut state = self.lock();
        state.next_seq += 1;
        entry.seq = state.next_seq;
        state.entries.push(entry);
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().entries.clone()
    }

    /// Forgets the entries. Which refresh tokens were redeemed is the provider's state, not
    /// the ledger's, so replays are still flagged as violations after a reset.
    pub fn reset(&self) {
        self.lock().entries.clear();
    }

    /// Entries matching `filter`, e.g. `ledger.count(|e| e.operation == Operation::RefreshTokenGrant)`.
    pub fn count(&self, filter: impl Fn(&Entry) -> bool) -> usize {
        self.lock().entries.iter().filter(|e| filter(e)).count()
    }

    /// Entries matching `filter`, oldest first.
    pub fn find(&self, filter: impl Fn(&Entry) -> bool) -> Vec<Entry> {
        self.lock().entries.iter().filter(|e| filter(e)).cloned().collect()
    }

    /// Every attempt to redeem an already-redeemed refresh token, refused or not.
    pub fn violations(&self) -> Vec<Entry> {
        self.find(|e| e.violation)
    }

    /// How many calls redeemed (committed) this refresh token: more than 1 is impossible at
    /// a real Passport server, so the count is the number of successful redemptions, 0 or 1.
    pub fn redemptions_of(&self, refresh_token: &str) -> usize {
        self.count(|e| {
            e.committed()
                && e.operation == Operation::RefreshTokenGrant
                && e.presented_token.as_deref() == Some(refresh_token)
        })
    }

    /// How many calls presented this refresh token, whatever happened to them.
    pub fn attempts_with(&self, refresh_token: &str) -> usize {
        self.count(|e| e.presented_token.as_deref() == Some(refresh_token))
    }
}
