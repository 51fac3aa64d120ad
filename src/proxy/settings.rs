//! Limits and timeouts of proxied calls (`[proxy]` in the configuration).

use std::time::Duration;

/// How much a proxied call may move and for how long. Unary bodies are held in memory whole,
/// so their limits are small; streamed bodies never are, so theirs only bound the transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    /// Largest unary request body, in bytes. Also the streaming replay buffer: a streamed body
    /// that fits in it can be sent again after a 401.
    pub max_request_body: u64,
    /// Largest unary response body, in bytes. Keep it below the callers' gRPC receive limit
    /// (4 MiB by default in most gRPC libraries).
    pub max_response_body: u64,
    /// Largest streamed request body, in bytes.
    pub max_stream_request_body: u64,
    /// Largest streamed response body, in bytes.
    pub max_stream_response_body: u64,
    /// The upstream exchange's timeout when the caller names none.
    pub default_timeout: Duration,
    /// A caller's timeout is clamped to this.
    pub max_timeout: Duration,
    /// Streamed response bodies are passed on in messages of at most this many bytes.
    pub stream_chunk_size: usize,
    /// Proxied calls in flight at once, over both RPCs; more are refused.
    pub max_in_flight_calls: usize,
    /// Bytes all proxied calls together may hold in memory (bodies being buffered); a call
    /// that would go past it is refused.
    pub max_in_flight_bytes: u64,
}

const MIB: u64 = 1024 * 1024;

/// Room in a unary request message for the method, path and headers around the body.
pub const ENVELOPE: usize = 128 * 1024;

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            max_request_body: 2 * MIB,
            max_response_body: 2 * MIB,
            max_stream_request_body: 1024 * MIB,
            max_stream_response_body: 1024 * MIB,
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(300),
            stream_chunk_size: 64 * 1024,
            max_in_flight_calls: 1024,
            max_in_flight_bytes: 256 * MIB,
        }
    }
}

impl ProxySettings {
    /// The timeout of one call: the caller's (or the default), clamped to the maximum.
    pub fn timeout(&self, requested: Option<Duration>) -> Duration {
        requested.filter(|r| !r.is_zero()).unwrap_or(self.default_timeout).min(self.max_timeout)
    }

    /// The largest gRPC message the broker service must accept: a unary body or a stream
    /// chunk, plus room for the method, path and headers around it.
    pub fn max_message_size(&self) -> usize {
        usize::try_from(self.max_request_body).unwrap_or(usize::MAX).saturating_add(ENVELOPE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_default_and_clamp() {
        let s = ProxySettings {
            default_timeout: Duration::from_secs(3),
            max_timeout: Duration::from_secs(10),
            ..Default::default()
        };
        assert_eq!(s.timeout(None), Duration::from_secs(3));
        assert_eq!(s.timeout(Some(Duration::ZERO)), Duration::from_secs(3));
        assert_eq!(s.timeout(Some(Duration::from_millis(250))), Duration::from_millis(250));
        assert_eq!(s.timeout(Some(Duration::from_secs(3600))), Duration::from_secs(10));
    }
}
