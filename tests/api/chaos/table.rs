//! What every chaos run must keep, whatever the timing, and how each scenario must end
//! (docs/chaos.md's table): the scenarios with their faults and expected ends.

use super::report::Report;
use super::scenario::{Fault, run};
use super::{record, runs};
use credbroker::grpc::pb::CredentialState;
use fake_upstream::FailureMode;

/// What docs/chaos.md's table says a scenario ends in.
#[derive(Clone, Copy)]
pub(super) struct Expect {
    final_state: CredentialState,
    /// The probe's transition (`probe_alive`, `probe_reauthorize`), or `None`: no probe ran.
    probe: Option<&'static str>,
    /// Whether another replica fenced the holder (`None`: timing decides, either is safe).
    fence: Option<bool>,
}

const ACTIVE_UNPROBED: Expect = Expect { final_state: CredentialState::Active, probe: None, fence: Some(false) };
const FENCED_PROBED_ALIVE: Expect =
    Expect { final_state: CredentialState::Active, probe: Some("probe_alive"), fence: Some(true) };

/// What breaks the promises of `docs/refresh-safety.md`, whatever the timing: a refresh token
/// redeemed twice, the newest one lost without a flag, a version going back, a secret in a log,
/// more than one refresh per expiry (two when a probe reopened it).
pub(super) fn safety_violations(report: &Report) -> Vec<&'static str> {
    let mut violations = Vec::new();
    if report.reuses != 0 {
        violations.push("a refresh token was redeemed twice");
    }
    if report.lost_silently != 0 {
        violations.push("the newest refresh token was lost without a flag");
    }
    if !report.versions_grew {
        violations.push("a version went backwards");
    }
    if report.secrets_in_logs != 0 {
        violations.push("a secret reached a log");
    }
    if report.refreshes > 2 {
        violations.push("more than one refresh per expiry (two when a probe reopened it)");
    }
    violations
}

/// Where the run ended other than docs/chaos.md's table says: final state, where the probe ran,
/// whether the holder was fenced.
pub(super) fn expectation_misses(report: &Report, expect: &Expect) -> Vec<String> {
    let mut misses = Vec::new();
    if report.final_state != expect.final_state {
        misses.push(format!("ended {:?}, expected {:?}", report.final_state, expect.final_state));
    }
    let probes: Vec<&str> =
        ["probe_alive", "probe_reauthorize"].into_iter().filter(|p| report.transitions.contains(*p)).collect();
    if probes != expect.probe.into_iter().collect::<Vec<_>>() {
        misses.push(format!("probes {probes:?}, expected {:?}", expect.probe));
    }
    if let Some(fence) = expect.fence
        && report.transitions.contains("fence") != fence
    {
        misses.push(format!("fenced = {}, expected {fence}", !fence));
    }
    misses
}

/// The safety properties every run must keep, and the final state and probe it must show.
async fn safe(name: &str, fault: Fault, expect: Expect) -> Vec<Report> {
    let mut reports = Vec::new();
    for _ in 0..runs() {
        let report = run(fault.clone(), true).await;
        record(name, &report);
        let violations = safety_violations(&report);
        assert!(violations.is_empty(), "{name}: {violations:?}: {report:?}");
        let misses = expectation_misses(&report, &expect);
        assert!(misses.is_empty(), "{name}: {misses:?}: {report:?}");
        reports.push(report);
    }
    reports
}

/// Every fault the suite injects, with the end docs/chaos.md's table gives it. The named
/// tests below run one each; the soak (`soak.rs`) draws from all of them at random.
pub(super) fn scenarios() -> Vec<(&'static str, Fault, Expect)> {
    let unprobed_either = Expect { final_state: CredentialState::Active, probe: None, fence: None };
    vec![
        ("herd", Fault::None, ACTIVE_UNPROBED),
        ("sigstop after_lease", Fault::Stop("after_lease"), ACTIVE_UNPROBED),
        // The paused holder is fenced; it wakes up, finds the attempt taken over and sends
        // nothing; the probe finds the old token alive and the fencer refreshes.
        ("sigstop after_reserve", Fault::Stop("after_reserve"), FENCED_PROBED_ALIVE),
        // Paused after its last check: it sends when it wakes (within the pause tolerance) and
        // stores its tokens over the fenced record (late commit) before any probe.
        ("sigstop sending", Fault::Stop("sending"), unprobed_either),
        ("kill after_lease", Fault::Kill("after_lease"), ACTIVE_UNPROBED),
        ("kill after_reserve", Fault::Kill("after_reserve"), FENCED_PROBED_ALIVE),
        ("kill sending", Fault::Kill("sending"), FENCED_PROBED_ALIVE),
        // The refresh happened and its answer was lost: the probe finds the old token revoked
        // within its lifetime — re-authorization, with an alert; the token is never resent.
        (
            "commit then drop",
            Fault::Upstream(FailureMode::CommitThenDrop),
            Expect {
                final_state: CredentialState::ReauthRequired,
                probe: Some("probe_reauthorize"),
                fence: Some(false),
            },
        ),
        // Never processed: after the timeout the probe finds the old token alive; reopened,
        // sent again, redeemed once.
        (
            "provider hangs",
            Fault::Upstream(FailureMode::Hang),
            Expect { final_state: CredentialState::Active, probe: Some("probe_alive"), fence: Some(false) },
        ),
        ("redis restart", Fault::RedisRestart, unprobed_either),
    ]
}

/// Runs the scenario called `name` (`CHAOS_RUNS` times) with every check.
pub(super) async fn scenario(name: &str) -> Vec<Report> {
    let (name, fault, expect) =
        scenarios().into_iter().find(|(n, ..)| *n == name).unwrap_or_else(|| panic!("no chaos scenario {name:?}"));
    safe(name, fault, expect).await
}
