use super::*;
use crate::domain::{ProviderName, Secret};
use crate::providers::{Provider, ProviderSettings, bro, jouwomgeving, pass, passolution};

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

fn provider(settings: ProviderSettings) -> Provider {
    Provider { name: ProviderName::parse("provider", "p").unwrap(), settings, rejected_statuses: vec![401] }
}

fn pass(base: &str) -> Provider {
    provider(ProviderSettings::Pass(pass::PassSettings { api_base_url: url(base), api_key: Secret::new("k") }))
}

fn passolution(base: &str, token_url: &str) -> Provider {
    provider(ProviderSettings::Passolution(passolution::PassolutionSettings {
        api_base_url: url(base),
        token_url: url(token_url),
        client_id: "c".into(),
        client_secret: Secret::new("s"),
        token_budget_per_minute: 240,
        probe_path: passolution::PROBE_PATH.into(),
        refresh_token_lifetime: std::time::Duration::from_secs(365 * 24 * 3600),
    }))
}

fn jouwomgeving(token_path: &str, refresh_path: Option<&str>) -> Provider {
    provider(ProviderSettings::JouwOmgeving(jouwomgeving::JouwOmgevingSettings {
        api_base_url: url("https://acme.example/api/"),
        token_path: token_path.into(),
        refresh_path: refresh_path.map(Into::into),
    }))
}

/// Which of `paths`, joined to the provider's base, are token endpoints.
fn refused(provider: &Provider, paths: &[&str]) -> Vec<String> {
    let endpoints = provider.token_endpoints();
    let base = provider.api_base_url();
    paths.iter().filter(|p| endpoints.contains(&base.join(p).unwrap())).map(|p| p.to_string()).collect()
}

#[test]
fn pass_refuses_its_whole_token_service_in_any_spelling() {
    let pass = pass("https://pas.example.nl/rest/");
    let paths = [
        "token/v1/login",
        "token/v1/refresh",
        "token/v1/passwordtoken?login_name=jan",
        "token/v2/anything",
        "TOKEN/v1/Login",
        "%74oken/v1/login",
        "token/",
        "token",
        "tokens/v1/list",
        "sales/v1/pashouder",
        "sales/v1/token/v1/login",
    ];
    let expected = &paths[..8];
    assert_eq!(refused(&pass, &paths), expected);
}

#[test]
fn passolution_compares_whole_urls_with_its_token_url() {
    // The usual layout: the token URL is on another host, so no API path reaches it.
    let apart = passolution("https://api.passolution.eu/api/v2/", "https://web.passolution.eu/oauth/token");
    assert_eq!(refused(&apart, &["oauth/token", "infosystem/passolution"]), Vec::<String>::new());
    let token = url("https://web.passolution.eu/oauth/token");
    assert!(apart.token_endpoints().contains(&token));
    assert!(!apart.token_endpoints().contains(&url("https://web.passolution.eu:8443/oauth/token")));
    assert!(!apart.token_endpoints().contains(&url("http://web.passolution.eu/oauth/token")));

    // One host for both: the token URL and Passport's routes beside it are refused.
    let together = passolution("https://pso.example/", "https://pso.example/oauth/token");
    let paths = [
        "oauth/token",
        "oauth/token/",
        "OAuth/Token",
        "oauth/token/refresh",
        "oauth/authorize?x=1",
        "oauth",
        "api/v2/x",
    ];
    assert_eq!(refused(&together, &paths), &paths[..6]);

    // The API inside the token URL's directory: only the token URL itself is refused.
    let inside = passolution("https://pso.example/v2/", "https://pso.example/v2/token");
    assert_eq!(refused(&inside, &["token", "token/refresh", "trips", "tokens"]), ["token", "token/refresh"]);
}

#[test]
fn jouwomgeving_refuses_the_drf_jwt_family_and_its_configured_paths() {
    let default = jouwomgeving("api-token-auth/", None);
    let paths = ["api-token-auth/", "api-token-refresh/", "API-TOKEN-verify/", "api-token-auth", "users/", "token/"];
    assert_eq!(refused(&default, &paths), &paths[..4]);
    let custom = jouwomgeving("auth/token/", Some("auth/refresh/"));
    let paths = ["auth/token/", "auth/token/verify/", "auth/refresh/", "api-token-auth/", "auth/users/"];
    assert_eq!(refused(&custom, &paths), &paths[..4]);
}

#[test]
fn bro_has_no_token_endpoints() {
    let bro = provider(ProviderSettings::Bro(bro::BroSettings { api_base_url: url("https://bro.example/api/v2/") }));
    assert_eq!(refused(&bro, &["token/v1/login", "oauth/token", "api-token-auth/"]), Vec::<String>::new());
}

#[test]
fn paths_are_normalised_before_comparing() {
    assert_eq!(normalise("/A/B%2Fc/"), "/a/b/c");
    assert_eq!(normalise("/"), "/");
    assert_eq!(normalise("/x%c0%ae"), "/x%c0%ae", "not UTF-8: left as it is");
}
