//! Laravel's `throttle` middleware as Passport's token route uses it: a fixed window that
//! starts at the first hit; once `limit` hits are counted, requests are refused (and not
//! counted) until the window ends. One key for everybody: the limit is fleet-wide.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

use crate::util::ceil_secs;

#[derive(Debug, Default)]
struct Window {
    started: Option<Instant>,
    hits: u32,
}

#[derive(Debug, Default)]
pub(crate) struct RateLimiter(Mutex<Window>);

/// The limiter's verdict on one request.
pub(crate) enum Verdict {
    Allowed { remaining: u32 },
    Refused { limit: u32, retry_after: Duration },
}

impl RateLimiter {
    pub fn hit(&self, limit: u32, window: Duration) -> Verdict {
        let now = Instant::now();
        let mut state = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.started.is_some_and(|started| now >= started + window) {
            *state = Window::default();
        }
        let started = *state.started.get_or_insert(now);
        if state.hits >= limit {
            let retry_after = (started + window).saturating_duration_since(now);
            return Verdict::Refused { limit, retry_after };
        }
        state.hits += 1;
        Verdict::Allowed { remaining: limit - state.hits }
    }
}

/// `X-RateLimit-*` headers, which Laravel adds to every throttled route's responses.
pub(crate) fn add_headers(response: &mut Response, limit: u32, remaining: u32) {
    let headers = response.headers_mut();
    headers.insert("X-RateLimit-Limit", HeaderValue::from(limit));
    headers.insert("X-RateLimit-Remaining", HeaderValue::from(remaining));
}

/// Laravel's 429 for a JSON client.
pub(crate) fn too_many_attempts(limit: u32, retry_after: Duration) -> Response {
    let seconds = ceil_secs(retry_after).max(1);
    let reset = crate::util::unix_secs(std::time::SystemTime::now()) + seconds;
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(json!({"message": "Too Many Attempts."}))).into_response();
    add_headers(&mut response, limit, 0);
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    headers.insert("X-RateLimit-Reset", HeaderValue::from(reset));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window_from_the_first_hit() {
        let limiter = RateLimiter::default();
        let window = Duration::from_millis(100);
        assert!(matches!(limiter.hit(2, window), Verdict::Allowed { remaining: 1 }));
        assert!(matches!(limiter.hit(2, window), Verdict::Allowed { remaining: 0 }));
        assert!(matches!(limiter.hit(2, window), Verdict::Refused { retry_after, .. } if retry_after <= window));
        std::thread::sleep(window);
        assert!(matches!(limiter.hit(2, window), Verdict::Allowed { remaining: 1 }));
    }
}
