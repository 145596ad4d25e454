//! `[database]`: SQLite (one instance) or PostgreSQL (several instances on one database).

use super::redact_url_password;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (one instance) or `postgres://USER@HOST:PORT/DB?sslmode=...` (several
    /// instances on one database; `sslmode=require` or `verify-full` for TLS).
    pub url: String,
    /// Connections in this instance's pool (PostgreSQL: the server sees instances x this).
    pub max_connections: u32,
    /// How long a call waits for a connection, a statement, a lock, or stays idle inside a
    /// transaction, before it fails with 500. Below server.request_timeout_ms.
    pub timeout_ms: u64,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url_password(&self.url))
            .field("max_connections", &self.max_connections)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://./data/issuer-gateway.db".into(),
            max_connections: 8,
            timeout_ms: 3_000,
        }
    }
}

impl DatabaseConfig {
    /// `request_timeout_ms`: server.request_timeout_ms, which the database's must stay below.
    pub fn validate(&self, request_timeout_ms: u64, p: &mut Vec<String>) {
        if !(self.url.starts_with("sqlite:")
            || self.url.starts_with("postgres://")
            || self.url.starts_with("postgresql://"))
        {
            p.push("database.url: must start with sqlite:// or postgres://".into());
        }
        if self.timeout_ms == 0 || self.timeout_ms >= request_timeout_ms {
            p.push(format!(
                "database.timeout_ms: must be above 0 and below server.request_timeout_ms ({request_timeout_ms})"
            ));
        }
        if self.max_connections == 0 {
            p.push("database.max_connections: must be above 0".into());
        }
    }
}
