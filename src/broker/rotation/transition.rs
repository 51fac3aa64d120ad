//! Every state change of the rotation path, as a type: the table in `rotation`'s module doc
//! (and docs/refresh-safety.md) is this enum. Each transition knows the states it may leave,
//! the state it enters, and whether an operator must hear of it (`alert`).

use crate::domain::{CredentialState, Reason};
use CredentialState::{Active, Indeterminate, ReauthRequired, Refreshing};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// RESERVE: the attempt is journalled with the version check; the token may be sent once.
    Reserve,
    /// COMMIT: the new tokens replace the old (a reply without a refresh token keeps it).
    Commit,
    /// COMMIT over a record another replica flagged meanwhile, which still holds the redeemed
    /// token: ours are the newest.
    LateCommit,
    /// REOPEN: the refresh provably never reached the provider; the attempt is removed.
    Reopen,
    /// The refresh was sent and its outcome is unknown: flagged, never resent.
    Unknown(Reason),
    /// FENCE: the holder vanished; its attempt is taken over with the same write.
    Fence,
    /// Probe: the old access token still works, so the refresh never happened: reopened.
    ProbeAlive,
    /// The credential needs re-authorization: refused token or login, lost answer, or an
    /// outcome that can no longer be learned.
    Reauthorize(Reason),
}

impl Transition {
    /// The states this transition may leave.
    pub fn from(&self) -> &'static [CredentialState] {
        match self {
            Self::Reserve => &[Active],
            Self::Commit | Self::Reopen => &[Refreshing],
            Self::LateCommit => &[Refreshing, Indeterminate, ReauthRequired],
            Self::Unknown(_) => &[Active, Refreshing],
            Self::Fence => &[Refreshing],
            Self::ProbeAlive => &[Indeterminate],
            Self::Reauthorize(_) => &[Active, Refreshing, Indeterminate],
        }
    }

    pub fn to(&self) -> CredentialState {
        match self {
            Self::Reserve => Refreshing,
            Self::Commit | Self::LateCommit | Self::Reopen | Self::ProbeAlive => Active,
            Self::Unknown(_) | Self::Fence => Indeterminate,
            Self::Reauthorize(_) => ReauthRequired,
        }
    }

    pub fn reason(&self) -> Option<Reason> {
        match self {
            Self::Reserve => Some(Reason::Sending),
            Self::Fence => Some(Reason::HolderVanished),
            Self::Unknown(reason) | Self::Reauthorize(reason) => Some(reason.clone()),
            Self::Commit | Self::LateCommit | Self::Reopen | Self::ProbeAlive => None,
        }
    }

    /// The name logged with every transition (`transition = …`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Reserve => "reserve",
            Self::Commit => "commit",
            Self::LateCommit => "late_commit",
            Self::Reopen => "reopen",
            Self::Unknown(_) => "unknown_outcome",
            Self::Fence => "fence",
            Self::ProbeAlive => "probe_alive",
            Self::Reauthorize(Reason::AnswerLost | Reason::ExpiredBeforeProbe { .. } | Reason::NothingToProbe) => {
                "probe_reauthorize"
            }
            Self::Reauthorize(_) => "reauthorize",
        }
    }

    /// Whether an operator must hear of it: the credential stopped being served by itself.
    pub fn alerts(&self) -> bool {
        matches!(self.to(), Indeterminate | ReauthRequired)
    }

    /// Logs the transition (a warning with an `alert` field when an operator must act) and
    /// counts the entry into its state.
    pub fn log(&self, credential: &crate::domain::CredentialId) {
        let to = opentelemetry::KeyValue::new("to", self.to().to_string());
        let provider = crate::telemetry::metrics::provider(&credential.provider);
        crate::telemetry::metrics::instruments().transitions.add(1, &[provider, to]);
        let (name, reason) = (self.name(), self.reason().map(|r| r.to_string()).unwrap_or_default());
        if self.alerts() {
            let alert = self.to().to_string().to_lowercase();
            tracing::warn!(%credential, transition = name, %alert, %reason, "credential flagged");
        } else {
            tracing::info!(%credential, transition = name, "credential transition");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of docs/refresh-safety.md, row by row: from → transition → to.
    #[test]
    fn the_documented_table() {
        let reason = || Reason::NoAnswer { cause: "reset".into() };
        let rows: [(&[CredentialState], Transition, CredentialState); 8] = [
            (&[Active], Transition::Reserve, Refreshing),
            (&[Refreshing], Transition::Commit, Active),
            (&[Refreshing, Indeterminate, ReauthRequired], Transition::LateCommit, Active),
            (&[Refreshing], Transition::Reopen, Active),
            (&[Active, Refreshing], Transition::Unknown(reason()), Indeterminate),
            (&[Refreshing], Transition::Fence, Indeterminate),
            (&[Indeterminate], Transition::ProbeAlive, Active),
            (&[Active, Refreshing, Indeterminate], Transition::Reauthorize(Reason::AnswerLost), ReauthRequired),
        ];
        for (from, transition, to) in rows {
            assert_eq!((transition.from(), transition.to()), (from, to), "{}", transition.name());
        }
        assert!(Transition::Fence.alerts() && !Transition::Commit.alerts());
        assert_eq!(Transition::Reauthorize(Reason::AnswerLost).name(), "probe_reauthorize");
    }
}
