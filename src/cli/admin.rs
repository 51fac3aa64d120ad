//! `credbroker admin put|status|list|delete`: one function per subcommand.

use super::args::{AdminArgs, AdminCommand, ConnectArgs, PutSecret};
use super::connect::{self, AdminClient};
use super::output::{self, Failure, StatusView};
use super::secret_input;
use crate::grpc::pb::{self, put_credential_request::Secret};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

pub async fn run(args: AdminArgs) -> u8 {
    match execute(args.command, &args.connect).await {
        Ok(()) => 0,
        Err(failure) => output::failure(args.connect.json, &failure),
    }
}

async fn execute(command: AdminCommand, c: &ConnectArgs) -> Result<(), Failure> {
    match command {
        AdminCommand::Put { provider, subject, secret } => put(c, provider, subject, secret).await,
        AdminCommand::Status { provider, subject } => status(c, provider, subject).await,
        AdminCommand::List { provider, page_size } => list(c, provider, page_size).await,
        AdminCommand::Delete { provider, subject } => delete(c, provider, subject).await,
        AdminCommand::Rewrap { provider, expect_active_key, batch, records_per_second } => {
            let request =
                pb::RewrapRequest { provider, expect_active_key, max_records: batch, records_per_second, after: None };
            rewrap(c, request).await
        }
    }
}

async fn put(c: &ConnectArgs, provider: String, subject: String, secret: PutSecret) -> Result<(), Failure> {
    // Read (and check) the secret before connecting: bad input sends nothing.
    let request = pb::PutCredentialRequest { provider, subject, secret: Some(secret_of(secret)?) };
    let status = connect::admin(c)?.put_credential(connect::request(c, request)).await?.into_inner();
    let view = StatusView::from(&status);
    output::print(c.json, &view, || format!("stored {}", view.line()));
    Ok(())
}

async fn status(c: &ConnectArgs, provider: String, subject: String) -> Result<(), Failure> {
    let reference = pb::CredentialRef { provider, subject };
    let status = connect::admin(c)?.get_credential_status(connect::request(c, reference)).await?.into_inner();
    let view = StatusView::from(&status);
    output::print(c.json, &view, || view.line());
    Ok(())
}

async fn list(c: &ConnectArgs, provider: String, page_size: u32) -> Result<(), Failure> {
    let all = all_pages(&mut connect::admin(c)?, c, provider, page_size).await?;
    let views: Vec<StatusView> = all.iter().map(StatusView::from).collect();
    output::print(c.json, &views, || {
        let lines: Vec<String> = views.iter().map(StatusView::line).collect();
        if lines.is_empty() { "no credentials".to_owned() } else { lines.join("\n") }
    });
    Ok(())
}

async fn all_pages(
    client: &mut AdminClient,
    c: &ConnectArgs,
    provider: String,
    page_size: u32,
) -> Result<Vec<pb::CredentialStatus>, Failure> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListCredentialsRequest { provider: provider.clone(), page_size, page_token };
        let page = client.list_credentials(connect::request(c, request)).await?.into_inner();
        all.extend(page.credentials);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

async fn delete(c: &ConnectArgs, provider: String, subject: String) -> Result<(), Failure> {
    let reference = pb::CredentialRef { provider: provider.clone(), subject: subject.clone() };
    connect::admin(c)?.delete_credential(connect::request(c, reference)).await?;
    let done = json!({ "deleted": { "provider": provider, "subject": subject } });
    output::print(c.json, &done, || format!("deleted {provider}/{subject}"));
    Ok(())
}

/// Calls `Rewrap` until the walk is complete; one progress line per call (human output).
async fn rewrap(c: &ConnectArgs, mut request: pb::RewrapRequest) -> Result<(), Failure> {
    let mut client = connect::admin(c)?;
    let mut totals = RewrapTotals::default();
    loop {
        let answer = client.rewrap(connect::request(c, request.clone())).await?.into_inner();
        totals.add(&answer);
        if !c.json {
            println!("{}", totals.line());
        }
        match answer.next {
            Some(next) => request.after = Some(next),
            None => break,
        }
    }
    output::print(c.json, &totals, || totals.summary());
    if totals.problems.is_empty() { Ok(()) } else { Err(Failure::Incomplete) }
}

/// What a whole rewrap run did, summed over its calls.
#[derive(Default, serde::Serialize)]
struct RewrapTotals {
    active_key: String,
    seen: u64,
    rewrapped: u64,
    already_current: u64,
    skipped: u64,
    unreadable: u64,
    problems: Vec<serde_json::Value>,
}

impl RewrapTotals {
    fn add(&mut self, answer: &pb::RewrapResponse) {
        self.active_key.clone_from(&answer.active_key);
        self.seen += answer.seen;
        self.rewrapped += answer.rewrapped;
        self.already_current += answer.already_current;
        self.skipped += answer.skipped;
        self.unreadable += answer.unreadable;
        self.problems.extend(answer.problems.iter().map(|p| {
            let kind = p.kind().as_str_name().trim_start_matches("REWRAP_PROBLEM_KIND_");
            json!({ "provider": p.provider, "subject": p.subject, "kind": kind, "detail": p.detail })
        }));
    }

    fn line(&self) -> String {
        format!(
            "seen {}  rewrapped {}  already current {}  skipped {}  unreadable {}  (active key {})",
            self.seen, self.rewrapped, self.already_current, self.skipped, self.unreadable, self.active_key
        )
    }

    fn summary(&self) -> String {
        let mut lines = vec![format!("rewrap complete: {}", self.line())];
        lines.extend(self.problems.iter().map(|p| {
            format!(
                "  {}/{}  {}  {}",
                p["provider"].as_str().unwrap_or(""),
                p["subject"].as_str().unwrap_or(""),
                p["kind"].as_str().unwrap_or(""),
                p["detail"].as_str().unwrap_or("")
            )
        }));
        if !self.problems.is_empty() {
            lines.push("some records were left as they were: run again (or on a replica that has their key)".into());
        }
        lines.join("\n")
    }
}

/// The proto's secret from the kind's flags and the secret input.
fn secret_of(kind: PutSecret) -> Result<Secret, Failure> {
    let text = |s: &SecretString| s.expose_secret().to_owned();
    Ok(match kind {
        PutSecret::UsernamePassword { username, from } => {
            let password = text(&secret_input::read(&from)?);
            Secret::UsernamePassword(pb::UsernamePassword { username, password })
        }
        PutSecret::ClientNumber { from } => Secret::ClientNumber(text(&secret_input::read(&from)?)),
        PutSecret::BroToken { username, from } => {
            Secret::BroToken(pb::BroToken { username, code: text(&secret_input::read(&from)?) })
        }
        PutSecret::OauthTokens { access_expires_at, from } => {
            let lines = secret_input::lines(&secret_input::read(&from)?, 1)?;
            let access_expires_at = access_expires_at.as_deref().map(timestamp).transpose()?;
            let access_token = lines.get(1).map(text).unwrap_or_default();
            Secret::OauthTokens(pb::OAuthTokens { refresh_token: text(&lines[0]), access_token, access_expires_at })
        }
        PutSecret::AuthorizationCode { redirect_uri, from } => {
            let lines = secret_input::lines(&secret_input::read(&from)?, 1)?;
            let code_verifier = lines.get(1).map(text).unwrap_or_default();
            Secret::AuthorizationCode(pb::AuthorizationCode { code: text(&lines[0]), redirect_uri, code_verifier })
        }
    })
}

fn timestamp(value: &str) -> Result<prost_types::Timestamp, Failure> {
    let at = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| Failure::Usage(format!("--access-expires-at {value:?} is not an RFC 3339 time")))?;
    Ok(prost_types::Timestamp { seconds: at.unix_timestamp(), nanos: 0 })
}
