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
    /// The ordered rules. An empty list means the built-in default policy.
    pub rules: Vec<toml::Table>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            default_outcome: "yellow".into(),
            default_rule_name: "step-up".into(),
            rules: Vec::new(),
        }
    }
}
