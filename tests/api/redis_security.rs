//! Redis connection security through the real binary: a Debian `redis-server` with TLS only
//! (`--port 0 --tls-port …`), client certificates required, and an ACL user; certificates are
//! generated here. The right password over `rediss://` works; a wrong one, a plaintext URL to
//! the TLS port, and an unknown CA each stop the broker at start-up with a message that says
//! what to check — and never the password.

use crate::harness::{Serve, TEST_KEY, bro_code, bro_token, free_port, random_prefix, wait_for_port};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};

const USER: &str = "credbroker";
const PASSWORD: &str = "acl-pass-7f3e9c";

/// A CA, and files signed by it, in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = issuer("credbroker test CA");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        for (name, sans) in [("server", vec!["127.0.0.1".to_owned(), "localhost".into()]), ("client", vec![])] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(sans).unwrap().signed_by(&key, &ca).unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        // A second CA nobody here trusts.
        std::fs::write(dir.path().join("other-ca.pem"), issuer("another CA").pem()).unwrap();
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn issuer(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// redis-server with TLS only, client certificates required, the default user off and one
/// ACL user.
pub struct TlsRedis {
    pub port: u16,
    _child: Child,
}

impl TlsRedis {
    pub async fn start(pki: &Pki) -> Self {
        let port = free_port();
        let file = |name: &str| pki.path(name).to_str().unwrap().to_owned();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", "0", "--tls-port", &port.to_string()])
            .args(["--tls-cert-file", &file("server.pem"), "--tls-key-file", &file("server.key")])
            .args(["--tls-ca-cert-file", &file("ca.pem"), "--tls-auth-clients", "yes"])
            .args(["--save", "", "--appendonly", "no", "--dir", &file("")])
            .args(["--user", "default", "off", "--user", USER, "on", &format!(">{PASSWORD}"), "~*", "&*", "+@all"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH (Debian: apt-get install redis-server)");
        wait_for_port(port).await;
        Self { port, _child: child }
    }
}

/// `credbroker serve` against the TLS Redis at `url`, with its client certificate and ACL user.
fn broker(pki: &Pki, url: &str) -> Serve {
    Serve::new()
        .env("CREDBROKER__STORE__REDIS_URL", url)
        .env("CREDBROKER__STORE__KEY_PREFIX", random_prefix())
        .env("CREDBROKER__STORE__TLS_CA_FILE", pki.path("ca.pem"))
        .env("CREDBROKER__STORE__TLS_CERT_FILE", pki.path("client.pem"))
        .env("CREDBROKER__STORE__TLS_KEY_FILE", pki.path("client.key"))
        .env("CREDBROKER__STORE__USERNAME", USER)
        .env("CREDBROKER__STORE__PASSWORD", PASSWORD)
        .env("CREDBROKER__ENCRYPTION__KEY", TEST_KEY)
        .env("RUST_LOG", "info")
}

/// Runs a broker that must refuse to start; returns everything it printed.
async fn refused(serve: Serve) -> String {
    let (status, text) = serve.fails().await;
    eprintln!("{text}");
    assert!(!status.success(), "it must not start: {text}");
    assert!(!text.contains(PASSWORD), "the password reached the output: {text}");
    text
}

#[tokio::test]
async fn rediss_with_the_right_acl_password_stores_and_serves() {
    let pki = Pki::generate();
    let redis = TlsRedis::start(&pki).await;
    let broker = broker(&pki, &format!("rediss://127.0.0.1:{}", redis.port)).capture_logs().start().await;
    broker.put("bro", "tls-org", bro_token("tls|user", &bro_code("tls"))).await.unwrap();
    let served = broker.get("bro", "tls-org").await.unwrap();
    assert!(!served.headers.is_empty());
    assert_eq!(raw_keys(&pki, redis.port).await.iter().filter(|k| k.ends_with("{bro:tls-org}:cred")).count(), 1);
    let (_, logs) = broker.finish().await;
    assert!(!logs.contains(PASSWORD), "the password reached the log");
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_start_up_error() {
    let pki = Pki::generate();
    let redis = TlsRedis::start(&pki).await;
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let text = refused(broker(&pki, &url).env("CREDBROKER__STORE__PASSWORD", "not-the-password")).await;
    assert!(text.contains("redis refused our credentials") && text.contains("store.password"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
}

#[tokio::test]
async fn plaintext_to_the_tls_port_and_an_unknown_ca_fail_clearly() {
    let pki = Pki::generate();
    let redis = TlsRedis::start(&pki).await;
    // A redis:// URL with TLS files is refused by config validation already; without them,
    // the handshake fails.
    let plain = Serve::new()
        .env("CREDBROKER__STORE__REDIS_URL", format!("redis://{USER}:{PASSWORD}@127.0.0.1:{}", redis.port))
        .env("CREDBROKER__ENCRYPTION__KEY", TEST_KEY);
    let text = refused(plain).await;
    assert!(text.contains("redis:// URL to a TLS port"), "{text}");

    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let text = refused(broker(&pki, &url).env("CREDBROKER__STORE__TLS_CA_FILE", pki.path("other-ca.pem"))).await;
    assert!(text.contains("store.tls_ca_file"), "{text}");
}

/// The keys in the TLS Redis, read by the test over its own mTLS connection.
async fn raw_keys(pki: &Pki, port: u16) -> Vec<String> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let read = |p: &Path| std::fs::read(p).unwrap();
    let certificates = redis::TlsCertificates {
        client_tls: Some(redis::ClientTlsConfig {
            client_cert: read(&pki.path("client.pem")),
            client_key: read(&pki.path("client.key")),
        }),
        root_cert: Some(read(&pki.path("ca.pem"))),
    };
    let url = format!("rediss://{USER}:{PASSWORD}@127.0.0.1:{port}");
    let client = redis::Client::build_with_tls(url, certificates).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS").arg("*").query_async(&mut conn).await.unwrap()
}
