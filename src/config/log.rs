//! `[log]`: the log's format and level.

use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON unless standard error is a terminal.
    Auto,
    Json,
    Text,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `issuer_gateway=debug,info`.
    pub level: String,
}

/// `[log]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct LogFile {
    /// `auto` (JSON unless standard error is a terminal), `json` or `text`.
    format: String,
    level: String,
}

impl Default for LogFile {
    fn default() -> Self {
        LogFile {
            format: "auto".into(),
            level: "info".into(),
        }
    }
}

impl LogFile {
    pub(super) fn parse(self, p: &mut Vec<String>) -> LogConfig {
        let format = match self.format.as_str() {
            "auto" => LogFormat::Auto,
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            _ => {
                p.push("log.format: must be one of auto, json, text".to_string());
                LogFormat::Auto
            }
        };
        LogConfig {
            format,
            level: self.level,
        }
    }
}
