//! Certificates made in the test: CAs, a server certificate for `localhost`/127.0.0.1, client
//! certificates with SPIFFE IDs, expired ones.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};
use time::{Duration, OffsetDateTime};

pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The broker's certificate: `localhost` and 127.0.0.1.
    pub fn server(&self) -> Leaf {
        let sans =
            vec![SanType::DnsName("localhost".try_into().unwrap()), SanType::IpAddress("127.0.0.1".parse().unwrap())];
        self.leaf(sans, ExtendedKeyUsagePurpose::ServerAuth, Duration::days(1))
    }

    /// A client certificate whose first URI SAN is `spiffe_id`.
    pub fn client(&self, spiffe_id: &str) -> Leaf {
        let sans = vec![SanType::URI(spiffe_id.try_into().unwrap())];
        self.leaf(sans, ExtendedKeyUsagePurpose::ClientAuth, Duration::days(1))
    }

    /// A client certificate that expired yesterday.
    pub fn expired_client(&self, spiffe_id: &str) -> Leaf {
        let sans = vec![SanType::URI(spiffe_id.try_into().unwrap())];
        self.leaf(sans, ExtendedKeyUsagePurpose::ClientAuth, Duration::days(-1))
    }

    fn leaf(&self, sans: Vec<SanType>, usage: ExtendedKeyUsagePurpose, valid_for: Duration) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![usage];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(2);
        params.not_after = now + valid_for;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf { cert: cert.pem(), key: key.serialize_pem() }
    }
}
