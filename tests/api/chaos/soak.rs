//! The soak: many fault rounds drawn at random from every chaos scenario, each on a fresh fleet
//! (three replicas, Redis, the fake Passolution and its ledger). Every round must keep the
//! safety properties (`safety_violations`: no refresh token redeemed twice, none lost
//! silently, …); a round that ends other than docs/chaos.md's table says for its scenario is
//! counted and reported, not failed, since the soak's point is the invariant under any timing
//! (the named tests hold each scenario to its table row).
//!
//! `CHAOS_SOAK_ROUNDS=N` (CI: 2), `CHAOS_SOAK_SEED=S` replays a draw. The summary line goes to
//! stdout and `target/tmp/chaos-report.txt`; docs/chaos.md's soak figures come from it.

use super::scenario::run;
use super::table::{expectation_misses, safety_violations, scenarios};
use super::{record, record_line};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::collections::BTreeMap;
use std::time::Instant;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_random_faults_keep_every_refresh_token_single_use() {
    let rounds = env_u64("CHAOS_SOAK_ROUNDS").unwrap_or(2);
    let seed = env_u64("CHAOS_SOAK_SEED").unwrap_or_else(rand::random);
    println!("soak: {rounds} rounds, CHAOS_SOAK_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let (mut reuses, mut lost_silently, mut violations) = (0, 0, Vec::new());
    // scenario -> (rounds, rounds that ended off the table)
    let mut per_scenario: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for round in 1..=rounds {
        let mut all = scenarios();
        let (name, fault, expect) = all.swap_remove(rng.random_range(0..all.len()));
        let report = run(fault, true).await;
        record(&format!("soak #{round} {name}"), &report);
        reuses += report.reuses;
        lost_silently += report.lost_silently;
        let broken = safety_violations(&report);
        if !broken.is_empty() {
            violations.push(format!("round {round} ({name}): {broken:?}: {report:?}"));
        }
        let misses = expectation_misses(&report, &expect);
        let entry = per_scenario.entry(name).or_default();
        entry.0 += 1;
        if !misses.is_empty() {
            entry.1 += 1;
            println!("soak #{round} {name}: off the table: {misses:?}");
        }
    }
    let off_table: u64 = per_scenario.values().map(|(_, off)| off).sum();
    let summary = format!(
        "soak summary: rounds={rounds} seed={seed} reuses={reuses} lost_silently={lost_silently} \
         safety_violations={} off_table={off_table} minutes={:.1} per_scenario(rounds,off_table)={per_scenario:?}\n",
        violations.len(),
        started.elapsed().as_secs_f64() / 60.0,
    );
    record_line(&summary);
    assert!(violations.is_empty(), "safety violated in {} of {rounds} rounds: {violations:#?}", violations.len());
}
