//! The client of TSH's inbound API (the issuer calls Thales): `POST {tsh.base_url}/{operation}`,
//! JSON, headers `x-correlation-id` (the operation's own, kept across its retries) and
//! `x-issuer-id`, over mutual TLS with the issuer's client certificate (`tsh.client_cert`,
//! `tsh.client_key`, `tsh.server_ca`). Plain `http://` only for tests and the demo.

use crate::config::TshConfig;
use serde_json::Value;
use std::time::{Duration, Instant};

/// What TSH answered to one attempt, or why nothing came back.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An HTTP answer: its status, the body's `responseCode` when it has one, and the body.
    Answered {
        status: u16,
        response_code: Option<i64>,
        body: Value,
    },
    /// No answer within `tsh.timeout_ms`.
    TimedOut,
    /// No connection (refused, TLS failure, reset before an answer).
    NoConnection(String),
}

/// An attempt's reply and how long it took.
#[derive(Debug, Clone)]
pub struct Sent {
    pub reply: Reply,
    pub duration: Duration,
}

/// The client, cheap to clone (one connection pool).
#[derive(Clone)]
pub struct TshClient {
    http: reqwest::Client,
    base_url: String,
    issuer_id: String,
}

impl TshClient {
    /// Builds the client from `[tsh]`; every failure names the setting at fault.
    pub fn new(config: &TshConfig, issuer_id: &str) -> anyhow::Result<TshClient> {
        crate::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.timeout_ms))
            .pool_max_idle_per_host(64);
        if let (Some(cert), Some(key)) = (&config.client_cert, &config.client_key) {
            let mut pem = std::fs::read(cert).map_err(|e| {
                anyhow::anyhow!("tsh.client_cert: cannot read {}: {e}", cert.display())
            })?;
            let key_pem = zeroize::Zeroizing::new(std::fs::read(key).map_err(|e| {
                anyhow::anyhow!("tsh.client_key: cannot read {}: {e}", key.display())
            })?);
            pem.push(b'\n');
            pem.extend_from_slice(&key_pem);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                anyhow::anyhow!(
                    "tsh.client_cert, tsh.client_key: not a usable certificate and key: {e}"
                )
            })?;
            zeroize::Zeroize::zeroize(&mut pem);
            builder = builder.identity(identity);
        }
        if let Some(ca) = &config.server_ca {
            let text = std::fs::read(ca)
                .map_err(|e| anyhow::anyhow!("tsh.server_ca: cannot read {}: {e}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&text)
                .map_err(|e| anyhow::anyhow!("tsh.server_ca: {}: {e}", ca.display()))?;
            if certs.is_empty() {
                anyhow::bail!("tsh.server_ca: {} holds no certificate", ca.display());
            }
            builder = builder.tls_built_in_root_certs(false);
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .build()
            .map_err(|e| anyhow::anyhow!("tsh: cannot build the client: {e}"))?;
        Ok(TshClient {
            http,
            base_url: config.base_url.trim().trim_end_matches('/').to_owned(),
            issuer_id: issuer_id.to_owned(),
        })
    }

    /// Posts `body` to `operation` once.
    pub async fn post(&self, operation: &str, correlation_id: &str, body: &Value) -> Sent {
        let started = Instant::now();
        let result = self
            .http
            .post(format!("{}/{operation}", self.base_url))
            .header("x-correlation-id", correlation_id)
            .header("x-issuer-id", &self.issuer_id)
            .json(body)
            .send()
            .await;
        let reply = match result {
            Err(e) if e.is_timeout() => Reply::TimedOut,
            Err(e) => Reply::NoConnection(error_chain(&e)),
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Err(e) if e.is_timeout() => Reply::TimedOut,
                    Err(e) => Reply::NoConnection(error_chain(&e)),
                    Ok(bytes) => {
                        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let response_code = body.get("responseCode").and_then(|c| {
                            c.as_i64()
                                .or_else(|| c.as_str().and_then(|s| s.trim().parse().ok()))
                        });
                        Reply::Answered {
                            status,
                            response_code,
                            body,
                        }
                    }
                }
            }
        };
        Sent {
            reply,
            duration: started.elapsed(),
        }
    }
}

/// An error and its causes on one line (for the log; never holds a body).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// One token of a `getCardInfo` answer, as TSH listed it.
#[derive(Debug, Clone)]
pub struct CardToken {
    pub virtual_card_id: String,
    pub wallet: Option<String>,
    /// Thales's own state (`INACTIVE`, `ACTIVE`, `SUSPENDED`, ...).
    pub status: String,
}

/// Why `getCardInfo` gave no token list; its text is fit for an operator (no card data).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CardInfoError {
    #[error("tsh.base_url is not set")]
    NotConfigured,
    #[error("the TSH client cannot be made: {0}")]
    Client(String),
    #[error("getCardInfo answered HTTP {status}{}", response_code.map(|c| format!(", responseCode {c}")).unwrap_or_default())]
    Refused {
        status: u16,
        response_code: Option<i64>,
    },
    #[error("getCardInfo: no answer within tsh.timeout_ms")]
    TimedOut,
    #[error("getCardInfo: cannot reach TSH")]
    NoConnection,
}

/// Asks TSH for the tokens of a card now (`getCardInfo`), for the admin API, the app API, the
/// console and the CLI alike. Entries without a `virtualCardId` or `status` are left out.
pub async fn card_tokens(
    tsh: &TshConfig,
    issuer_id: &str,
    card_ref: &str,
) -> Result<Vec<CardToken>, CardInfoError> {
    if !tsh.configured() {
        return Err(CardInfoError::NotConfigured);
    }
    let client =
        TshClient::new(tsh, issuer_id).map_err(|e| CardInfoError::Client(e.to_string()))?;
    let sent = client
        .post(
            "getCardInfo",
            &crate::store::new_correlation_id(),
            &serde_json::json!({ "issuerCardRefId": card_ref }),
        )
        .await;
    match sent.reply {
        Reply::Answered {
            status: 200, body, ..
        } => Ok(body
            .get("virtualCardList")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|t| {
                        let text = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_owned);
                        Some(CardToken {
                            virtual_card_id: text("virtualCardId")?,
                            wallet: text("walletProviderId"),
                            status: text("status")?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()),
        Reply::Answered {
            status,
            response_code,
            ..
        } => Err(CardInfoError::Refused {
            status,
            response_code,
        }),
        Reply::TimedOut => Err(CardInfoError::TimedOut),
        Reply::NoConnection(_) => Err(CardInfoError::NoConnection),
    }
}
