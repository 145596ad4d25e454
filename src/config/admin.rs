//! `[admin]`: the admin API's listener and token.

use super::{Secret, parse_addr};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// TLS on the admin listener (`[admin.tls]`): the chain and key, and optionally a CA whose
/// client certificates alone are accepted (mutual TLS).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminTlsConfig {
    pub cert_chain: PathBuf,
    pub private_key: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token: Secret,
    /// `GET /enrolments?stuck` lists enrolments answered yellow with no activation after this
    /// many minutes.
    pub stuck_after_minutes: u32,
    /// Connections open at once on the admin listener; beyond it new ones are closed at once.
    pub max_connections: usize,
    /// TLS on the admin listener (the console's cookie is then `Secure`); plain HTTP without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<AdminTlsConfig>,
}

/// `[admin]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct AdminFile {
    listen: String,
    token: Secret,
    stuck_after_minutes: u32,
    max_connections: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<AdminTlsConfig>,
}

impl Default for AdminFile {
    fn default() -> Self {
        AdminFile {
            listen: "127.0.0.1:9090".into(),
            token: Secret::default(),
            stuck_after_minutes: 30,
            max_connections: 64,
            tls: None,
        }
    }
}

impl AdminFile {
    pub(super) fn parse(self, p: &mut Vec<String>) -> AdminConfig {
        AdminConfig {
            listen: parse_addr("admin.listen", &self.listen, "127.0.0.1:9090", p),
            token: self.token,
            stuck_after_minutes: self.stuck_after_minutes,
            max_connections: self.max_connections,
            tls: self.tls,
        }
    }
}

impl AdminConfig {
    pub fn validate(&self, p: &mut Vec<String>) {
        if !self.listen.ip().is_loopback() && self.token.is_empty() {
            p.push("admin.token: required because admin.listen is not a loopback address".into());
        }
        if !(1..=10_080).contains(&self.stuck_after_minutes) {
            p.push("admin.stuck_after_minutes: must be 1 to 10080 (one week)".into());
        }
        if self.max_connections == 0 {
            p.push("admin.max_connections: must be above 0".into());
        }
        if let Some(tls) = &self.tls {
            if tls.cert_chain.as_os_str().is_empty() {
                p.push("admin.tls.cert_chain: required with [admin.tls]".into());
            }
            if tls.private_key.as_os_str().is_empty() {
                p.push("admin.tls.private_key: required with [admin.tls]".into());
            }
        }
    }
}
