//! The load generator both benchmarks share: a closed loop for throughput and an open loop
//! (fixed arrival rate) for latency, over any `Call`.

use futures::future::BoxFuture;
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One request of the workload; the argument is the sender's index (to spread connections).
pub type Call = Arc<dyn Fn(usize) -> BoxFuture<'static, ()> + Send + Sync>;

/// As fast as `concurrency` callers can go: requests per second.
pub async fn closed_loop(call: &Call, concurrency: usize, seconds: u64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    call(i).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / seconds as f64
}

/// A fixed arrival rate; latency is send → response (tokio's timer wakes senders up to 1 ms late, which would otherwise be charged to the
/// server), and sends
/// that start more than 2 ms late are counted.
pub async fn open_loop(call: &Call, rate: f64, seconds: u64) -> (Histogram<u64>, u64) {
    let senders = 64usize;
    let interval = Duration::from_secs_f64(senders as f64 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let count = (rate * seconds as f64 / senders as f64) as u32;
    let tasks: Vec<_> = (0..senders)
        .map(|i| {
            let call = call.clone();
            let first = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let mut late = 0u64;
                for n in 0..count {
                    let due = first + interval * n;
                    tokio::time::sleep_until(due.into()).await;
                    let sent = Instant::now();
                    late += u64::from(sent.duration_since(due) > Duration::from_millis(2));
                    call(i).await;
                    h.record(sent.elapsed().as_micros().max(1) as u64).unwrap();
                }
                (h, late)
            })
        })
        .collect();
    let (mut all, mut late) = (Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap(), 0);
    for t in tasks {
        let (h, l) = t.await.unwrap();
        all.add(h).unwrap();
        late += l;
    }
    (all, late)
}

pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}
