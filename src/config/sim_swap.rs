//! `[sim_swap]`: the CAMARA SIM Swap check before SMS (off until `sim_swap.base_url` is set).

use super::Secret;
use serde::{Deserialize, Serialize};

/// What a SIM-swap check that cannot be answered (time-out, error) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SimSwapOnError {
    /// Use SMS anyway (the check is a signal, not a gate).
    Allow,
    /// Treat the number as swapped: no SMS.
    Refuse,
}

#[derive(Debug, Clone, Serialize)]
pub struct SimSwapConfig {
    /// The CAMARA SIM Swap API's base (`{base_url}/check`); empty: no check.
    pub base_url: String,
    /// The OAuth 2.0 token endpoint (client credentials).
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// A SIM changed within this many hours counts as swapped.
    pub max_age_hours: u32,
    /// The deadline of one check, token request included.
    pub timeout_ms: u64,
    pub on_error: SimSwapOnError,
    /// Only `client_credentials`.
    pub grant_type: String,
    /// How long one number's answer is reused (0: every check asks).
    pub cache_ttl_seconds: u32,
}

/// `[sim_swap]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct SimSwapFile {
    base_url: String,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    max_age_hours: u32,
    timeout_ms: u64,
    /// `allow` or `refuse`.
    on_error: String,
    grant_type: String,
    cache_ttl_seconds: u32,
}

impl Default for SimSwapFile {
    fn default() -> Self {
        SimSwapFile {
            base_url: String::new(),
            token_url: String::new(),
            client_id: String::new(),
            client_secret: Secret::default(),
            max_age_hours: 72,
            timeout_ms: 800,
            on_error: "allow".into(),
            grant_type: "client_credentials".into(),
            cache_ttl_seconds: 300,
        }
    }
}

impl SimSwapFile {
    pub(super) fn parse(self, p: &mut Vec<String>) -> SimSwapConfig {
        let on_error = match self.on_error.as_str() {
            "allow" => SimSwapOnError::Allow,
            "refuse" => SimSwapOnError::Refuse,
            other => {
                p.push(format!(
                    "sim_swap.on_error: '{other}' is not one of allow, refuse"
                ));
                SimSwapOnError::Allow
            }
        };
        SimSwapConfig {
            base_url: self.base_url,
            token_url: self.token_url,
            client_id: self.client_id,
            client_secret: self.client_secret,
            max_age_hours: self.max_age_hours,
            timeout_ms: self.timeout_ms,
            on_error,
            grant_type: self.grant_type,
            cache_ttl_seconds: self.cache_ttl_seconds,
        }
    }
}

impl SimSwapConfig {
    /// True when the check is configured.
    pub fn enabled(&self) -> bool {
        !self.base_url.is_empty()
    }

    pub fn validate(&self, request_timeout_ms: u64, p: &mut Vec<String>) {
        if !self.enabled() {
            return;
        }
        for (key, value) in [
            ("sim_swap.token_url", &self.token_url),
            ("sim_swap.client_id", &self.client_id),
        ] {
            if value.is_empty() {
                p.push(format!("{key}: required when sim_swap.base_url is set"));
            }
        }
        if self.client_secret.is_empty() {
            p.push("sim_swap.client_secret: required when sim_swap.base_url is set".into());
        }
        for (key, url) in [
            ("sim_swap.base_url", &self.base_url),
            ("sim_swap.token_url", &self.token_url),
        ] {
            if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
                p.push(format!("{key}: must be an http:// or https:// URL"));
            }
        }
        if self.grant_type != "client_credentials" {
            p.push(
                "sim_swap.grant_type: only client_credentials is supported (an operator that requires a per-number grant such as CIBA needs its own adapter)".into(),
            );
        }
        if !(1..=2400).contains(&self.max_age_hours) {
            p.push("sim_swap.max_age_hours: must be 1 to 2400".into());
        }
        super::validate_timeout(
            "sim_swap.timeout_ms",
            self.timeout_ms,
            request_timeout_ms,
            p,
        );
    }
}
