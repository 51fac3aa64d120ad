//! One chaos run: a credential about to need a refresh, callers on every replica, one fault
//! injected at a precise step, the credential driven to a settled state; then its report
//! (`report.rs`) checks the invariants against the fake's ledger, Redis and the replicas' logs.

use super::report::{Ended, Report, report, stored_refresh_token};
use crate::harness::{Fleet, FleetOptions, LEASE_TTL, RECONCILE_AFTER, issue_aged_tokens, poll, secs};
use credbroker::grpc::pb::{self, CredentialState};
use fake_upstream::{FailureMode, Operation, Provider, Times};
use nix::sys::signal::Signal;
use std::cell::Cell;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub enum Fault {
    None,
    /// SIGSTOP the replica that reaches this chaos point, for twice the lease TTL.
    Stop(&'static str),
    /// SIGKILL the replica that reaches this chaos point.
    Kill(&'static str),
    /// The token endpoint misbehaves on the refresh.
    Upstream(FailureMode),
    /// Redis is killed and restarted while the refresh is being sent.
    RedisRestart,
    /// SIGTERM the replica that reaches this chaos point (a rolling deploy) and wait for it
    /// to exit; at `sending` the provider answers after 1 s, so the request is in flight.
    Term(&'static str),
}

pub(super) const SUBJECT: &str = "chaos";
pub(super) const CALLERS_PER_REPLICA: usize = 40;
/// Tokens live 60 s; the imported one was issued 44 s ago, so its planned renewal (75 % of
/// its life, no jitter in the fleet) comes ~1 s after the import, and the old access token
/// stays alive long after any probe.
pub(super) const LIFETIME: Duration = Duration::from_secs(60);
pub(super) const AGE: Duration = Duration::from_secs(44);
/// More than the imported token's promise (≤ 1 s left), well within a fresh one's (44.5 s):
/// every caller needs the renewal.
const MIN_VALIDITY: i64 = 20;

pub async fn run(fault: Fault, journal: bool) -> Report {
    let chaos_pause = match &fault {
        Fault::Term("sending") => "sending=0",
        Fault::Stop(point) | Fault::Kill(point) | Fault::Term(point) => leak(format!("{point}=400")),
        Fault::RedisRestart => "sending=300",
        _ => "",
    };
    let mut fleet = Fleet::start(FleetOptions::new(chaos_pause, journal)).await;
    let (_, first_refresh, tokens) = issue_aged_tokens(&fleet.fake, LIFETIME, AGE);
    fleet.fake.knobs().set_passolution_access_lifetime(LIFETIME);
    let put =
        pb::PutCredentialRequest { provider: "passolution".into(), subject: SUBJECT.into(), secret: Some(tokens) };
    fleet.replicas[0].admin.clone().put_credential(put).await.unwrap();
    if let Fault::Upstream(mode) = &fault {
        fleet.fake.knobs().fail_only(Provider::Passolution, Operation::RefreshTokenGrant, mode.clone(), Times::Next(1));
    }
    if let Fault::Term("sending") = &fault {
        fleet.fake.knobs().set_latency(Provider::Passolution, Duration::from_secs(1));
    }
    let started = Instant::now();
    // Term: no caller waits on the renewal (an RPC in flight would hold the drain open by
    // itself): the scheduler's renewal is what a shutdown could cut. Callers come afterwards,
    // to the replicas still running.
    let term = matches!(fault, Fault::Term(_));
    let mut callers = if term { Vec::new() } else { spawn_callers(&fleet, None) };
    let (killed, clean_exit) = inject(&mut fleet, &fault).await;
    if term {
        callers = spawn_callers(&fleet, killed);
    }
    let callers_count = callers.len();
    let (served, last_served) = collect(callers).await;
    let (final_state, versions_grew, served_at_end) = settle(&fleet, killed).await;
    let stored = stored_refresh_token(&fleet).await;
    let logs = fleet.logs();
    let ended =
        Ended { callers: callers_count, served, last_served, final_state, versions_grew, clean_exit, served_at_end };
    report(&fleet, &first_refresh, stored, &logs, started, ended)
}

pub(super) fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Callers on every replica but `skip`; each retries until served or its 25 s run out.
pub(super) fn spawn_callers(fleet: &Fleet, skip: Option<usize>) -> Vec<tokio::task::JoinHandle<Option<Instant>>> {
    let mut tasks = Vec::new();
    for (_, replica) in fleet.replicas.iter().enumerate().filter(|(i, _)| Some(*i) != skip) {
        for _ in 0..CALLERS_PER_REPLICA {
            let mut client = replica.broker.clone();
            tasks.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(25);
                while Instant::now() < deadline {
                    let request = pb::GetAuthorizationRequest {
                        provider: "passolution".into(),
                        subject: SUBJECT.into(),
                        min_validity: secs(MIN_VALIDITY),
                    };
                    let mut request = tonic::Request::new(request);
                    request.set_timeout(Duration::from_secs(10));
                    if client.get_authorization(request).await.is_ok() {
                        return Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                None
            }));
        }
    }
    tasks
}

/// Waits for the fault's chaos point and injects the fault; returns the killed (or
/// terminated) replica and, for `Term`, whether it exited cleanly.
async fn inject(fleet: &mut Fleet, fault: &Fault) -> (Option<usize>, Option<bool>) {
    let point = match fault {
        Fault::Stop(point) | Fault::Kill(point) | Fault::Term(point) => *point,
        Fault::RedisRestart => "sending",
        _ => return (None, None),
    };
    // The replica waits at the chaos point, so polling its log loses nothing.
    let needle = format!("\"chaos_point\":\"{point}\"");
    let index = fleet.first_to_log(&needle, Duration::from_secs(60)).await;
    let index = index.unwrap_or_else(|| panic!("no replica reached chaos point {point}"));
    match fault {
        Fault::Stop(_) => {
            fleet.replicas[index].signal(Signal::SIGSTOP);
            tokio::time::sleep(LEASE_TTL * 2).await;
            fleet.replicas[index].signal(Signal::SIGCONT);
            (None, None)
        }
        Fault::Kill(_) => {
            fleet.replicas[index].signal(Signal::SIGKILL);
            (Some(index), None)
        }
        Fault::Term(_) => {
            fleet.replicas[index].signal(Signal::SIGTERM);
            let status = fleet.replicas[index].exited(Duration::from_secs(30)).await;
            (Some(index), Some(status.is_some_and(|s| s.success())))
        }
        _ => {
            // SIGKILL (no shutdown save), down for a second, then up again from its AOF.
            fleet.redis.kill().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            fleet.redis.restart().await;
            (None, None)
        }
    }
}

pub(super) async fn collect(callers: Vec<tokio::task::JoinHandle<Option<Instant>>>) -> (usize, Instant) {
    let (mut served, mut last) = (0, Instant::now());
    let mut latest: Option<Instant> = None;
    for caller in callers {
        if let Some(at) = caller.await.unwrap() {
            served += 1;
            latest = Some(latest.map_or(at, |l| l.max(at)));
        }
    }
    if let Some(at) = latest {
        last = at;
    }
    (served, last)
}

/// Drives the credential to a settled state (reconciling INDETERMINATE after its quiet
/// period) through the live replicas; returns the final state, whether versions only grew and
/// whether a live replica served it at the end.
pub(super) async fn settle(fleet: &Fleet, killed: Option<usize>) -> (CredentialState, bool, bool) {
    let live: Vec<_> = fleet.replicas.iter().enumerate().filter(|(i, _)| Some(*i) != killed).map(|(_, r)| r).collect();
    let (round, version, grew) = (Cell::new(0), Cell::new(0), Cell::new(true));
    let state = Cell::new(CredentialState::Unspecified);
    // Settled once a live replica serves it ACTIVE, or it needs re-authorization.
    let settled = || async {
        let replica = live[round.replace(round.get() + 1) % live.len()];
        if let Ok(status) = replica.status("passolution", SUBJECT).await {
            grew.set(grew.get() && status.version >= version.replace(status.version));
            state.set(status.state());
        }
        let served = replica.get_valid_for("passolution", SUBJECT, secs(MIN_VALIDITY)).await.is_ok();
        let active = served && state.get() == CredentialState::Active;
        (active || state.get() == CredentialState::ReauthRequired).then_some(active)
    };
    // At the deadline the run ends as it stands (not served ACTIVE): the caller judges it.
    let served_active = poll(RECONCILE_AFTER + Duration::from_secs(8), settled).await.unwrap_or(false);
    (state.get(), grew.get(), served_active)
}
