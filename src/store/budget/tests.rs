//! The GCRA arithmetic that both backends share (the Lua scripts mirror it; the Redis
//! behaviour itself is tested in `tests/api/budget.rs`).

use super::{BURST, Gcra};

const SECOND: u64 = 1_000_000;

/// Takes greedily from `start`: every request goes as soon as the budget lets it.
fn greedy(gcra: Gcra, mut tat: u64, start: u64, count: usize) -> Vec<u64> {
    let mut now = start;
    let mut grants = Vec::with_capacity(count);
    while grants.len() < count {
        match gcra.take(tat, now) {
            Ok(next) => {
                tat = next;
                grants.push(now);
            }
            Err(wait) => now += wait,
        }
    }
    grants
}

#[test]
fn the_interval_and_tolerance_follow_the_budget() {
    assert_eq!(Gcra::new(240), Gcra { interval: 250_000, tolerance: 750_000 });
    assert_eq!(Gcra::new(0), Gcra::new(1), "a zero budget is read as one a minute");
}

#[test]
fn a_burst_goes_at_once_then_one_per_interval() {
    let gcra = Gcra::new(600);
    let grants = greedy(gcra, 0, 10 * SECOND, 10);
    assert!(grants[..BURST as usize].iter().all(|&t| t == 10 * SECOND), "{grants:?}");
    for pair in grants[BURST as usize - 1..].windows(2) {
        assert_eq!(pair[1] - pair[0], gcra.interval, "{grants:?}");
    }
}

#[test]
fn a_refused_request_reserves_nothing() {
    let gcra = Gcra::new(60);
    let tat = greedy(gcra, 0, 0, BURST as usize).len() as u64 * gcra.interval;
    let first = gcra.take(tat, 0).unwrap_err();
    // Asking again later (the TAT unchanged, as after a refusal) names a shorter wait, not a
    // later slot.
    assert_eq!(gcra.take(tat, 300_000).unwrap_err(), first - 300_000);
    assert!(gcra.take(tat, first).is_ok());
}

#[test]
fn idle_time_does_not_bank_more_than_the_burst() {
    let gcra = Gcra::new(120);
    let busy = greedy(gcra, 0, 0, 50);
    let tat = busy.last().unwrap() + gcra.interval;
    let after_an_hour = greedy(gcra, tat, 3600 * SECOND, BURST as usize + 1);
    let at_once = after_an_hour.iter().filter(|&&t| t == 3600 * SECOND).count();
    assert_eq!(at_once, BURST as usize);
}

#[test]
fn no_minute_holds_more_than_the_budget_plus_the_burst() {
    for per_minute in [1, 7, 240, 600] {
        let grants = greedy(Gcra::new(per_minute), 0, 0, 3 * per_minute as usize + 10);
        let most =
            grants.iter().map(|&start| grants.iter().filter(|&&t| t >= start && t < start + 60 * SECOND).count());
        let limit = per_minute as usize + BURST as usize - 1;
        assert!(most.max().unwrap() <= limit, "{per_minute}/min");
    }
}

#[test]
fn a_back_off_holds_everyone_then_resumes_without_a_burst() {
    let gcra = Gcra::new(600);
    let tat = gcra.hold(0, 5 * SECOND, 2 * SECOND);
    assert_eq!(gcra.take(tat, 5 * SECOND).unwrap_err(), 2 * SECOND);
    let grants = greedy(gcra, tat, 5 * SECOND, 3);
    assert_eq!(grants, [7 * SECOND, 7 * SECOND + gcra.interval, 7 * SECOND + 2 * gcra.interval]);
}

#[test]
fn a_back_off_never_shortens_a_longer_one() {
    let gcra = Gcra::new(600);
    let long = gcra.hold(0, 0, 10 * SECOND);
    assert_eq!(gcra.hold(long, SECOND, 2 * SECOND), long);
}
