use super::*;
use crate::domain::{ProviderName, Reason, Secret, SecretMaterial};
use crate::providers::ProviderSettings;
use crate::providers::bro::BroSettings;
use crate::providers::jouwomgeving::JouwOmgevingSettings;
use crate::providers::passolution::PassolutionSettings;
use time::Duration as Span;

fn provider(settings: ProviderSettings) -> Provider {
    Provider { name: ProviderName::parse("p", "p").unwrap(), settings, rejected_statuses: vec![401] }
}

fn passolution() -> Provider {
    provider(ProviderSettings::Passolution(PassolutionSettings {
        api_base_url: "https://api.example/".parse().unwrap(),
        token_url: "https://web.example/oauth/token".parse().unwrap(),
        client_id: "c".into(),
        client_secret: Secret::new("s"),
        token_budget_per_minute: 240,
        probe_path: "probe".into(),
        refresh_token_lifetime: std::time::Duration::from_secs(3600),
    }))
}

fn jouwomgeving() -> Provider {
    let base = "https://acme.example/api/".parse().unwrap();
    provider(ProviderSettings::JouwOmgeving(JouwOmgevingSettings {
        api_base_url: base,
        token_path: "t/".into(),
        refresh_path: None,
    }))
}

fn bro() -> Provider {
    provider(ProviderSettings::Bro(BroSettings { api_base_url: "https://bro.example/".parse().unwrap() }))
}

/// No jitter, a 2 s skew: a 100 s token obtained at `t0` renews at `t0 + 75 s`, its headers
/// are promised until `t0 + 73 s`, and a fresh one can promise 73 s.
fn c() -> Timing {
    Timing { jitter_ratio: 0.0, clock_skew: std::time::Duration::from_secs(2), ..Timing::default() }
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn oauth(known: bool) -> Vault {
    let material = SecretMaterial::OAuthTokens {
        refresh_token: Some(Secret::new("rt")),
        access_token: None,
        access_expires_at: None,
    };
    Vault { material, session: Some(c().session(Secret::new("at"), t0() + Span::seconds(100), t0(), known)) }
}

fn login() -> Vault {
    let material = SecretMaterial::UsernamePassword { username: "u".into(), password: Secret::new("p") };
    Vault { material, session: Some(c().session(Secret::new("jwt"), t0() + Span::seconds(100), t0(), true)) }
}

fn record(state: CredentialState) -> StoredCredential {
    StoredCredential { state, ..StoredCredential::active(String::new()) }
}

fn at(seconds: i64) -> OffsetDateTime {
    t0() + Span::seconds(seconds)
}

fn serve(until: i64) -> Ask {
    Ask::Serve { until: at(until) }
}

fn decided(p: &Provider, state: CredentialState, vault: &Vault, ask: Ask, now: i64) -> Decision {
    decide(p, &record(state), vault, ask, &c(), at(now))
}

#[test]
fn a_revoking_providers_header_is_promised_until_its_planned_renewal_only() {
    let Decision::Serve(header) = decided(&passolution(), CredentialState::Active, &oauth(true), serve(10), 0) else {
        panic!("a fresh token serves")
    };
    assert_eq!(header.expires_at, Some(at(73)), "renewal at 75 s, minus the skew — not the 100 s expiry");
    assert!(matches!(
        decided(&passolution(), CredentialState::Active, &oauth(true), serve(73), 60),
        Decision::Serve(_)
    ));
}

#[test]
fn asking_past_the_promise_waits_for_the_planned_renewal_then_renews() {
    let p = passolution();
    assert!(
        matches!(decided(&p, CredentialState::Active, &oauth(true), serve(74), 60), Decision::WaitUntil(w) if w == at(75))
    );
    assert!(
        matches!(decided(&p, CredentialState::Active, &oauth(true), serve(74), 74), Decision::WaitUntil(_)),
        "skew"
    );
    assert!(matches!(decided(&p, CredentialState::Active, &oauth(true), serve(80), 75), Decision::Renew));
}

#[test]
fn a_min_validity_no_fresh_token_can_meet_is_refused_before_anything_is_redeemed() {
    let p = passolution();
    let refused = decided(&p, CredentialState::Active, &oauth(true), serve(60 + 74), 60);
    assert!(
        matches!(refused, Decision::Refuse(BrokerError::MinValidityTooLong { longest }) if longest == Span::seconds(73))
    );
    // An imported token of unknown lifetime says nothing about the next one: renew and see.
    assert!(matches!(decided(&p, CredentialState::Active, &oauth(false), serve(60 + 74), 60), Decision::WaitUntil(_)));
}

#[test]
fn logins_keep_old_tokens_valid_so_they_renew_whenever_needed() {
    let p = jouwomgeving();
    let Decision::Serve(header) = decided(&p, CredentialState::Active, &login(), serve(99), 10) else { panic!() };
    assert_eq!(header.expires_at, Some(at(100)), "the token's own expiry");
    assert!(matches!(decided(&p, CredentialState::Active, &login(), serve(101), 10), Decision::Renew), "now, not at R");
    let refused = decided(&p, CredentialState::Active, &login(), serve(10 + 101), 10);
    assert!(matches!(refused, Decision::Refuse(BrokerError::MinValidityTooLong { .. })));
}

#[test]
fn static_credentials_always_serve_and_never_renew() {
    let material = SecretMaterial::BroToken { username: "a|1|2".into(), code: Secret::new("c") };
    let vault = Vault { material, session: None };
    assert!(matches!(decided(&bro(), CredentialState::Active, &vault, serve(1_000_000), 0), Decision::Serve(_)));
    assert!(matches!(decided(&bro(), CredentialState::Active, &vault, Ask::Forced, 0), Decision::Serve(_)));
    assert!(matches!(decided(&bro(), CredentialState::Active, &vault, Ask::Due, 0), Decision::WaitUntil(_)));
}

#[test]
fn the_scheduler_renews_at_the_planned_renewal_not_before() {
    let p = passolution();
    assert!(
        matches!(decided(&p, CredentialState::Active, &oauth(true), Ask::Due, 74), Decision::WaitUntil(w) if w == at(75))
    );
    assert!(matches!(decided(&p, CredentialState::Active, &oauth(true), Ask::Due, 75), Decision::Renew));
    assert!(matches!(decided(&p, CredentialState::Active, &oauth(true), Ask::Forced, 1), Decision::Renew));
}

#[test]
fn unknown_outcomes_are_probed_at_probe_at_and_never_served() {
    let p = passolution();
    let flagged = StoredCredential {
        state: CredentialState::Indeterminate,
        reason: Some(Reason::HolderVanished),
        probe_at: Some(at(30)),
        ..StoredCredential::active(String::new())
    };
    let decide_at = |ask, now| decide(&p, &flagged, &oauth(true), ask, &c(), at(now));
    assert!(matches!(decide_at(serve(1), 29), Decision::Refuse(BrokerError::NotServable { .. })));
    assert!(matches!(decide_at(Ask::Due, 29), Decision::WaitUntil(w) if w == at(30)));
    assert!(matches!(decide_at(serve(1), 30), Decision::Probe));
    assert!(matches!(decided(&p, CredentialState::Refreshing, &oauth(true), serve(1), 0), Decision::Renew));
    let reauth = decided(&p, CredentialState::ReauthRequired, &oauth(true), serve(1), 0);
    assert!(matches!(
        reauth,
        Decision::Refuse(BrokerError::NotServable { state: CredentialState::ReauthRequired, .. })
    ));
}

#[test]
fn the_planned_renewal_is_jittered_once_and_derived_alike_for_old_records() {
    let jittered = Timing { jitter_ratio: 0.05, ..c() };
    for _ in 0..100 {
        let session = jittered.session(Secret::new("t"), at(100), t0(), true);
        let planned = session.renew_at.unwrap();
        assert!((at(70)..=at(80)).contains(&planned), "{planned}");
        assert_eq!(jittered.renew_at(&session), planned, "fixed: what every replica reads");
    }
    let old = crate::domain::Session { renew_at: None, ..c().session(Secret::new("t"), at(100), t0(), false) };
    assert_eq!(jittered.renew_at(&old), at(75), "no jitter: every replica computes the same");
}
