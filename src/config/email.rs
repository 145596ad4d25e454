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
}

/// `[email]` as written.
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
        }
    }
}

impl EmailFile {
    pub(super) fn parse(self, p: &mut Vec<String>) -> EmailConfig {
        let provider = match self.provider.as_str() {
            "smtp" => EmailProvider::Smtp,
            "outbox" => EmailProvider::Outbox,
            "disabled" => EmailProvider::Disabled,
            _ => {
                p.push("email.provider: must be one of smtp, outbox, disabled".to_string());
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
                    p.push("email.tls: must be one of none, starttls, tls".to_string());
                }
                SmtpTls::Starttls
            }
        };
        EmailConfig {
            provider,
            host: self.host,
            port: self.port,
            tls,
            username: self.username,
            password: self.password,
            from: self.from,
            timeout_ms: self.timeout_ms,
        }
    }
}

impl EmailConfig {
    /// `request_timeout_ms`: server.request_timeout_ms, which the provider's must stay below.
    pub fn validate(&self, request_timeout_ms: u64, p: &mut Vec<String>) {
        if self.provider == EmailProvider::Smtp && self.host.is_empty() {
            p.push("email.host: required when email.provider = \"smtp\"".into());
        }
        if self.provider != EmailProvider::Disabled && self.from.trim().is_empty() {
            p.push("email.from: required unless email.provider = \"disabled\"".into());
        }
        super::validate_timeout("email.timeout_ms", self.timeout_ms, request_timeout_ms, p);
    }
}
