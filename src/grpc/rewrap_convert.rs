//! Parsing at the edge for `CredentialAdmin/Rewrap`: the request becomes a
//! [`RewrapRequest`], the report a `RewrapResponse`.

use super::pb;
use crate::broker::{ProblemKind, RewrapCursor, RewrapProblem, RewrapReport, RewrapRequest};
use crate::domain::{InvalidField, ProviderName, Subject};

pub const DEFAULT_MAX_RECORDS: usize = 500;
pub const MAX_MAX_RECORDS: usize = 10_000;
pub const DEFAULT_PER_SECOND: u32 = 100;
pub const MAX_PER_SECOND: u32 = 10_000;

impl TryFrom<pb::RewrapRequest> for RewrapRequest {
    type Error = InvalidField;
    fn try_from(request: pb::RewrapRequest) -> Result<Self, InvalidField> {
        let provider =
            (!request.provider.is_empty()).then(|| ProviderName::parse("provider", &request.provider)).transpose()?;
        let after = request.after.map(cursor).transpose()?;
        if let (Some(provider), Some(after)) = (&provider, &after) {
            if after.provider != *provider {
                return Err(InvalidField::new("after.provider", "must be the requested provider"));
            }
        }
        Ok(Self {
            provider,
            after,
            max_records: bounded("max_records", request.max_records as usize, DEFAULT_MAX_RECORDS, MAX_MAX_RECORDS)?,
            per_second: bounded("records_per_second", request.records_per_second, DEFAULT_PER_SECOND, MAX_PER_SECOND)?,
            expect_active_key: (!request.expect_active_key.is_empty()).then_some(request.expect_active_key),
        })
    }
}

fn cursor(cursor: pb::RewrapCursor) -> Result<RewrapCursor, InvalidField> {
    Ok(RewrapCursor {
        provider: ProviderName::parse("after.provider", &cursor.provider)?,
        // A cursor this service handed out: it may stop on a subject stored before today's rule.
        subject: Subject::stored(&cursor.subject)
            .ok_or_else(|| InvalidField::new("after.subject", "not a subject from a cursor this service returned"))?,
    })
}

/// 0 means `default`; above `max` is refused rather than clamped: it is most likely a mistake.
fn bounded<T: Copy + Default + PartialOrd + std::fmt::Display>(
    field: &'static str,
    value: T,
    default: T,
    max: T,
) -> Result<T, InvalidField> {
    match value {
        v if v == T::default() => Ok(default),
        v if v > max => Err(InvalidField::new(field, format!("at most {max}"))),
        v => Ok(v),
    }
}

impl From<RewrapReport> for pb::RewrapResponse {
    fn from(report: RewrapReport) -> Self {
        Self {
            seen: report.seen,
            rewrapped: report.rewrapped,
            already_current: report.already_current,
            skipped: report.skipped,
            unreadable: report.unreadable,
            problems: report.problems.into_iter().map(Into::into).collect(),
            next: report
                .next
                .map(|c| pb::RewrapCursor { provider: c.provider.to_string(), subject: c.subject.to_string() }),
            active_key: report.active_key,
        }
    }
}

impl From<RewrapProblem> for pb::RewrapProblem {
    fn from(problem: RewrapProblem) -> Self {
        let kind = match problem.kind {
            ProblemKind::Unreadable => pb::RewrapProblemKind::Unreadable,
            ProblemKind::MidRefresh => pb::RewrapProblemKind::MidRefresh,
            ProblemKind::Busy => pb::RewrapProblemKind::Busy,
            ProblemKind::Changed => pb::RewrapProblemKind::Changed,
            ProblemKind::Deleted => pb::RewrapProblemKind::Deleted,
        };
        Self {
            provider: problem.id.provider.to_string(),
            subject: problem.id.subject.to_string(),
            kind: kind.into(),
            detail: problem.detail,
        }
    }
}
