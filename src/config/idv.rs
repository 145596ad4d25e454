//! `[idv]`: the ID&V methods offered in yellow answers.

use crate::domain::Channel;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize)]
pub struct IdvConfig {
    /// `type` of the SMS-OTP method in `idvMethodList`.
    pub sms_type: String,
    /// `type` of the e-mail-OTP method in `idvMethodList`.
    pub email_type: String,
    /// Channel order in `idvMethodList`, and the channel used when `sendOTP` names no method.
    pub channel_preference: Vec<Channel>,
}

/// `[idv]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct IdvFile {
    sms_type: String,
    email_type: String,
    channel_preference: Vec<String>,
}

impl Default for IdvFile {
    fn default() -> Self {
        IdvFile {
            sms_type: "sms".into(),
            email_type: "email".into(),
            channel_preference: vec!["sms".into(), "email".into()],
        }
    }
}

impl IdvFile {
    pub(super) fn parse(self, p: &mut Vec<String>) -> IdvConfig {
        if self.channel_preference.is_empty() {
            p.push("idv.channel_preference: list at least one of sms, email".into());
        }
        let mut channels = Vec::new();
        for (i, c) in self.channel_preference.iter().enumerate() {
            match Channel::parse(c) {
                Some(ch) if channels.contains(&ch) => {
                    p.push(format!("idv.channel_preference: {ch} is listed twice"));
                }
                Some(ch) => channels.push(ch),
                None => p.push(format!(
                    "idv.channel_preference: item {} is not a channel (sms, email)",
                    i + 1
                )),
            }
        }
        IdvConfig {
            sms_type: self.sms_type,
            email_type: self.email_type,
            channel_preference: channels,
        }
    }
}

impl IdvConfig {
    pub fn validate(&self, p: &mut Vec<String>) {
        for (key, v) in [
            ("idv.sms_type", &self.sms_type),
            ("idv.email_type", &self.email_type),
        ] {
            if v.trim().is_empty() {
                p.push(format!("{key}: must not be empty"));
            }
        }
        if self.sms_type.eq_ignore_ascii_case(&self.email_type) {
            p.push("idv.email_type: must differ from idv.sms_type".into());
        }
    }

    /// The `type` of the channel's method in `idvMethodList`.
    pub fn method_type(&self, channel: Channel) -> &str {
        match channel {
            Channel::Sms => &self.sms_type,
            Channel::Email => &self.email_type,
        }
    }
}
