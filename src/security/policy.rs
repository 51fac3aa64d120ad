//! `[[policy]]`: which callers may call which RPCs for which providers and subjects.
//!
//! Globs are compiled once at start-up. Once any rule exists, what no rule allows is denied.
//! `rpcs = ["*"]` means the broker's RPCs only: admin RPCs are granted only by rules that
//! name them, so a catch-all rule for services never hands out write access.

use globset::{Glob, GlobSet, GlobSetBuilder};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;
use std::sync::Arc;

/// Every RPC the policy knows, by its proto method name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    GetAuthorization,
    ReportRejected,
    ProxyCall,
    ProxyCallStream,
    PutCredential,
    GetCredentialStatus,
    ListCredentials,
    DeleteCredential,
    Rewrap,
    StartAuthorization,
    GetAuthorizationSession,
    WatchCredentials,
    ReplayWebhooks,
}

impl Rpc {
    pub const ALL: [Rpc; 13] = [
        Rpc::GetAuthorization,
        Rpc::ReportRejected,
        Rpc::ProxyCall,
        Rpc::ProxyCallStream,
        Rpc::PutCredential,
        Rpc::GetCredentialStatus,
        Rpc::ListCredentials,
        Rpc::DeleteCredential,
        Rpc::Rewrap,
        Rpc::StartAuthorization,
        Rpc::GetAuthorizationSession,
        Rpc::WatchCredentials,
        Rpc::ReplayWebhooks,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rpc::GetAuthorization => "GetAuthorization",
            Rpc::ReportRejected => "ReportRejected",
            Rpc::ProxyCall => "ProxyCall",
            Rpc::ProxyCallStream => "ProxyCallStream",
            Rpc::PutCredential => "PutCredential",
            Rpc::GetCredentialStatus => "GetCredentialStatus",
            Rpc::ListCredentials => "ListCredentials",
            Rpc::DeleteCredential => "DeleteCredential",
            Rpc::Rewrap => "Rewrap",
            Rpc::StartAuthorization => "StartAuthorization",
            Rpc::GetAuthorizationSession => "GetAuthorizationSession",
            Rpc::WatchCredentials => "WatchCredentials",
            Rpc::ReplayWebhooks => "ReplayWebhooks",
        }
    }

    pub fn parse(name: &str) -> Option<Rpc> {
        Rpc::ALL.into_iter().find(|rpc| rpc.name() == name)
    }

    /// Admin RPCs (the `CredentialAdmin` service): never granted by `"*"`.
    pub fn is_admin(self) -> bool {
        matches!(
            self,
            Rpc::PutCredential
                | Rpc::GetCredentialStatus
                | Rpc::ListCredentials
                | Rpc::DeleteCredential
                | Rpc::Rewrap
                | Rpc::ReplayWebhooks
        )
    }

    /// What `"*"` grants: using credentials. Starting a consent flow, reading its session and
    /// watching credential events are broker RPCs too, but a rule must name them: a catch-all
    /// rule for services that fetch headers never lets them connect accounts or watch every
    /// subject's events.
    pub fn in_wildcard(self) -> bool {
        matches!(self, Rpc::GetAuthorization | Rpc::ReportRejected | Rpc::ProxyCall | Rpc::ProxyCallStream)
    }

    /// RPCs whose success hands a credential (or its use) to the caller: with
    /// `[audit] fail_closed` they need their audit event written.
    pub fn returns_credential(self) -> bool {
        matches!(self, Rpc::GetAuthorization | Rpc::ProxyCall | Rpc::ProxyCallStream)
    }
}

/// A rule's rate limit: `rate_per_second` sustained, `burst` at once, per caller identity.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

/// One `[[policy]]` rule, compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    pub callers: GlobSet,
    /// Named RPCs; `"*"` adds the broker RPCs (never the admin ones).
    pub rpcs: Vec<Rpc>,
    pub providers: GlobSet,
    pub subjects: GlobSet,
    pub rate: Option<RateLimit>,
}

/// All rules, in file order; the first that allows a call decides (and limits) it.
#[derive(Debug, Clone)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

/// Compiles a list of globs; `*` also crosses `/` (a SPIFFE path, a subject's tenant).
pub fn globs(patterns: &[String]) -> Result<GlobSet, String> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        set.add(Glob::new(pattern).map_err(|e| format!("{pattern:?} is not a glob: {e}"))?);
    }
    set.build().map_err(|e| e.to_string())
}

/// The policy with a rate limiter per limited rule: state, so built once per application.
pub struct Enforcer {
    rules: Vec<(Rule, Option<Arc<DefaultKeyedRateLimiter<String>>>)>,
}

/// What the enforcer says about one call.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    RateLimited,
}

impl Enforcer {
    pub fn new(policy: Policy) -> Self {
        let limiter = |rate: &RateLimit| {
            Arc::new(governor::RateLimiter::keyed(Quota::per_second(rate.per_second).allow_burst(rate.burst)))
        };
        Self {
            rules: policy
                .rules
                .into_iter()
                .map(|rule| {
                    let l = rule.rate.as_ref().map(limiter);
                    (rule, l)
                })
                .collect(),
        }
    }

    /// The first rule that allows the call decides; its limiter (if any) then counts it.
    pub fn check(&self, caller: &str, rpc: Rpc, provider: &str, subject: &str) -> Verdict {
        let Some((_, limiter)) = self.rules.iter().find(|(rule, _)| rule.allows(caller, rpc, provider, subject)) else {
            return Verdict::Denied;
        };
        match limiter {
            Some(limiter) if limiter.check_key(&caller.to_owned()).is_err() => Verdict::RateLimited,
            _ => Verdict::Allowed,
        }
    }

    /// Forgets callers whose limit has fully recovered: the keyed limiters would otherwise
    /// keep an entry for every identity ever seen.
    pub fn sweep(&self) {
        for limiter in self.rules.iter().filter_map(|(_, limiter)| limiter.as_ref()) {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Whether any rule lets `caller` see `subject` of `provider` through `rpc` (for
    /// filtering listings; not rate-limited: the listing call itself was).
    pub fn may_see(&self, caller: &str, rpc: Rpc, provider: &str, subject: &str) -> bool {
        self.rules.iter().any(|(rule, _)| rule.allows(caller, rpc, provider, subject))
    }
}

impl Rule {
    fn allows(&self, caller: &str, rpc: Rpc, provider: &str, subject: &str) -> bool {
        self.rpcs.contains(&rpc)
            && self.callers.is_match(caller)
            && self.providers.is_match(provider)
            && self.subjects.is_match(subject)
    }

    /// Whether the rule names the call without regard to subject (ListCredentials checks the
    /// provider first, then filters subjects).
    pub fn allows_provider(&self, caller: &str, rpc: Rpc, provider: &str) -> bool {
        self.rpcs.contains(&rpc) && self.callers.is_match(caller) && self.providers.is_match(provider)
    }
}

impl Enforcer {
    /// ListCredentials: allowed for the provider if some rule names it for this caller;
    /// subjects are filtered afterwards with [`Enforcer::may_see`].
    pub fn check_listing(&self, caller: &str, provider: &str) -> Verdict {
        let rpc = Rpc::ListCredentials;
        let Some((_, limiter)) = self.rules.iter().find(|(rule, _)| rule.allows_provider(caller, rpc, provider)) else {
            return Verdict::Denied;
        };
        match limiter {
            Some(limiter) if limiter.check_key(&caller.to_owned()).is_err() => Verdict::RateLimited,
            _ => Verdict::Allowed,
        }
    }
}

#[cfg(test)]
mod tests;
