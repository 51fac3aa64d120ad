//! What the gRPC services call around each RPC: [`Gate::authenticate`] (who),
//! [`Gate::authorize`] (may they — before any store lookup), then [`Gate::finish`] (the audit
//! event, which with `fail_closed` must be written before a credential is handed out).
//! Refusals are audited where they happen. The gate answers with [`SecurityError`]s; the
//! gRPC layer turns them into statuses (its one error-to-status table), and tells the gate,
//! when it is built, which code each refusal gets, for the audit events.

use super::audit::{AuditLog, Event, code_name};
use super::identity::{self, JwtSettings};
use super::jwks::Jwks;
use super::peer::Peer;
use super::policy::{Enforcer, Rpc, Verdict};
use super::{SecurityError, SecuritySettings};
use opentelemetry::KeyValue;
use std::net::SocketAddr;
use std::sync::Arc;
use tonic::{Code, Request, Status};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub struct Gate {
    jwt: Option<(JwtSettings, Arc<Jwks>)>,
    policy: Option<Enforcer>,
    audit: Option<AuditLog>,
    replica: String,
    /// The status code a refusal gets (the gRPC layer's table), for its audit event.
    refusal_code: RefusalCode,
}

/// Which status code a refusal gets.
pub type RefusalCode = fn(&SecurityError) -> Code;

/// An authenticated caller of one RPC.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `None`: nobody proved anything (allowed only without a policy).
    pub identity: Option<Arc<str>>,
    peer: Option<SocketAddr>,
    rpc: Rpc,
    trace_id: Option<String>,
}

/// A call the policy allowed, waiting for its outcome to be audited.
#[derive(Debug)]
pub struct Passed {
    pub caller: Caller,
    provider: String,
    subject: String,
}

impl Gate {
    /// No authentication, no policy, no audit: the embedded default, and in-process tests.
    pub fn open(refusal_code: RefusalCode) -> Self {
        Self { jwt: None, policy: None, audit: None, replica: String::new(), refusal_code }
    }

    /// From validated settings, and the audit log `settings.audit` names (opened by the
    /// caller, who runs its writer).
    pub fn new(settings: &SecuritySettings, audit: Option<AuditLog>, replica: &str, refusal_code: RefusalCode) -> Self {
        Self {
            jwt: settings.jwt.clone().map(|jwt| {
                let keys = Jwks::new(jwt.keys.clone());
                (jwt, keys)
            }),
            policy: settings.policy.clone().map(Enforcer::new),
            audit,
            replica: replica.to_owned(),
            refusal_code,
        }
    }

    /// Who is calling; a bad bearer token, or no identity where a policy needs one, is
    /// refused (and audited).
    pub fn authenticate<T>(&self, request: &Request<T>, rpc: Rpc) -> Result<Caller, SecurityError> {
        let peer = request.extensions().get::<Peer>();
        let addr = peer.map_or_else(|| request.remote_addr(), |peer| peer.addr);
        // The trace id is only for audit events: not looked up when there is no audit log.
        let trace_id = self.audit.as_ref().and_then(|_| trace_id());
        let mut caller = Caller { identity: None, peer: addr, rpc, trace_id };
        match self.identify(request, peer) {
            Ok(identity) => caller.identity = identity,
            Err(problem) => return Err(self.refuse(&caller, "", "", SecurityError::Unauthenticated(problem))),
        }
        if caller.identity.is_none() && self.policy.is_some() {
            let problem = "no verified client certificate and no bearer token".to_owned();
            return Err(self.refuse(&caller, "", "", SecurityError::Unauthenticated(problem)));
        }
        Ok(caller)
    }

    fn identify<T>(&self, request: &Request<T>, peer: Option<&Peer>) -> Result<Option<Arc<str>>, String> {
        let bearer = request.metadata().get("authorization").map(|v| v.to_str().unwrap_or(""));
        if let (Some((jwt, keys)), Some(value)) = (&self.jwt, bearer) {
            // The scheme is case-insensitive (RFC 7235).
            let token = value
                .get(..7)
                .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                .map(|_| &value[7..])
                .ok_or("authorization metadata: expected \"Bearer <JWT>\"")?;
            return identity::verify_jwt(jwt, &keys.current(), token.trim(), || keys.unknown_key_id())
                .map(|sub| Some(sub.into()));
        }
        // Read from the certificate once per connection (`peer`), not per call.
        Ok(peer.and_then(|peer| peer.certificate_identity.clone()))
    }

    /// Whether the policy allows this call; refusals are audited.
    pub fn authorize(&self, caller: Caller, provider: &str, subject: &str) -> Result<Passed, SecurityError> {
        let Some(policy) = &self.policy else { return Ok(Passed::new(caller, provider, subject)) };
        let identity = caller.identity.as_deref().unwrap_or_default();
        let verdict = match caller.rpc {
            Rpc::ListCredentials => policy.check_listing(identity, provider),
            rpc => policy.check(identity, rpc, provider, subject),
        };
        let refusal = match verdict {
            Verdict::Allowed => return Ok(Passed::new(caller, provider, subject)),
            Verdict::Denied => SecurityError::Denied {
                caller: identity.to_owned(),
                rpc: caller.rpc.name(),
                provider: provider.to_owned(),
                subject: subject.to_owned(),
            },
            Verdict::RateLimited => SecurityError::RateLimited { caller: identity.to_owned(), rpc: caller.rpc.name() },
        };
        Err(self.refuse(&caller, provider, subject, refusal))
    }

    /// [`Gate::authenticate`] then [`Gate::authorize`].
    pub fn check<T>(
        &self,
        request: &Request<T>,
        rpc: Rpc,
        provider: &str,
        subject: &str,
    ) -> Result<Passed, SecurityError> {
        let caller = self.authenticate(request, rpc)?;
        self.authorize(caller, provider, subject)
    }

    /// Whether a listed credential may be shown to this caller.
    pub fn may_see(&self, passed: &Passed, subject: &str) -> bool {
        let identity = passed.caller.identity.as_deref().unwrap_or_default();
        self.policy.as_ref().is_none_or(|p| p.may_see(identity, Rpc::ListCredentials, &passed.provider, subject))
    }

    /// Audits the outcome: `Ok(fingerprint)` for success. With `fail_closed`, a successful
    /// credential-returning call whose event cannot be written becomes `UNAVAILABLE`.
    /// Proxied calls call this with `Ok(None)` *before* the upstream call (the decision to use
    /// the credential), and again with the error if the call then fails.
    pub async fn finish(&self, passed: &Passed, outcome: Result<Option<&str>, &Status>) -> Result<(), SecurityError> {
        let Some(audit) = &self.audit else { return Ok(()) };
        let (fingerprint, label, code) = match outcome {
            Ok(fingerprint) => (fingerprint, "allowed", Code::Ok),
            Err(status) => (None, "failed", status.code()),
        };
        let event = self.event(&passed.caller, &passed.provider, &passed.subject, fingerprint, label, code);
        // Only a credential about to be handed out under `fail_closed` depends on its line; every
        // other line is queued without waiting (a failed write is counted and logged by the
        // writer either way).
        if !(audit.fail_closed && outcome.is_ok() && passed.caller.rpc.returns_credential()) {
            audit.record(&event);
            return Ok(());
        }
        audit.write(&event).await.map_err(|_| SecurityError::AuditUnavailable)
    }

    fn refuse(&self, caller: &Caller, provider: &str, subject: &str, refusal: SecurityError) -> SecurityError {
        let label = match refusal {
            SecurityError::Unauthenticated(_) => "unauthenticated",
            SecurityError::RateLimited { .. } => "rate_limited",
            _ => "denied",
        };
        let metrics = crate::telemetry::metrics::instruments();
        // Bounded labels only: the reason and the RPC's proto name, never the caller.
        let labels = [KeyValue::new("reason", label), KeyValue::new("rpc_method", caller.rpc.name())];
        metrics.auth_denials.add(1, &labels);
        if let Some(audit) = &self.audit {
            // A refusal hands out nothing: its line is queued, nobody waits for it.
            let code = (self.refusal_code)(&refusal);
            audit.record(&self.event(caller, provider, subject, None, label, code));
        }
        refusal
    }

    fn event<'a>(
        &'a self,
        caller: &'a Caller,
        provider: &'a str,
        subject: &'a str,
        token_fingerprint: Option<&'a str>,
        outcome: &'static str,
        code: Code,
    ) -> Event<'a> {
        Event {
            time: time::OffsetDateTime::now_utc(),
            caller: caller.identity.as_deref().unwrap_or_default(),
            peer: caller.peer,
            rpc: caller.rpc.name(),
            provider,
            subject,
            token_fingerprint,
            outcome,
            code: code_name(code),
            trace_id: caller.trace_id.clone(),
            replica: &self.replica,
        }
    }
}

impl Gate {
    /// Keeps a JWKS fetched from a URL fresh while the gate lives (nothing for a file).
    pub fn jwks(&self) -> Option<Arc<Jwks>> {
        self.jwt.as_ref().map(|(_, keys)| keys.clone())
    }
}

/// Sweeps the rate limiters' idle callers every minute while the gate lives (startup runs it).
pub async fn sweep(gate: std::sync::Weak<Gate>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let Some(gate) = gate.upgrade() else { return };
        if let Some(policy) = &gate.policy {
            policy.sweep();
        }
    }
}

impl Passed {
    fn new(caller: Caller, provider: &str, subject: &str) -> Self {
        Self { caller, provider: provider.to_owned(), subject: subject.to_owned() }
    }
}

/// The current span's trace id, when traces are exported.
fn trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let context = tracing::Span::current().context();
    let span = context.span();
    let id = span.span_context().trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}
