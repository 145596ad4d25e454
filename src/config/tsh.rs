//! `[tsh]`: TSH's inbound API, which the gateway calls as a client to drive tokens
//! (updateCardState, updateCard, getCardInfo). Unset `tsh.base_url`: life-cycle operations are
//! recorded and stay waiting until it is set.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How `fpanDetails` is written (the Thales pages disagree: base64 or hexadecimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FpanEncoding {
    Base64,
    Hex,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TshConfig {
    /// e.g. `https://api.dbp.thalescloud.io/gtep/igwapi/v2.0`; empty: not configured.
    pub base_url: String,
    /// The issuer's client certificate for Thales (PEM chain) and its private key.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// CA certificates (PEM) trusted for TSH's server certificate; unset: the system's roots.
    pub server_ca: Option<PathBuf>,
    /// Deadline of one attempt.
    pub timeout_ms: u64,
    /// Most operations sent per second by one instance.
    pub max_per_second: u32,
    /// An operation not accepted after this long is `failed`.
    pub give_up_after_minutes: u32,
    /// A sent operation with no notice after this long is reported unconfirmed.
    pub confirm_within_minutes: u32,
    /// Thales's certificate (PEM) that `fpanDetails` is sealed to.
    pub encryption_cert: Option<PathBuf>,
    /// The identifier of that key, as Thales gave it at onboarding; sent when set.
    pub encryption_key_id: String,
    /// The name of the field carrying `encryption_key_id`.
    pub key_id_field: String,
    /// `base64` or `hex`.
    pub fpan_details_encoding: String,
}

impl Default for TshConfig {
    fn default() -> Self {
        TshConfig {
            base_url: String::new(),
            client_cert: None,
            client_key: None,
            server_ca: None,
            timeout_ms: 5_000,
            max_per_second: 20,
            give_up_after_minutes: 1_440,
            confirm_within_minutes: 15,
            encryption_cert: None,
            encryption_key_id: String::new(),
            key_id_field: "keyId".into(),
            fpan_details_encoding: "base64".into(),
        }
    }
}

impl TshConfig {
    /// True when `tsh.base_url` is set: the sender runs.
    pub fn configured(&self) -> bool {
        !self.base_url.trim().is_empty()
    }

    pub fn fpan_encoding(&self) -> FpanEncoding {
        if self.fpan_details_encoding.eq_ignore_ascii_case("hex") {
            FpanEncoding::Hex
        } else {
            FpanEncoding::Base64
        }
    }

    pub fn validate(&self, p: &mut Vec<String>) {
        let url = self.base_url.trim();
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            p.push(format!(
                "tsh.base_url: '{}' must start with https:// (or http:// for tests)",
                crate::domain::log_safe(url)
            ));
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            p.push("tsh.client_cert, tsh.client_key: set both or neither".into());
        }
        if url.starts_with("https://") && self.client_cert.is_none() {
            p.push(
                "tsh.client_cert: required with an https:// tsh.base_url (TSH authenticates the issuer by mutual TLS)"
                    .into(),
            );
        }
        if !url.is_empty() && self.encryption_cert.is_none() {
            p.push(
                "tsh.encryption_cert: required with tsh.base_url (Thales's certificate: updateCard seals fpanDetails to it)"
                    .into(),
            );
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            p.push("tsh.timeout_ms: must be 1 to 60000".into());
        }
        if !(1..=10_000).contains(&self.max_per_second) {
            p.push("tsh.max_per_second: must be 1 to 10000".into());
        }
        if !(1..=43_200).contains(&self.give_up_after_minutes) {
            p.push("tsh.give_up_after_minutes: must be 1 to 43200 (30 days)".into());
        }
        if !(1..=10_080).contains(&self.confirm_within_minutes) {
            p.push("tsh.confirm_within_minutes: must be 1 to 10080 (one week)".into());
        }
        if !matches!(
            self.fpan_details_encoding.to_ascii_lowercase().as_str(),
            "base64" | "hex"
        ) {
            p.push(format!(
                "tsh.fpan_details_encoding: '{}' is not one of base64, hex",
                crate::domain::log_safe(&self.fpan_details_encoding)
            ));
        }
        let field = &self.key_id_field;
        if field.is_empty()
            || field.len() > 64
            || !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            p.push("tsh.key_id_field: must be a JSON field name (letters, digits, _)".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_the_key() {
        let c = TshConfig {
            base_url: "ftp://x".into(),
            client_cert: Some("c.pem".into()),
            timeout_ms: 0,
            fpan_details_encoding: "rot13".into(),
            ..TshConfig::default()
        };
        let mut p = Vec::new();
        c.validate(&mut p);
        let text = p.join("\n");
        for key in [
            "tsh.base_url",
            "tsh.client_cert, tsh.client_key",
            "tsh.timeout_ms",
            "tsh.fpan_details_encoding",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        let mut p = Vec::new();
        TshConfig::default().validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        assert!(!TshConfig::default().configured());
    }
}
