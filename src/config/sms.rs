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
}

/// `[sms]` as written.
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
        }
    }
}

impl SmsFile {
    pub(super) fn parse(self, p: &mut Vec<String>) -> SmsConfig {
        let provider = match self.provider.as_str() {
            "twilio" => SmsProvider::Twilio,
            "vonage" => SmsProvider::Vonage,
            "outbox" => SmsProvider::Outbox,
            "disabled" => SmsProvider::Disabled,
            _ => {
                p.push("sms.provider: must be one of twilio, vonage, outbox, disabled".to_string());
                SmsProvider::Disabled
            }
        };
        SmsConfig {
            provider,
            base_url: self.base_url,
            account_sid: self.account_sid,
            auth_token: self.auth_token,
            api_key: self.api_key,
            api_secret: self.api_secret,
            from: self.from,
            timeout_ms: self.timeout_ms,
        }
    }
}

impl SmsConfig {
    /// `request_timeout_ms`: server.request_timeout_ms, which the provider's must stay below.
    pub fn validate(&self, request_timeout_ms: u64, p: &mut Vec<String>) {
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
    }
}
