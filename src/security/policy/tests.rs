use super::*;

fn rule(callers: &[&str], rpcs: &[Rpc], providers: &[&str], subjects: &[&str], rate: Option<(u32, u32)>) -> Rule {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Rule {
        callers: globs(&strings(callers)).unwrap(),
        rpcs: rpcs.to_vec(),
        providers: globs(&strings(providers)).unwrap(),
        subjects: globs(&strings(subjects)).unwrap(),
        rate: rate
            .map(|(p, b)| RateLimit { per_second: NonZeroU32::new(p).unwrap(), burst: NonZeroU32::new(b).unwrap() }),
    }
}

const BILLING: &str = "spiffe://example.org/ns/billing/sa/api";

fn billing() -> Enforcer {
    let broker_rpcs: Vec<Rpc> = Rpc::ALL.into_iter().filter(|r| r.in_wildcard()).collect();
    Enforcer::new(Policy {
        rules: vec![rule(
            &["spiffe://example.org/ns/billing/*"],
            &broker_rpcs,
            &["passolution", "pass-*"],
            &["tenant-42/*", ""],
            None,
        )],
    })
}

#[test]
fn globs_cross_slashes_and_empty_subject_means_the_providers_own() {
    let p = billing();
    assert_eq!(p.check(BILLING, Rpc::GetAuthorization, "passolution", "tenant-42/a/b"), Verdict::Allowed);
    assert_eq!(p.check(BILLING, Rpc::GetAuthorization, "pass-eu", ""), Verdict::Allowed);
    assert_eq!(p.check(BILLING, Rpc::GetAuthorization, "passolution", "tenant-43/a"), Verdict::Denied);
    assert_eq!(p.check(BILLING, Rpc::GetAuthorization, "bro", ""), Verdict::Denied);
    assert_eq!(
        p.check("spiffe://example.org/ns/sales/sa/api", Rpc::GetAuthorization, "passolution", ""),
        Verdict::Denied
    );
}

#[test]
fn admin_rpcs_need_a_rule_that_names_them() {
    let p = billing();
    for rpc in Rpc::ALL.into_iter().filter(|r| !r.in_wildcard()) {
        assert_eq!(p.check(BILLING, rpc, "passolution", "tenant-42/x"), Verdict::Denied, "{rpc:?}");
    }
    let admin =
        Enforcer::new(Policy { rules: vec![rule(&["ops"], &[Rpc::ListCredentials], &["*"], &["tenant-1/*"], None)] });
    assert_eq!(admin.check_listing("ops", "bro"), Verdict::Allowed);
    assert!(admin.may_see("ops", Rpc::ListCredentials, "bro", "tenant-1/a"));
    assert!(!admin.may_see("ops", Rpc::ListCredentials, "bro", "tenant-2/a"));
    assert_eq!(admin.check_listing("someone", "bro"), Verdict::Denied);
}

#[test]
fn a_rules_rate_limit_counts_per_caller() {
    let p = Enforcer::new(Policy { rules: vec![rule(&["*"], &[Rpc::GetAuthorization], &["*"], &["*"], Some((1, 2)))] });
    assert_eq!(p.check("a", Rpc::GetAuthorization, "bro", "x"), Verdict::Allowed);
    assert_eq!(p.check("a", Rpc::GetAuthorization, "bro", "x"), Verdict::Allowed);
    assert_eq!(p.check("a", Rpc::GetAuthorization, "bro", "x"), Verdict::RateLimited);
    assert_eq!(p.check("b", Rpc::GetAuthorization, "bro", "x"), Verdict::Allowed, "another caller has its own budget");
}
