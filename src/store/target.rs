//! Where Redis is and how to reach it securely: TLS (`rediss://`, with a CA file and an
//! optional client certificate for Redis mTLS), the ACL user and password, and Sentinel.
//!
//! The password never travels inside a URL we keep or print: it is a redacted [`Secret`]
//! applied to the connection info, and every URL that reaches a message goes through
//! [`redact`] first (a URL may still carry one, as `redis://user:pass@host`).

use crate::domain::Secret;
use redis::{Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisResult, TlsCertificates};
use std::fmt;
use zeroize::Zeroizing;

/// TLS towards Redis: the CA that signed the server's certificate, and for Redis mTLS
/// (`tls-auth-clients yes`) our own certificate and key. PEM bytes, read at start-up.
#[derive(Clone)]
pub struct RedisTls {
    pub ca_pem: Vec<u8>,
    pub client: Option<ClientCert>,
}

/// A client certificate chain and its private key (PEM).
#[derive(Clone)]
pub struct ClientCert {
    pub cert_pem: Vec<u8>,
    pub key_pem: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTls").field("client_cert", &self.client.is_some()).finish_non_exhaustive()
    }
}

/// Credentials and transport security, the same for every node we talk to.
#[derive(Debug, Clone, Default)]
pub struct RedisAccess {
    pub tls: Option<RedisTls>,
    /// The ACL user (`AUTH user password`); `None` with a password: the `default` user.
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// Redis Sentinel: which master to ask the sentinels for, and where they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelSettings {
    pub master_name: String,
    /// `host:port` of each sentinel.
    pub addresses: Vec<String>,
}

impl RedisAccess {
    /// A client for `url` with our credentials and TLS settings applied.
    pub fn client(&self, url: &str) -> RedisResult<Client> {
        let info = self.connection_info(url.into_connection_info()?);
        match &self.tls {
            Some(tls) => Client::build_with_tls(info, self.certificates(tls)),
            None => Client::open(info),
        }
    }

    /// Our username and password over whatever the URL said.
    pub fn connection_info(&self, info: ConnectionInfo) -> ConnectionInfo {
        let mut redis = info.redis_settings().clone();
        if let Some(username) = &self.username {
            redis = redis.set_username(username);
        }
        if let Some(password) = &self.password {
            redis = redis.set_password(password.expose());
        }
        info.set_redis_settings(redis)
    }

    pub(crate) fn certificates(&self, tls: &RedisTls) -> TlsCertificates {
        TlsCertificates {
            client_tls: tls
                .client
                .as_ref()
                .map(|c| redis::ClientTlsConfig { client_cert: c.cert_pem.clone(), client_key: c.key_pem.to_vec() }),
            root_cert: Some(tls.ca_pem.clone()),
        }
    }

    /// The address of a node discovered at run time (a Sentinel's master), with our TLS mode.
    pub(crate) fn tls_mode(&self) -> Option<redis::TlsMode> {
        self.tls.as_ref().map(|_| redis::TlsMode::Secure)
    }
}

/// Whether a URL asks for TLS.
pub fn is_tls(url: &str) -> bool {
    url.to_ascii_lowercase().starts_with("rediss://")
}

/// `redis://***@host:6379/0`: a URL fit for a message — the whole userinfo masked, since
/// `redis://word@host` is read as a user by some and written as a password by others.
/// Anything unparsable is shown by its scheme only.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() || !parsed.username().is_empty() {
                let _ = parsed.set_password(None);
                let _ = parsed.set_username("***");
            }
            parsed.to_string()
        }
        Err(_) => format!("{}://…", url.split("://").next().unwrap_or("?")),
    }
}

/// Parses `redis+sentinel://[user:password@]host:port[,host:port…]/master_name`. The
/// userinfo, if any, is for the data nodes (Redis ACL), as with `redis://`.
pub fn parse_sentinel_url(url: &str) -> Result<(SentinelSettings, Option<String>, Option<Secret>), String> {
    let rest = url.strip_prefix("redis+sentinel://").ok_or("must start with redis+sentinel://")?;
    let (authority, master) = rest.split_once('/').ok_or("names no master (…/master_name)")?;
    let master_name = master.trim_end_matches('/');
    if master_name.is_empty() || master_name.contains('/') {
        return Err("names no master (…/master_name)".into());
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let addresses: Vec<String> = hosts.split(',').map(str::to_owned).collect();
    if addresses.iter().any(|a| !valid_address(a)) {
        return Err("sentinel addresses must be host:port[,host:port…]".into());
    }
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let (username, password) = match userinfo.map(|u| u.split_once(':').unwrap_or((u, ""))) {
        Some((user, pass)) => {
            ((!user.is_empty()).then(|| decode(user)), (!pass.is_empty()).then(|| Secret::new(decode(pass))))
        }
        None => (None, None),
    };
    Ok((SentinelSettings { master_name: master_name.to_owned(), addresses }, username, password))
}

/// `host:port` with a numeric port.
pub fn valid_address(address: &str) -> bool {
    address.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// A sentinel's address as the redis crate takes it (sentinels are reached without TLS).
pub(crate) fn sentinel_addr(address: &str) -> ConnectionAddr {
    let (host, port) = address.rsplit_once(':').expect("validated at start-up");
    ConnectionAddr::Tcp(host.to_owned(), port.parse().expect("validated at start-up"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_never_carry_a_password() {
        assert_eq!(redact("redis://app:s3cret@cache:6379/0"), "redis://***@cache:6379/0");
        assert_eq!(redact("redis+sentinel://s3cret@h1:1,h2:2/m"), "redis+sentinel://…");
        assert_eq!(redact("rediss://cache:6380"), "rediss://cache:6380");
        assert!(!redact("redis://:s3cret@[bad").contains("s3cret"));
    }

    #[test]
    fn sentinel_urls_name_the_master_and_every_sentinel() {
        let (sentinel, user, pass) =
            parse_sentinel_url("redis+sentinel://app:p%40ss@h1:26379,h2:26380/mymaster").unwrap();
        assert_eq!(sentinel.master_name, "mymaster");
        assert_eq!(sentinel.addresses, ["h1:26379", "h2:26380"]);
        assert_eq!((user.as_deref(), pass.map(|p| p.expose().to_owned())), (Some("app"), Some("p@ss".to_owned())));
        assert!(parse_sentinel_url("redis+sentinel://h1:26379").is_err());
        assert!(parse_sentinel_url("redis+sentinel://h1/mymaster").is_err());
    }
}
