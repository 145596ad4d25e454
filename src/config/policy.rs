//! `[policy]`: the decision policy as written; `decision::Policy::compile` turns it into rules.

use serde::{Deserialize, Serialize};

/// `[policy]` as written in the configuration. Rules stay raw TOML tables until compiled, so
/// that each problem can be reported with the rule it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// The outcome when no rule matches (`yellow`, `green` or `red`).
    pub default_outcome: String,
    /// The name recorded when no rule matches.
    pub default_rule_name: String,
    /// A yellow decision left with no deliverable OTP method: `red` (the default), or
    /// `customer_service` (offer the call centre instead, `[idv.customer_service]`).
    pub when_no_otp_method: String,
    /// The ordered rules. An empty list means the built-in default policy.
    pub rules: Vec<toml::Table>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            default_outcome: "yellow".into(),
            default_rule_name: "step-up".into(),
            when_no_otp_method: "red".into(),
            rules: Vec::new(),
        }
    }
}
