//! What a rewrap call is asked and what it reports, and the counting as it walks.

use crate::domain::{CredentialId, ProviderName, Subject};

/// Where a run stands: it continues strictly after this credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewrapCursor {
    pub provider: ProviderName,
    pub subject: Subject,
}

/// One call's share of a run.
#[derive(Debug, Clone)]
pub struct RewrapRequest {
    /// Only this provider instance; `None`: every configured one, by name.
    pub provider: Option<ProviderName>,
    pub after: Option<RewrapCursor>,
    /// Records examined in this call, at most.
    pub max_records: usize,
    /// Records re-sealed per second, at most.
    pub per_second: u32,
    /// Refuse unless this replica seals with this key id.
    pub expect_active_key: Option<String>,
}

/// Why a record was not re-sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// This replica cannot open it: sealed with a key it lacks, or tampered with.
    Unreadable,
    /// REFRESHING: a renewal is in flight, or its replica stopped (resolved when the
    /// credential is next renewed).
    MidRefresh,
    /// Another replica holds its lease (renewing it).
    Busy,
    /// It changed during every attempt.
    Changed,
    /// It was deleted meanwhile.
    Deleted,
}

#[derive(Debug, Clone)]
pub struct RewrapProblem {
    pub id: CredentialId,
    pub kind: ProblemKind,
    /// In words; never a secret.
    pub detail: String,
}

/// What one call did. `seen = rewrapped + already_current + skipped + unreadable`; every
/// skipped or unreadable record is listed in `problems`.
#[derive(Debug, Default)]
pub struct RewrapReport {
    pub seen: u64,
    pub rewrapped: u64,
    pub already_current: u64,
    pub skipped: u64,
    pub unreadable: u64,
    pub problems: Vec<RewrapProblem>,
    /// Where the next call continues; `None` when the walk is complete.
    pub next: Option<RewrapCursor>,
    /// The key id records are now sealed with.
    pub active_key: String,
}

/// What happened to one record.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::broker) enum Outcome {
    Rewrapped,
    AlreadyCurrent,
    Problem(ProblemKind, String),
}

/// A call's progress through the walk.
pub(super) struct Walk {
    pub report: RewrapReport,
    /// Records this call may still examine.
    pub budget: usize,
    /// The last record examined (or the request's cursor).
    pub position: Option<RewrapCursor>,
}

impl Walk {
    pub fn count(&mut self, id: CredentialId, outcome: Outcome) {
        let report = &mut self.report;
        report.seen += 1;
        self.budget -= 1;
        self.position = Some(RewrapCursor { provider: id.provider.clone(), subject: id.subject.clone() });
        match outcome {
            Outcome::Rewrapped => report.rewrapped += 1,
            Outcome::AlreadyCurrent => report.already_current += 1,
            Outcome::Problem(kind, detail) => {
                if kind == ProblemKind::Unreadable {
                    report.unreadable += 1;
                } else {
                    report.skipped += 1;
                }
                report.problems.push(RewrapProblem { id, kind, detail });
            }
        }
    }

    pub fn finish(self) -> RewrapReport {
        let r = &self.report;
        tracing::info!(
            seen = r.seen,
            rewrapped = r.rewrapped,
            already_current = r.already_current,
            skipped = r.skipped,
            unreadable = r.unreadable,
            complete = r.next.is_none(),
            "rewrap call done"
        );
        self.report
    }
}
