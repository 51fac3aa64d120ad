//! A provider's own token and session endpoints, which `ProxyCall` never reaches: through
//! them a caller allowed only `ProxyCall` would be handed a token (a login or refresh answer),
//! could spend a single-use refresh token, or log a subject out.
//!
//! Each provider kind says which URLs these are (`Provider::token_endpoints`); the proxy only
//! asks whether a joined URL is one of them. URLs are compared by origin and by path after
//! percent-decoding, ASCII lower-casing and dropping a trailing '/': upstream routers differ
//! in case sensitivity and trailing-slash handling, and refusing a spelling too many costs
//! nothing.

use percent_encoding::percent_decode_str;
use std::borrow::Cow;
use url::Url;

/// Where a provider's token service lives, and how to say so to a caller.
#[derive(Debug, Clone, Default)]
pub struct TokenEndpoints {
    rules: Vec<Rule>,
    /// e.g. "PASS's token service (token/*)"; names no secret.
    described: String,
}

#[derive(Debug, Clone)]
struct Rule {
    scheme: String,
    host: Option<String>,
    port: Option<u16>,
    /// Normalised (see [`normalise`]).
    path: String,
    reach: Reach,
}

#[derive(Debug, Clone, Copy)]
enum Reach {
    /// The path itself and everything below it.
    Subtree,
    /// Every path that starts with it, e.g. `/api/api-token-` for `api-token-auth/`,
    /// `api-token-refresh/`, `api-token-verify/`.
    Prefix,
}

impl TokenEndpoints {
    pub fn new(described: impl Into<String>) -> Self {
        Self { rules: Vec::new(), described: described.into() }
    }

    /// `url` and everything below it.
    pub fn subtree(mut self, url: &Url) -> Self {
        self.rules.push(Rule::new(url, Reach::Subtree));
        self
    }

    /// `base` joined with `relative`, and everything below it. (A base nothing can be joined
    /// to cannot be proxied to either.)
    pub fn subtree_of(self, base: &Url, relative: &str) -> Self {
        match base.join(relative) {
            Ok(url) => self.subtree(&url),
            Err(_) => self,
        }
    }

    /// Every URL whose path starts with `base` joined with `relative`.
    pub fn prefix_of(mut self, base: &Url, relative: &str) -> Self {
        if let Ok(url) = base.join(relative) {
            self.rules.push(Rule::new(&url, Reach::Prefix));
        }
        self
    }

    /// Whether `url` is one of these endpoints.
    pub fn contains(&self, url: &Url) -> bool {
        let mut path: Option<String> = None;
        self.rules
            .iter()
            .any(|rule| rule.same_origin(url) && rule.covers(path.get_or_insert_with(|| normalise(url.path()))))
    }

    /// What the endpoints are, in words, for a refusal's message.
    pub fn described(&self) -> &str {
        &self.described
    }
}

impl Rule {
    fn new(url: &Url, reach: Reach) -> Self {
        let path = normalise(url.path());
        Self {
            scheme: url.scheme().into(),
            host: url.host_str().map(Into::into),
            port: url.port_or_known_default(),
            path,
            reach,
        }
    }

    fn same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && url.host_str() == self.host.as_deref()
            && url.port_or_known_default() == self.port
    }

    fn covers(&self, path: &str) -> bool {
        match self.reach {
            Reach::Prefix => path.starts_with(&self.path),
            Reach::Subtree => {
                path.strip_prefix(&self.path).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        }
    }
}

/// The path as routers may see it: percent-decoded (left encoded if that is not UTF-8),
/// ASCII lower-case, without a trailing '/'.
fn normalise(path: &str) -> String {
    let decoded = percent_decode_str(path).decode_utf8().unwrap_or(Cow::Borrowed(path));
    let mut text = decoded.to_ascii_lowercase();
    while text.len() > 1 && text.ends_with('/') {
        text.pop();
    }
    text
}

#[cfg(test)]
mod tests;
