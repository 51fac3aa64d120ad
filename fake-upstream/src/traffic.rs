//! Every request the fake received, token endpoint or not, routed or not: lets a test show
//! that a refused call never reached the upstream, and what a proxy passed on. Only the
//! latest [`KEPT`] are kept, so a long benchmark or demo does not grow without bound.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// How many requests the log keeps.
pub const KEPT: usize = 10_000;

use axum::extract::Request;

/// One request as received. Header values are kept as sent (tests check credentials arrive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRequest {
    pub method: String,
    /// Path and query, as on the request line.
    pub uri: String,
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A cloneable handle to the log.
#[derive(Clone, Default)]
pub struct Traffic(Arc<Mutex<VecDeque<SeenRequest>>>);

impl Traffic {
    fn lock(&self) -> MutexGuard<'_, VecDeque<SeenRequest>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn record(&self, request: &Request) {
        let headers = request
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let uri = request.uri().path_and_query().map_or_else(|| request.uri().path().to_owned(), |pq| pq.to_string());
        let mut log = self.lock();
        if log.len() == KEPT {
            log.pop_front();
        }
        log.push_back(SeenRequest { method: request.method().to_string(), uri, headers });
    }

    /// The latest requests, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.lock().iter().cloned().collect()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }
}
