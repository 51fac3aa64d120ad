//! Run-time knobs: lifetimes, latency, rate limit and injected failures, changeable while
//! the fake serves. Handlers read them per request, so a change applies to the next call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::config::{FakeConfig, IssuerReply, Provider, RefreshErrorStyle};
use crate::ledger::Operation;

/// What a token endpoint does with a call instead of (or after) answering normally.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum FailureMode {
    #[default]
    Normal,
    /// Answer this status (e.g. 500, 503) before processing, like a proxy in front would.
    Status(u16),
    /// Read the request, then never answer and never process it.
    Hang,
    /// Read the request, then close the connection without processing it.
    DropBeforeProcessing,
    /// Process the call completely (rotate, revoke, issue, record), then close the
    /// connection without replying: the client cannot know the outcome.
    CommitThenDrop,
    /// Process the call completely, then never answer.
    CommitThenHang,
}

/// How long an injected failure lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Times {
    /// For the next `n` matching calls, then back to normal.
    Next(u32),
    /// Until [`Knobs::clear_failures`] or [`Knobs::reset_failures`].
    UntilReset,
}

#[derive(Clone, Debug)]
struct Fault {
    mode: FailureMode,
    remaining: Option<u32>,
    only: Option<Operation>,
}

#[derive(Debug)]
struct KnobState {
    config: FakeConfig,
    latency: HashMap<Provider, Duration>,
    faults: HashMap<Provider, Fault>,
}

/// Cloneable handle on the fake's run-time behaviour.
#[derive(Clone, Debug)]
pub struct Knobs(Arc<Mutex<KnobState>>);

impl Knobs {
    pub(crate) fn new(config: FakeConfig) -> Knobs {
        let latency = Provider::ALL.map(|p| (p, config.latency)).into();
        let state = KnobState { config, latency, faults: HashMap::new() };
        Knobs(Arc::new(Mutex::new(state)))
    }

    // A std Mutex: every critical section is a few field reads or writes, never across an
    // await, so an async mutex would only add cost.
    fn lock(&self) -> MutexGuard<'_, KnobState> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A snapshot of the current settings.
    pub fn config(&self) -> FakeConfig {
        self.lock().config.clone()
    }

    /// Changes any settings at once, e.g. `knobs.update(|c| c.pass_max_lifetime = d)`.
    pub fn update(&self, change: impl FnOnce(&mut FakeConfig)) {
        change(&mut self.lock().config);
    }

    pub fn set_pass_max_lifetime(&self, lifetime: Duration) {
        self.update(|c| c.pass_max_lifetime = lifetime);
    }

    pub fn set_passolution_access_lifetime(&self, lifetime: Duration) {
        self.update(|c| c.passolution_access_lifetime = lifetime);
    }

    pub fn set_passolution_refresh_lifetime(&self, lifetime: Duration) {
        self.update(|c| c.passolution_refresh_lifetime = lifetime);
    }

    pub fn set_passolution_rate_limit(&self, per_window: u32) {
        self.update(|c| c.passolution_rate_limit = per_window);
    }

    pub fn set_passolution_error_style(&self, style: RefreshErrorStyle) {
        self.update(|c| c.passolution_error_style = style);
    }

    /// What the authorize redirect says in `iss` from now on.
    pub fn set_passolution_iss(&self, reply: IssuerReply) {
        self.update(|c| c.passolution_iss = reply);
    }

    pub fn set_jouwomgeving_jwt_lifetime(&self, lifetime: Duration) {
        self.update(|c| c.jouwomgeving_jwt_lifetime = lifetime);
    }

    /// Delay before every request to `provider` (token and data endpoints alike).
    pub fn set_latency(&self, provider: Provider, latency: Duration) {
        self.lock().latency.insert(provider, latency);
    }

    pub fn latency(&self, provider: Provider) -> Duration {
        self.lock().latency.get(&provider).copied().unwrap_or_default()
    }

    /// Makes `provider`'s token endpoints fail in `mode` (replacing any earlier failure).
    pub fn fail(&self, provider: Provider, mode: FailureMode, times: Times) {
        self.set_fault(provider, mode, times, None);
    }

    /// Like [`fail`](Self::fail), for calls of one operation only (e.g. refresh, not login).
    pub fn fail_only(&self, provider: Provider, op: Operation, mode: FailureMode, times: Times) {
        self.set_fault(provider, mode, times, Some(op));
    }

    fn set_fault(&self, provider: Provider, mode: FailureMode, times: Times, only: Option<Operation>) {
        let remaining = match times {
            Times::Next(n) => Some(n),
            Times::UntilReset => None,
        };
        let mut state = self.lock();
        if remaining == Some(0) {
            state.faults.remove(&provider);
            return;
        }
        state.faults.insert(provider, Fault { mode, remaining, only });
    }

    /// Back to normal for one provider.
    pub fn clear_failures(&self, provider: Provider) {
        self.lock().faults.remove(&provider);
    }

    /// Back to normal for every provider.
    pub fn reset_failures(&self) {
        self.lock().faults.clear();
    }

    /// The failure mode for one call, counting it against a "next N calls" budget.
    pub(crate) fn take_failure(&self, provider: Provider, op: Operation) -> FailureMode {
        let mut state = self.lock();
        let Some(fault) = state.faults.get_mut(&provider) else {
            return FailureMode::Normal;
        };
        if fault.only.is_some_and(|only| only != op) {
            return FailureMode::Normal;
        }
        let mode = fault.mode.clone();
        match &mut fault.remaining {
            None => {}
            Some(0) | Some(1) => {
                state.faults.remove(&provider);
            }
            Some(n) => *n -= 1,
        }
        mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_n_counts_only_matching_calls() {
        let knobs = Knobs::new(FakeConfig::default());
        let (p, refresh) = (Provider::Passolution, Operation::RefreshTokenGrant);
        knobs.fail_only(p, refresh, FailureMode::Hang, Times::Next(2));
        assert_eq!(knobs.take_failure(p, Operation::ClientCredentialsGrant), FailureMode::Normal);
        assert_eq!(knobs.take_failure(Provider::Pass, refresh), FailureMode::Normal);
        assert_eq!(knobs.take_failure(p, refresh), FailureMode::Hang);
        assert_eq!(knobs.take_failure(p, refresh), FailureMode::Hang);
        assert_eq!(knobs.take_failure(p, refresh), FailureMode::Normal);
    }

    #[test]
    fn until_reset_lasts_until_cleared() {
        let knobs = Knobs::new(FakeConfig::default());
        knobs.fail(Provider::Pass, FailureMode::Status(503), Times::UntilReset);
        for _ in 0..5 {
            assert_eq!(knobs.take_failure(Provider::Pass, Operation::Login), FailureMode::Status(503));
        }
        knobs.clear_failures(Provider::Pass);
        assert_eq!(knobs.take_failure(Provider::Pass, Operation::Login), FailureMode::Normal);
        knobs.fail(Provider::Pass, FailureMode::Hang, Times::Next(0));
        assert_eq!(knobs.take_failure(Provider::Pass, Operation::Login), FailureMode::Normal);
    }
}
