//! The channel to the broker: plaintext or TLS (CA bundle, optional client certificate for
//! mTLS), a bearer token on every call when configured, and a deadline on every call.

use super::args::ConnectArgs;
use super::output::Failure;
use crate::grpc::pb::credential_admin_client::CredentialAdminClient;
use crate::grpc::pb::credential_broker_client::CredentialBrokerClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub type AdminClient = CredentialAdminClient<InterceptedService<Channel, Bearer>>;
pub type BrokerClient = CredentialBrokerClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer …` to every call when a token was given. No `Debug`: it holds
/// the token.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub fn admin(args: &ConnectArgs) -> Result<AdminClient, Failure> {
    Ok(CredentialAdminClient::with_interceptor(channel(args)?, bearer(args)?))
}

pub fn broker(args: &ConnectArgs) -> Result<BrokerClient, Failure> {
    Ok(CredentialBrokerClient::with_interceptor(channel(args)?, bearer(args)?))
}

/// `message` with the call's deadline, which the broker sees as `grpc-timeout` too.
pub fn request<T>(args: &ConnectArgs, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(args.timeout);
    request
}

fn channel(args: &ConnectArgs) -> Result<Channel, Failure> {
    let endpoint = Endpoint::from_shared(args.target.clone())
        .map_err(|_| Failure::Usage(format!("--target {:?} is not a URL like http://127.0.0.1:50051", args.target)))?
        .timeout(args.timeout)
        .connect_timeout(args.timeout);
    let endpoint = match tls(args)? {
        Some(tls) => endpoint.tls_config(tls).map_err(|e| Failure::Usage(format!("TLS configuration: {e}")))?,
        None => endpoint,
    };
    // Lazy: a broker that cannot be reached shows up as UNAVAILABLE from the call itself,
    // with the same exit code as any other UNAVAILABLE.
    Ok(endpoint.connect_lazy())
}

fn tls(args: &ConnectArgs) -> Result<Option<ClientTlsConfig>, Failure> {
    let wants_tls = args.target.starts_with("https://");
    if !wants_tls {
        if args.ca_file.is_some() || args.cert_file.is_some() {
            return Err(Failure::Usage("--ca-file and --cert-file need an https:// --target".into()));
        }
        return Ok(None);
    }
    let Some(ca_file) = &args.ca_file else {
        return Err(Failure::Usage("an https:// --target needs --ca-file (the CA that signed the broker)".into()));
    };
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca_file)?));
    if let (Some(cert), Some(key)) = (&args.cert_file, &args.key_file) {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    if let Some(name) = &args.tls_server_name {
        tls = tls.domain_name(name.clone());
    }
    Ok(Some(tls))
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::Usage(format!("cannot read {}: {}", path.display(), e.kind())))
}

fn bearer(args: &ConnectArgs) -> Result<Bearer, Failure> {
    let token = match (&args.bearer_token_file, &args.bearer_token_env) {
        (Some(path), _) => super::secret_input::from_file(path)?,
        (None, Some(var)) => super::secret_input::from_env(var)?,
        (None, None) => return Ok(Bearer(None)),
    };
    use secrecy::ExposeSecret;
    let mut value: MetadataValue<Ascii> = format!("Bearer {}", token.expose_secret())
        .parse()
        .map_err(|_| Failure::Usage("the bearer token has characters a header cannot carry".into()))?;
    value.set_sensitive(true);
    Ok(Bearer(Some(value)))
}
