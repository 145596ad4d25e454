//! `[sms]`: the SMS provider.

use super::Secret;
use serde::{Deserialize, Serialize};

/// Who delivers SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsProvider {
    /// A Twilio-compatible HTTP gateway (`sms.base_url`, `sms.account_sid`, `sms.auth_token`).
    Twilio,
    /// The Vonage (Nexmo) SMS API (`sms.base_url`, `sms.api_key`, `sms.api_secret`).
    Vonage,
    /// Messages written to `outbox.dir` (demo, tests).
    Outbox,
    /// No SMS: SMS methods are never offered.
    Disabled,
}

impl SmsProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            SmsProvider::Twilio => "twilio",
            SmsProvider::Vonage => "vonage",
            SmsProvider::Outbox => "outbox",
            SmsProvider::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SmsConfig {
    pub provider: SmsProvider,
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: Secret,
    /// `vonage`: the API key and secret.
    pub api_key: String,
    pub api_secret: Secret,
    pub from: String,
    pub timeout_ms: u64,
    /// The provider's name in the send records, the metrics and `/health` as written (`sms.name`;
    /// empty: the provider's kind, `twilio`, or `twilio-2`... when that is taken: see
    /// [`SmsConfig::provider_names`]).
    pub name: String,
    /// The circuit breaker: after this many failed attempts in a row the provider is skipped
    /// (0: never skipped).
    pub breaker_failures: u32,
    /// ... for this long, then tried again by one send.
    pub breaker_open_seconds: u64,
    /// `[[sms.fallback]]`: the providers tried in order after a certain failure of the one
    /// before (each with its own `fallback` empty).
    pub fallback: Vec<SmsConfig>,
}

/// `[sms]` (or one `[[sms.fallback]]` block) as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct SmsFile {
    /// `twilio`, `vonage`, `outbox` or `disabled`.
    provider: String,
    base_url: String,
    account_sid: String,
    auth_token: Secret,
    api_key: String,
    api_secret: Secret,
    from: String,
    timeout_ms: u64,
    name: String,
    breaker_failures: u32,
    breaker_open_seconds: u64,
    fallback: Vec<SmsFile>,
}

impl Default for SmsFile {
    fn default() -> Self {
        SmsFile {
            provider: "outbox".into(),
            base_url: String::new(),
            account_sid: String::new(),
            auth_token: Secret::default(),
            api_key: String::new(),
            api_secret: Secret::default(),
            from: String::new(),
            timeout_ms: 3_000,
            name: String::new(),
            breaker_failures: 5,
            breaker_open_seconds: 30,
            fallback: Vec::new(),
        }
    }
}

impl SmsFile {
    pub(super) fn parse(self, p: &mut Vec<String>) -> SmsConfig {
        let mut names = Vec::new();
        let mut fallback = Vec::new();
        let mut primary = self.parse_one("sms", 1, &mut names, p);
        for (i, f) in std::mem::take(&mut primary.1).into_iter().enumerate() {
            let key = format!("sms.fallback[{i}]");
            let (c, nested) = f.parse_one(&key, i + 2, &mut names, p);
            if !nested.is_empty() {
                p.push(format!(
                    "{key}.fallback: a fallback has no fallback of its own (list them all under [sms])"
                ));
            }
            if matches!(c.provider, SmsProvider::Disabled | SmsProvider::Outbox) {
                p.push(format!("{key}.provider: must be twilio or vonage"));
            }
            fallback.push(c);
        }
        let mut config = primary.0;
        config.fallback = fallback;
        config
    }

    /// One provider block: `key` is its place (`sms`, `sms.fallback[0]`), `position` its rank in
    /// the chain (1 for `[sms]`), `names` the names taken before it.
    fn parse_one(
        self,
        key: &str,
        position: usize,
        names: &mut Vec<String>,
        p: &mut Vec<String>,
    ) -> (SmsConfig, Vec<SmsFile>) {
        let provider = match self.provider.as_str() {
            "twilio" => SmsProvider::Twilio,
            "vonage" => SmsProvider::Vonage,
            "outbox" => SmsProvider::Outbox,
            "disabled" => SmsProvider::Disabled,
            _ => {
                p.push(format!(
                    "{key}.provider: must be one of twilio, vonage, outbox, disabled"
                ));
                SmsProvider::Disabled
            }
        };
        let kind = provider.as_str();
        super::providers::name(key, &self.name, kind, position, names, p);
        let name = self.name.trim().to_owned();
        (
            SmsConfig {
                provider,
                base_url: self.base_url,
                account_sid: self.account_sid,
                auth_token: self.auth_token,
                api_key: self.api_key,
                api_secret: self.api_secret,
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

impl SmsConfig {
    /// `request_timeout_ms`: server.request_timeout_ms, which the provider's must stay below.
    pub fn validate(&self, request_timeout_ms: u64, p: &mut Vec<String>) {
        self.validate_one(request_timeout_ms, p);
        for (i, f) in self.fallback.iter().enumerate() {
            let mut own = Vec::new();
            f.validate_one(request_timeout_ms, &mut own);
            let prefix = format!("sms.fallback[{i}].");
            p.extend(
                own.into_iter()
                    .map(|line| super::providers::rekey(&line, "sms.", &prefix)),
            );
        }
    }

    /// The checks of one provider block, its keys named `sms.*`.
    fn validate_one(&self, request_timeout_ms: u64, p: &mut Vec<String>) {
        if self.provider == SmsProvider::Twilio {
            for (key, value) in [
                ("sms.base_url", &self.base_url),
                ("sms.account_sid", &self.account_sid),
                ("sms.from", &self.from),
            ] {
                if value.is_empty() {
                    p.push(format!("{key}: required when sms.provider = \"twilio\""));
                }
            }
            if self.auth_token.is_empty() {
                p.push("sms.auth_token: required when sms.provider = \"twilio\"".into());
            }
        }
        if self.provider == SmsProvider::Vonage {
            for (key, value) in [
                ("sms.base_url", &self.base_url),
                ("sms.api_key", &self.api_key),
                ("sms.from", &self.from),
            ] {
                if value.is_empty() {
                    p.push(format!("{key}: required when sms.provider = \"vonage\""));
                }
            }
            if self.api_secret.is_empty() {
                p.push("sms.api_secret: required when sms.provider = \"vonage\"".into());
            }
        }
        super::validate_timeout("sms.timeout_ms", self.timeout_ms, request_timeout_ms, p);
        super::providers::validate_breaker(
            "sms",
            self.breaker_failures,
            self.breaker_open_seconds,
            p,
        );
    }

    /// Each provider's name, in the order they are tried: `sms.name` when set, else its kind
    /// (`twilio`, or `twilio-2` when that is taken).
    pub fn provider_names(&self) -> Vec<String> {
        super::providers::names(self.chain().map(|s| (s.provider.as_str(), s.name.as_str())))
    }

    /// Every provider of the channel, in the order they are tried.
    pub fn chain(&self) -> impl Iterator<Item = &SmsConfig> {
        std::iter::once(self).chain(self.fallback.iter())
    }
}
