//! `[issuer]`: who we are to TSH.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssuerConfig {
    /// The 10-character issuer id expected in `x-issuer-id`.
    pub id: String,
}

impl IssuerConfig {
    pub fn validate(&self, p: &mut Vec<String>) {
        if self.id.chars().count() != 10 {
            p.push(format!(
                "issuer.id: must be exactly 10 characters (the x-issuer-id TSH sends), got {}",
                self.id.chars().count()
            ));
        }
    }
}
