//! Demo seed data, so a newcomer can point the broker at a running fake at once. These
//! are fake secrets of a local fake; printing them is the point.

use std::fmt;

use crate::{FakeUpstream, Provider};

/// What [`FakeUpstream::seed_demo`] created.
#[derive(Clone, Debug)]
pub struct DemoSeed {
    pub base_url: String,
    pub pass_url: String,
    pub pass_api_key: String,
    pub pass_login: (String, String),
    pub pass_client_number: String,
    pub bro_url: String,
    pub bro_token: (String, String),
    pub passolution_url: String,
    pub passolution_client: (String, String, String),
    /// Who may log in on the consent page.
    pub passolution_login: (String, String),
    pub passolution_access_token: String,
    pub passolution_refresh_token: String,
    pub passolution_code: String,
    pub jouwomgeving_url: String,
    pub jouwomgeving_login: (String, String),
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

impl FakeUpstream {
    /// Seeds one account of each kind and returns them.
    pub fn seed_demo(&self) -> DemoSeed {
        let pass_login = pair("demo.pashouder", "demo-password-1");
        self.add_pass_user(&pass_login.0, &pass_login.1, true);
        self.add_pass_client_number("100001");
        let bro_token =
            pair("0dce6fc98256|123456789|1234", "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a1c3e5b7d9f0a2c4e6b8d0f");
        self.add_bro_token(&bro_token.0, &bro_token.1);
        // The embedded default's connect listener: the broker's callback for instance `passolution`.
        let (id, secret, redirect) =
            ("demo-client", "demo-client-secret", "http://127.0.0.1:8081/callback/passolution");
        self.add_passolution_client(id, secret, redirect);
        let passolution_login = pair("demo.traveller", "demo-password-1");
        self.add_passolution_user(&passolution_login.0, &passolution_login.1);
        let (access, refresh) = self.issue_passolution_tokens(id);
        let jouwomgeving_login = pair("demo-application", "demo-password-1");
        self.add_jouwomgeving_user(&jouwomgeving_login.0, &jouwomgeving_login.1);
        DemoSeed {
            base_url: self.base_url(),
            pass_url: self.url(Provider::Pass),
            pass_api_key: self.pass_api_key(),
            pass_login,
            pass_client_number: "100001".into(),
            bro_url: self.url(Provider::Bro),
            bro_token,
            passolution_url: self.url(Provider::Passolution),
            passolution_client: (id.into(), secret.into(), redirect.into()),
            passolution_login,
            passolution_access_token: access,
            passolution_refresh_token: refresh,
            passolution_code: self.issue_passolution_code(id, None),
            jouwomgeving_url: self.url(Provider::JouwOmgeving),
            jouwomgeving_login,
        }
    }
}

impl fmt::Display for DemoSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fake-upstream listening on {}", self.base_url)?;
        writeln!(f, "\nPASS          {}", self.pass_url)?;
        writeln!(f, "  API-Key       {}", self.pass_api_key)?;
        writeln!(f, "  login         {} / {}", self.pass_login.0, self.pass_login.1)?;
        writeln!(
            f,
            "  client number {}   (AppBearer {},{})",
            self.pass_client_number, self.pass_api_key, self.pass_client_number
        )?;
        writeln!(f, "\nBRO           {}", self.bro_url)?;
        writeln!(f, "  username      {}", self.bro_token.0)?;
        writeln!(f, "  code          {}", self.bro_token.1)?;
        writeln!(f, "\nPassolution   {}   (token URL {}oauth/token)", self.passolution_url, self.passolution_url)?;
        let (id, secret, redirect) = &self.passolution_client;
        writeln!(f, "  client        {id} / {secret}   redirect_uri {redirect}")?;
        let (user, password) = &self.passolution_login;
        writeln!(f, "  consent login {user} / {password}   (the authorize page)")?;
        writeln!(f, "  access token  {}", self.passolution_access_token)?;
        writeln!(f, "  refresh token {}", self.passolution_refresh_token)?;
        writeln!(f, "  auth code     {}", self.passolution_code)?;
        writeln!(f, "\nJouwOmgeving  {}api/", self.jouwomgeving_url)?;
        write!(f, "  login         {} / {}", self.jouwomgeving_login.0, self.jouwomgeving_login.1)
    }
}
