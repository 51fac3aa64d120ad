//! `credbroker token PROVIDER [SUBJECT]`: the headers the broker hands out, for debugging.
//! They are live credentials, so a terminal gets a warning on stderr first.

use super::args::TokenArgs;
use super::connect;
use super::output::{self, Failure};
use crate::grpc::pb;
use serde_json::json;
use std::io::IsTerminal;

pub async fn run(args: TokenArgs) -> u8 {
    match execute(&args).await {
        Ok(()) => 0,
        Err(failure) => output::failure(args.connect.json, &failure),
    }
}

async fn execute(args: &TokenArgs) -> Result<(), Failure> {
    let c = &args.connect;
    let min_validity = args
        .min_validity
        .map(|d| prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 });
    let request =
        pb::GetAuthorizationRequest { provider: args.provider.clone(), subject: args.subject.clone(), min_validity };
    let response = connect::broker(c)?.get_authorization(connect::request(c, request)).await?.into_inner();
    if std::io::stdout().is_terminal() {
        eprintln!("credbroker: WARNING: these headers are live credentials; do not paste them anywhere.");
    }
    let expires_at = response.expires_at.as_ref().map(output::rfc3339);
    let headers: Vec<_> = response.headers.iter().map(|h| json!({ "name": h.name, "value": h.value })).collect();
    let document =
        json!({ "headers": headers, "expires_at": expires_at, "token_fingerprint": response.token_fingerprint });
    output::print(c.json, &document, || {
        let mut lines: Vec<String> = response.headers.iter().map(|h| format!("{}: {}", h.name, h.value)).collect();
        let expiry = expires_at.clone().unwrap_or_else(|| "never".into());
        lines.push(format!("# expires {expiry}, fingerprint {}", response.token_fingerprint));
        lines.join("\n")
    });
    Ok(())
}
