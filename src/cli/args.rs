//! What an operator types. Secrets have no argument of their own: only where to read them
//! from (`--secret-file`, `--secret-env`, else standard input).

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Where the broker is and how to reach it; shared by `admin` and `token`.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The broker: http://host:port (plaintext) or https://host:port (TLS).
    #[arg(long, env = "CREDBROKER_TARGET", default_value = "http://127.0.0.1:50051", global = true)]
    pub target: String,
    /// PEM bundle of the CA(s) that signed the broker's certificate (https targets).
    #[arg(long, env = "CREDBROKER_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mTLS (with --key-file).
    #[arg(long, env = "CREDBROKER_CERT_FILE", global = true, requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of --cert-file.
    #[arg(long, env = "CREDBROKER_KEY_FILE", global = true, requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// The name to verify in the broker's certificate, when it differs from the target's host.
    #[arg(long, env = "CREDBROKER_TLS_SERVER_NAME", global = true)]
    pub tls_server_name: Option<String>,
    /// File holding a bearer token sent as `authorization: Bearer …` on every call.
    #[arg(long, env = "CREDBROKER_BEARER_TOKEN_FILE", global = true, conflicts_with = "bearer_token_env")]
    pub bearer_token_file: Option<PathBuf>,
    /// Name of an environment variable holding that bearer token.
    #[arg(long, global = true)]
    pub bearer_token_env: Option<String>,
    /// Deadline of each call.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub timeout: Duration,
    /// Machine-readable output: one JSON document on stdout (errors as JSON on stderr).
    #[arg(long, global = true)]
    pub json: bool,
}

/// `credbroker admin …`: manage stored credentials. Never prints a secret.
#[derive(Args, Debug)]
pub struct AdminArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Store (or replace) a credential. The secret is read from stdin, --secret-file or --secret-env.
    Put {
        provider: String,
        subject: String,
        #[command(subcommand)]
        secret: PutSecret,
    },
    /// Show a credential's state, expiry and version.
    Status { provider: String, subject: String },
    /// List a provider instance's credentials (every page).
    List {
        provider: String,
        /// Credentials per request.
        #[arg(long, default_value_t = 100)]
        page_size: u32,
    },
    /// Delete a credential (PASS logins are also logged out upstream).
    Delete { provider: String, subject: String },
    /// Re-seal every stored record with the active key (step 3 of docs/key-rotation.md):
    /// calls `Rewrap` until the walk is complete, then prints the totals and every record left
    /// to handle. Exit 8 when some were skipped or unreadable (run again, or on a replica with
    /// the old key).
    Rewrap {
        /// Only this provider instance; default: every configured instance.
        #[arg(long, default_value = "")]
        provider: String,
        /// The key id the answering replica must seal with (protects against a replica not
        /// yet switched over).
        #[arg(long)]
        expect_active_key: String,
        /// Records examined per call.
        #[arg(long, default_value_t = 500)]
        batch: u32,
        /// Records re-sealed per second at most.
        #[arg(long, default_value_t = 100)]
        records_per_second: u32,
    },
}

/// The kinds of secret `put` can store. What each reads from the secret input is said in
/// its help; the non-secret parts are flags.
#[derive(Subcommand, Debug)]
pub enum PutSecret {
    /// PASS pashouder login or JouwOmgeving application user; input: the password.
    UsernamePassword {
        #[arg(long)]
        username: String,
        #[command(flatten)]
        from: SecretFrom,
    },
    /// PASS AppBearer; input: the client number.
    ClientNumber {
        #[command(flatten)]
        from: SecretFrom,
    },
    /// BRO token; input: the 64-hex code.
    BroToken {
        #[arg(long)]
        username: String,
        #[command(flatten)]
        from: SecretFrom,
    },
    /// Passolution tokens obtained elsewhere; input: the refresh token on the first line,
    /// optionally the access token on the second.
    OauthTokens {
        /// When the access token expires (RFC 3339); default: its JWT `exp`.
        #[arg(long)]
        access_expires_at: Option<String>,
        #[command(flatten)]
        from: SecretFrom,
    },
    /// Passolution authorization code, exchanged by the broker; input: the code on the first
    /// line, optionally the PKCE code verifier on the second.
    AuthorizationCode {
        #[arg(long)]
        redirect_uri: String,
        #[command(flatten)]
        from: SecretFrom,
    },
}

/// Where the secret comes from; standard input when neither is given.
#[derive(Args, Debug, Clone, Default)]
pub struct SecretFrom {
    /// Read the secret from this file.
    #[arg(long, conflicts_with = "secret_env")]
    pub secret_file: Option<PathBuf>,
    /// Read the secret from this environment variable (its name, not its value).
    #[arg(long)]
    pub secret_env: Option<String>,
}

/// `credbroker token PROVIDER [SUBJECT]`: print the headers the broker hands out, for
/// debugging. They are live credentials: a warning goes to stderr when stdout is a terminal.
#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    pub provider: String,
    /// Empty or absent: the provider instance's own credential.
    #[arg(default_value = "")]
    pub subject: String,
    /// The headers must stay valid at least this long.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub min_validity: Option<Duration>,
}
