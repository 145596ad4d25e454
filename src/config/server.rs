//! `[server]` and `[server.tls]`: the TSH-facing listener.

use super::parse_addr;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// How `levelOfTrust` is written in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LevelOfTrustCase {
    /// `green`, `yellow`, `red`.
    Lower,
    /// `GREEN`, `YELLOW`, `RED`.
    Upper,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub base_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Each call is answered within this time (500 otherwise); keep it below TSH's own timeout.
    pub request_timeout_ms: u64,
    /// Calls served at once; beyond it calls are refused with 503 rather than queued.
    pub max_concurrency: usize,
    pub level_of_trust_case: LevelOfTrustCase,
    /// Connections open at once on the TSH-facing listener; beyond it new ones are closed at once.
    pub max_connections: usize,
    /// TLS handshakes in progress at once; beyond it a new connection displaces the oldest
    /// unfinished handshake (a stalled handshake is never a free slot).
    pub max_handshakes: usize,
    /// A TLS handshake must complete within this time.
    pub handshake_timeout_ms: u64,
    /// A request head must arrive whole within this time, counted from the end of the previous
    /// answer on a kept-alive connection (so it bounds the idle keep-alive wait too).
    pub header_timeout_ms: u64,
    /// Refuse to start while a channel is on the `outbox` (development) provider
    /// (`serve --require-real-channels` sets it too).
    pub require_real_channels: bool,
}

/// Mutual TLS on the TSH-facing listener: all three files, or none.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_chain: PathBuf,
    pub private_key: PathBuf,
    pub client_ca: PathBuf,
}

/// `[server]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ServerFile {
    listen: String,
    base_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<TlsConfig>,
    request_timeout_ms: u64,
    max_concurrency: usize,
    max_connections: usize,
    max_handshakes: usize,
    handshake_timeout_ms: u64,
    header_timeout_ms: u64,
    require_real_channels: bool,
    /// `lower` (green/yellow/red) or `upper` (GREEN/YELLOW/RED) for `levelOfTrust`.
    level_of_trust_case: String,
}

impl Default for ServerFile {
    fn default() -> Self {
        ServerFile {
            listen: "127.0.0.1:8443".into(),
            base_path: "/issuer/igwapi/v2.0".into(),
            tls: None,
            request_timeout_ms: 10_000,
            max_concurrency: 512,
            max_connections: 1024,
            max_handshakes: 128,
            handshake_timeout_ms: 5_000,
            header_timeout_ms: 5_000,
            require_real_channels: false,
            level_of_trust_case: "lower".into(),
        }
    }
}

impl ServerFile {
    pub(super) fn parse(self, p: &mut Vec<String>) -> ServerConfig {
        let level_of_trust_case = match self.level_of_trust_case.as_str() {
            "lower" => LevelOfTrustCase::Lower,
            "upper" => LevelOfTrustCase::Upper,
            _ => {
                p.push("server.level_of_trust_case: must be 'lower' or 'upper'".into());
                LevelOfTrustCase::Lower
            }
        };
        ServerConfig {
            listen: parse_addr("server.listen", &self.listen, "127.0.0.1:8443", p),
            base_path: self.base_path,
            tls: self.tls,
            request_timeout_ms: self.request_timeout_ms,
            max_concurrency: self.max_concurrency,
            level_of_trust_case,
            max_connections: self.max_connections,
            max_handshakes: self.max_handshakes,
            handshake_timeout_ms: self.handshake_timeout_ms,
            header_timeout_ms: self.header_timeout_ms,
            require_real_channels: self.require_real_channels,
        }
    }
}

impl ServerConfig {
    pub fn validate(&self, p: &mut Vec<String>) {
        if !self.base_path.starts_with('/') || self.base_path.ends_with('/') {
            p.push("server.base_path: must start with '/' and not end with '/'".into());
        }
        if let Some(tls) = &self.tls {
            for (key, path) in [
                ("server.tls.cert_chain", &tls.cert_chain),
                ("server.tls.private_key", &tls.private_key),
                ("server.tls.client_ca", &tls.client_ca),
            ] {
                if path.as_os_str().is_empty() {
                    p.push(format!("{key}: required when any server.tls setting is given (mutual TLS needs all three)"));
                }
            }
        }
        if self.request_timeout_ms == 0 {
            p.push("server.request_timeout_ms: must be above 0".into());
        }
        if self.max_concurrency == 0 {
            p.push("server.max_concurrency: must be above 0".into());
        }
        for (key, n) in [
            ("server.max_connections", self.max_connections),
            ("server.max_handshakes", self.max_handshakes),
        ] {
            if n == 0 {
                p.push(format!("{key}: must be above 0"));
            }
        }
        for (key, ms) in [
            ("server.handshake_timeout_ms", self.handshake_timeout_ms),
            ("server.header_timeout_ms", self.header_timeout_ms),
        ] {
            if !(1..=600_000).contains(&ms) {
                p.push(format!("{key}: must be 1 to 600000"));
            }
        }
    }
}
