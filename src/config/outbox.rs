//! `[outbox]`: the local folder the `outbox` provider writes messages to.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    pub dir: PathBuf,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            dir: PathBuf::from("./data/outbox"),
        }
    }
}
