//! The token budget: replicas sharing one Redis send token requests at the fleet's rate,
//! spread out, never before a provider's `Retry-After`. Timings are checked as counts per
//! window and lower bounds, with tolerances, never as absolute latencies.

use crate::both_stores;
use crate::harness::{StoreKind, TestRedis, random_prefix, redis_store};
use credbroker::domain::ProviderName;
use credbroker::store::budget::{BURST, BudgetBackend, BudgetError, TokenBudget};
use credbroker::store::{RedisStore, RedisStoreConfig};
use futures::future::join_all;
use redis::AsyncCommands;
use std::time::Duration;
use tokio::time::Instant;

fn passolution() -> ProviderName {
    ProviderName::parse("provider", "passolution").unwrap()
}

/// `count` budgets for one provider, as if on `count` replicas: each with its own connection.
fn replicas(url: &str, prefix: &str, per_minute: u32, count: usize) -> Vec<TokenBudget> {
    let store = || redis_store(url, prefix);
    (0..count).map(|_| TokenBudget::new(BudgetBackend::Redis(store()), &passolution(), per_minute)).collect()
}

/// Fires `requests` acquires at once, spread round-robin over `budgets`; the grant instants.
async fn burst(budgets: &[TokenBudget], requests: usize, max_wait: Duration) -> Vec<Instant> {
    let acquires = budgets
        .iter()
        .cycle()
        .take(requests)
        .map(|b| async move { b.acquire(max_wait).await.map(|()| Instant::now()) });
    let mut grants: Vec<Instant> =
        join_all(acquires).await.into_iter().map(|r| r.expect("every request gets a slot")).collect();
    grants.sort();
    grants
}

/// Grants are spread: no one-second window holds more than the burst plus a second's budget
/// (one extra for grants that reach the client late and bunch up), and the whole set takes at
/// least 80 % of the time the budget needs for it.
fn assert_spread(grants: &[Instant], per_minute: u32) {
    let per_second = per_minute as usize / 60;
    let busiest = grants
        .iter()
        .map(|&start| grants.iter().filter(|&&t| t >= start && t < start + Duration::from_secs(1)).count())
        .max()
        .unwrap();
    assert!(busiest <= BURST as usize + per_second + 1, "{busiest} grants in one second at {per_minute}/min");
    let needed = Duration::from_secs(60) / per_minute * (grants.len() as u32 - BURST);
    let took = *grants.last().unwrap() - grants[0];
    assert!(took >= needed.mul_f64(0.8), "{} grants took {took:?}, the budget needs {needed:?}", grants.len());
}

/// A burst is spread: by one replica's budget in memory, or by three replicas' on one Redis.
async fn a_burst_is_spread(store: StoreKind) {
    let redis;
    let budgets = match store {
        StoreKind::Memory => vec![TokenBudget::new(BudgetBackend::Memory, &passolution(), 600)],
        StoreKind::Redis => {
            redis = TestRedis::start().await;
            replicas(&redis.url, &random_prefix(), 600, 3)
        }
    };
    let grants = burst(&budgets, 30, Duration::from_secs(10)).await;
    assert_spread(&grants, 600);
}

both_stores!(a_burst_is_spread);

#[tokio::test]
async fn budget_a_caller_who_gives_up_reserves_no_slot() {
    let redis = TestRedis::start().await;
    let prefix = random_prefix();
    let [a, b]: [TokenBudget; 2] = replicas(&redis.url, &prefix, 30, 2).try_into().ok().unwrap();
    for _ in 0..BURST {
        a.acquire(Duration::ZERO).await.expect("the burst allowance goes at once");
    }
    let mut conn = redis.connection().await;
    let key = format!("{prefix}:{{budget:passolution}}");
    let tat: String = conn.get(&key).await.unwrap();

    let Err(BudgetError::WouldWait(first)) = a.acquire(Duration::from_millis(100)).await else { panic!("granted") };
    assert!(first > Duration::from_millis(100) && first <= Duration::from_secs(2), "{first:?}");
    assert_eq!(conn.get::<_, String>(&key).await.unwrap(), tat, "a refusal writes nothing");
    // Had the refusal reserved a slot, the next would be an interval (2 s) later.
    let Err(BudgetError::WouldWait(second)) = b.acquire(Duration::ZERO).await else { panic!("granted") };
    assert!(second <= first, "{second:?} after {first:?}");
    b.acquire(Duration::from_secs(5)).await.expect("the next slot is taken");
}

#[tokio::test]
async fn budget_back_off_on_one_replica_holds_the_fleet() {
    let redis = TestRedis::start().await;
    let [a, b]: [TokenBudget; 2] = replicas(&redis.url, &random_prefix(), 60, 2).try_into().ok().unwrap();
    let asked = Instant::now();
    a.back_off(Duration::from_secs(2)).await;

    let Err(BudgetError::WouldWait(wait)) = b.acquire(Duration::ZERO).await else { panic!("granted during back-off") };
    assert!(wait > Duration::from_secs(1) && wait <= Duration::from_secs(2), "{wait:?}");
    b.acquire(Duration::from_secs(5)).await.expect("a slot after Retry-After");
    assert!(asked.elapsed() >= Duration::from_millis(1900), "granted {:?} after a 2 s back-off", asked.elapsed());
    // The fleet resumes at the steady rate, without a burst.
    assert!(matches!(a.acquire(Duration::ZERO).await, Err(BudgetError::WouldWait(_))));
}

#[tokio::test]
async fn memory_budget_honours_back_off_and_refusals_reserve_nothing() {
    let budget = TokenBudget::new(BudgetBackend::Memory, &passolution(), 60);
    let asked = Instant::now();
    budget.back_off(Duration::from_millis(500)).await;
    let Err(BudgetError::WouldWait(first)) = budget.acquire(Duration::ZERO).await else { panic!("granted") };
    let Err(BudgetError::WouldWait(second)) = budget.acquire(Duration::ZERO).await else { panic!("granted") };
    assert!(second <= first && first <= Duration::from_millis(500), "{first:?} then {second:?}");
    budget.acquire(Duration::from_secs(2)).await.unwrap();
    assert!(asked.elapsed() >= Duration::from_millis(500));
}

#[tokio::test]
async fn budget_fails_closed_when_redis_is_unreachable() {
    let store = RedisStore::new(RedisStoreConfig {
        url: "redis://127.0.0.1:1".to_owned(),
        cluster: false,
        key_prefix: random_prefix(),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
        ..Default::default()
    })
    .unwrap();
    let budget = TokenBudget::new(BudgetBackend::Redis(store), &passolution(), 240);
    let result = budget.acquire(Duration::from_secs(1)).await;
    assert!(matches!(result, Err(BudgetError::Unavailable(_))), "{result:?}");
    budget.back_off(Duration::from_secs(1)).await; // logs, does not panic or hang
}
