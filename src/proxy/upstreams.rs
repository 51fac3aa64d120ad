//! Where each provider instance's proxied calls may go: its `api_base_url`, minus its own
//! token and session endpoints, and the route its calls take (`client::Route`). Built once
//! from the registry, so the per-call check is a map lookup, a join and a comparison with the
//! already-joined URL.

use super::client::Route;
use super::target::ProxyPath;
use super::{ProxyError, ProxyResult};
use crate::broker::BrokerError;
use crate::domain::{InvalidField, ProviderName};
use crate::providers::Registry;
use crate::providers::endpoints::TokenEndpoints;
use http::Uri;
use std::collections::HashMap;
use url::Url;

struct Upstream {
    base: Url,
    token_endpoints: TokenEndpoints,
    route: Route,
}

/// Where one call goes, and how.
pub(super) struct Target {
    pub uri: Uri,
    pub route: Route,
}

/// Every configured provider's proxy boundary.
pub(super) struct Upstreams(HashMap<ProviderName, Upstream>);

impl Upstreams {
    pub(super) fn new(registry: &Registry) -> Self {
        let upstream = |p: &crate::providers::Provider| {
            let base = p.api_base_url().clone();
            // A base URL that is no `Uri` fails every call with the same message (`target`).
            let route = Uri::try_from(base.as_str()).map_or(Route::Direct, |uri| Route::for_base(&uri));
            Upstream { base, token_endpoints: p.token_endpoints(), route }
        };
        Self(registry.iter().map(|p| (p.name.clone(), upstream(p))).collect())
    }

    /// The URL to call: `path` under the provider's base URL, and not one of its token
    /// endpoints. Refused before anything is sent.
    pub(super) fn target(&self, provider: &ProviderName, path: &ProxyPath) -> ProxyResult<Target> {
        let upstream = self.0.get(provider).ok_or_else(|| BrokerError::UnknownProvider(provider.clone()))?;
        let url =
            path.join(&upstream.base).ok_or_else(|| InvalidField::new("path", "leaves the provider's api_base_url"))?;
        if upstream.token_endpoints.contains(&url) {
            return Err(ProxyError::TokenEndpoint(upstream.token_endpoints.described().to_owned()).into());
        }
        // The serialisation moves into the `Uri` uncopied; http's parser, no IDNA.
        let uri = Uri::try_from(String::from(url)).map_err(|_| InvalidField::new("path", "makes no valid URI"))?;
        Ok(Target { uri, route: upstream.route })
    }
}
