//! `[email]`: the e-mail provider.

use super::Secret;
use serde::{Deserialize, Serialize};

/// Who delivers e-mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailProvider {
    /// An SMTP relay (`email.host`, `email.port`, `email.tls`, credentials).
    Smtp,
    /// Messages written to `outbox.dir` (demo, tests).
    Outbox,
    /// No e-mail: e-mail methods are never offered.
    Disabled,
}

impl EmailProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            EmailProvider::Smtp => "smtp",
            EmailProvider::Outbox => "outbox",
            EmailProvider::Disabled => "disabled",
        }
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (a relay on loopback only).
    None,
    /// Plain connection upgraded by STARTTLS, which is required.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmailConfig {
    pub provider: EmailProvider,
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: String,
    pub password: Secret,
    pub from: String,
    pub timeout_ms: u64,
    /// The relay's name in the send records, the metrics and `/health` as written (`email.name`;
    /// empty: the provider's kind, `smtp`, or `smtp-2`... when that is taken: see
    /// [`EmailConfig::provider_names`]).
    pub name: String,
    /// The circuit breaker: after this many failed attempts in a row the relay is skipped (0:
    /// never skipped).
    pub breaker_failures: u32,
    /// ... for this long, then tried again by one send.
    pub breaker_open_seconds: u64,
    /// `[[email.fallback]]`: the relays tried in order after a certain failure of the one
    /// before (each with its own `fallback` empty).
    pub fallback: Vec<EmailConfig>,
}

/// `[email]` (or one `[[email.fallback]]` block) as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct EmailFile {
    /// `smtp`, `outbox` or `disabled`.
    provider: String,
    host: String,
    port: u16,
    /// `none`, `starttls` or `tls`.
    tls: String,
    username: String,
    password: Secret,
    from: String,
    timeout_ms: u64,
    name: String,
    breaker_failures: u32,
    breaker_open_seconds: u64,
    fallback: Vec<EmailFile>,
}

impl Default for EmailFile {
    fn default() -> Self {
        EmailFile {
            provider: "outbox".into(),
            host: String::new(),
            port: 587,
            tls: "starttls".into(),
            username: String::new(),
            password: Secret::default(),
            from: "Card Services <no-reply@issuer.example>".into(),
            timeout_ms: 3_000,
            name: String::new(),
            breaker_failures: 5,
            breaker_open_seconds: 30,
            fallback: Vec::new(),
        }
    }
}

impl EmailFile {
    pub(super) fn parse(self, p: &mut Vec<String>) -> EmailConfig {
        let mut names = Vec::new();
        let (mut config, rest) = self.parse_one("email", 1, &mut names, p);
        for (i, f) in rest.into_iter().enumerate() {
            let key = format!("email.fallback[{i}]");
            let (c, nested) = f.parse_one(&key, i + 2, &mut names, p);
            if !nested.is_empty() {
                p.push(format!(
                    "{key}.fallback: a fallback has no fallback of its own (list them all under [email])"
                ));
            }
            if c.provider != EmailProvider::Smtp {
                p.push(format!("{key}.provider: must be smtp"));
            }
            config.fallback.push(c);
        }
        config
    }

    /// One provider block: `key` is its place (`email`, `email.fallback[0]`), `position` its
    /// rank in the chain (1 for `[email]`), `names` the names taken before it.
    fn parse_one(
        self,
        key: &str,
        position: usize,
        names: &mut Vec<String>,
        p: &mut Vec<String>,
    ) -> (EmailConfig, Vec<EmailFile>) {
        let provider = match self.provider.as_str() {
            "smtp" => EmailProvider::Smtp,
            "outbox" => EmailProvider::Outbox,
            "disabled" => EmailProvider::Disabled,
            _ => {
                p.push(format!(
                    "{key}.provider: must be one of smtp, outbox, disabled"
                ));
                EmailProvider::Disabled
            }
        };
        let tls = match self.tls.as_str() {
            "none" => SmtpTls::None,
            "starttls" => SmtpTls::Starttls,
            "tls" => SmtpTls::Tls,
            _ => {
                // Only a problem where it is used (as before: an unused setting is not checked).
                if provider == EmailProvider::Smtp {
                    p.push(format!("{key}.tls: must be one of none, starttls, tls"));
                }
                SmtpTls::Starttls
            }
        };
        let kind = provider.as_str();
        super::providers::name(key, &self.name, kind, position, names, p);
        let name = self.name.trim().to_owned();
        (
            EmailConfig {
                provider,
                host: self.host,
                port: self.port,
                tls,
                username: self.username,
                password: self.password,
                from: self.from,
                timeout_ms: self.timeout_ms,
                name,
                breaker_failures: self.breaker_failures,
                breaker_open_seconds: self.breaker_open_seconds,
                fallback: Vec::new(),
            },
            self.fallback,
        )
    }
}

impl EmailConfig {
    /// `request_timeout_ms`: server.request_timeout_ms, which the provider's must stay below.
    pub fn validate(&self, request_timeout_ms: u64, p: &mut Vec<String>) {
        self.validate_one(request_timeout_ms, p);
        for (i, f) in self.fallback.iter().enumerate() {
            let mut own = Vec::new();
            f.validate_one(request_timeout_ms, &mut own);
            let prefix = format!("email.fallback[{i}].");
            p.extend(
                own.into_iter()
                    .map(|line| super::providers::rekey(&line, "email.", &prefix)),
            );
        }
    }

    /// Each relay's name, in the order they are tried: `email.name` when set, else its kind
    /// (`smtp`, or `smtp-2` when that is taken).
    pub fn provider_names(&self) -> Vec<String> {
        super::providers::names(self.chain().map(|s| (s.provider.as_str(), s.name.as_str())))
    }

    /// Every relay of the channel, in the order they are tried.
    pub fn chain(&self) -> impl Iterator<Item = &EmailConfig> {
        std::iter::once(self).chain(self.fallback.iter())
    }

    /// The checks of one provider block, its keys named `email.*`.
    fn validate_one(&self, request_timeout_ms: u64, p: &mut Vec<String>) {
        if self.provider == EmailProvider::Smtp && self.host.is_empty() {
            p.push("email.host: required when email.provider = \"smtp\"".into());
        }
        if self.provider != EmailProvider::Disabled && self.from.trim().is_empty() {
            p.push("email.from: required unless email.provider = \"disabled\"".into());
        }
        super::validate_timeout("email.timeout_ms", self.timeout_ms, request_timeout_ms, p);
        super::providers::validate_breaker(
            "email",
            self.breaker_failures,
            self.breaker_open_seconds,
            p,
        );
    }
}
