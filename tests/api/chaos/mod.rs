//! The chaos suite: three real credbroker processes, a real Redis, the fake Passolution with
//! its redemption ledger; faults injected at the lease, after the journal reservation and
//! while sending. After every run: no refresh token redeemed twice, the credential holds the
//! newest refresh token or is flagged (INDETERMINATE / REAUTH_REQUIRED with an alert log),
//! versions only grew, no secret in any replica's log — and each scenario ends in the state
//! docs/chaos.md's table gives, with the probe having run (or not) where it says.
//!
//! `CHAOS_RUNS=N` repeats each scenario (CI runs each once); `CHAOS_BIN=target/release/credbroker`
//! runs the release binary instead of the test build's. Each run's figures are appended to
//! `target/tmp/chaos-report.txt`.

mod budget_storm;
mod coherence;
mod drain;
mod failover;
mod faults;
mod report;
mod rolling;
mod scenario;
mod soak;
mod table;
mod validity;

use report::Report;
use std::io::Write;

/// How often each scenario runs (`CHAOS_RUNS`, 1 by default).
fn runs() -> usize {
    std::env::var("CHAOS_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(1)
}

/// A run's figures, printed and appended to `target/tmp/chaos-report.txt`.
fn record(name: &str, report: &Report) {
    record_line(&format!(
        "{name}: reuses={} lost_silently={} refreshes={} served={}/{} all_served_after_ms={} final={:?} versions_grew={} secrets_in_logs={} transitions={:?}\n",
        report.reuses,
        report.lost_silently,
        report.refreshes,
        report.served,
        report.callers,
        report.all_served_after.map_or("-".into(), |d| d.as_millis().to_string()),
        report.final_state,
        report.versions_grew,
        report.secrets_in_logs,
        report.transitions,
    ));
}

/// Prints `line` and appends it to `target/tmp/chaos-report.txt`, where the docs' figures
/// come from.
fn record_line(line: &str) {
    print!("{line}");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-report.txt");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    file.write_all(line.as_bytes()).unwrap();
}
