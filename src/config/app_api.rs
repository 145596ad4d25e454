//! `[app]`: the app API (Option C), on its own listener: the bank's app backend activates a
//! waiting token after the app authenticated the cardholder. Absent: no app listener.

use super::{Secret, parse_addr};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The shortest `app.token` accepted.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, Clone, Serialize)]
pub struct AppApiConfig {
    pub listen: SocketAddr,
    /// The bearer token the bank's app backend sends (required).
    pub token: Secret,
    /// TLS on the app listener (the app backend runs on another host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<AppTlsConfig>,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// Each call's deadline, its body included.
    pub request_timeout_ms: u64,
    /// Connections open at once; beyond it new ones are closed at once.
    pub max_connections: usize,
    /// Activation requests per card within `card_limit_window_minutes`.
    pub card_limit: u32,
    pub card_limit_window_minutes: u32,
}

/// `[app.tls]`: the server's chain and key; `client_ca` (optional) makes it mutual.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AppTlsConfig {
    pub cert_chain: PathBuf,
    pub private_key: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

/// `[app]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct AppFile {
    listen: String,
    token: Secret,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<AppTlsConfig>,
    max_body_bytes: usize,
    request_timeout_ms: u64,
    max_connections: usize,
    card_limit: u32,
    card_limit_window_minutes: u32,
}

impl Default for AppFile {
    fn default() -> Self {
        AppFile {
            listen: "127.0.0.1:9091".into(),
            token: Secret::default(),
            tls: None,
            max_body_bytes: 4096,
            request_timeout_ms: 5000,
            max_connections: 64,
            card_limit: 10,
            card_limit_window_minutes: 60,
        }
    }
}

impl AppFile {
    pub(super) fn parse(self, p: &mut Vec<String>) -> AppApiConfig {
        AppApiConfig {
            listen: parse_addr("app.listen", &self.listen, "127.0.0.1:9091", p),
            token: self.token,
            tls: self.tls,
            max_body_bytes: self.max_body_bytes,
            request_timeout_ms: self.request_timeout_ms,
            max_connections: self.max_connections,
            card_limit: self.card_limit,
            card_limit_window_minutes: self.card_limit_window_minutes,
        }
    }
}

impl AppApiConfig {
    pub fn validate(&self, p: &mut Vec<String>) {
        if self.token.is_empty() {
            p.push("app.token: required when [app] is configured".into());
        } else if self.token.expose().len() < MIN_TOKEN_LEN {
            p.push(format!("app.token: at least {MIN_TOKEN_LEN} characters"));
        }
        if !(64..=65_536).contains(&self.max_body_bytes) {
            p.push("app.max_body_bytes: must be 64 to 65536".into());
        }
        if !(100..=60_000).contains(&self.request_timeout_ms) {
            p.push("app.request_timeout_ms: must be 100 to 60000".into());
        }
        if self.max_connections == 0 {
            p.push("app.max_connections: must be above 0".into());
        }
        if self.card_limit == 0 {
            p.push("app.card_limit: must be above 0".into());
        }
        if !(1..=10_080).contains(&self.card_limit_window_minutes) {
            p.push("app.card_limit_window_minutes: must be 1 to 10080 (one week)".into());
        }
        if let Some(tls) = &self.tls {
            for (key, path) in [
                ("app.tls.cert_chain", &tls.cert_chain),
                ("app.tls.private_key", &tls.private_key),
            ] {
                if path.as_os_str().is_empty() {
                    p.push(format!("{key}: required with [app.tls]"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_required_and_errors_name_the_key() {
        let file: AppFile =
            toml::from_str("listen = \"nowhere\"\ncard_limit = 0\n[tls]\ncert_chain = \"c.pem\"\n")
                .unwrap();
        let mut p = Vec::new();
        let c = file.parse(&mut p);
        c.validate(&mut p);
        let all = p.join("\n");
        for needle in [
            "app.listen: must be an address such as 127.0.0.1:9091",
            "app.token: required when [app] is configured",
            "app.card_limit: must be above 0",
            "app.tls.private_key: required with [app.tls]",
        ] {
            assert!(all.contains(needle), "missing: {needle}\n{all}");
        }
        let file: AppFile = toml::from_str("token = \"0123456789abcdef\"").unwrap();
        let mut p = Vec::new();
        let c = file.parse(&mut p);
        c.validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9091");
    }

    #[test]
    fn the_environment_configures_it_with_typed_values() {
        let vars = [
            ("ISSUER_GATEWAY__APP__TOKEN", "0123456789abcdef-env"),
            ("ISSUER_GATEWAY__APP__CARD_LIMIT", "5"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let c = crate::config::Config::load(None, vars).unwrap();
        let app = c.app.unwrap();
        assert_eq!(app.card_limit, 5);
        assert_eq!(app.token.expose(), "0123456789abcdef-env");
        assert!(
            crate::config::Config::load(None, vec![])
                .unwrap()
                .app
                .is_none()
        );
    }
}
