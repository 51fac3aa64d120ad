//! `[metrics]`: where Prometheus scrapes `/metrics` (`listen = "127.0.0.1:9464"`); no
//! listener when the key is absent.

use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawMetrics {
    listen: Option<String>,
}

/// The listener's address (`None`: off), or `None` with an error naming the key.
pub(super) fn validate(raw: RawMetrics, errors: &mut Vec<String>) -> Option<Option<SocketAddr>> {
    match raw.listen.map(|listen| listen.parse::<SocketAddr>().map_err(|_| listen)) {
        None => Some(None),
        Some(Ok(addr)) => Some(Some(addr)),
        Some(Err(listen)) => {
            errors.push(format!("metrics.listen: {listen:?} is not an address like 127.0.0.1:9464"));
            None
        }
    }
}
