//! The app API (Option C), on its own listener (`app.listen`): the bank's app backend, once the
//! app authenticated the cardholder, activates the token waiting for step-up.
//!
//! | route | answers |
//! |---|---|
//! | `POST /v1/activations` | `{"issuerCardRefId", "walletProviderId", "virtualCardId"?, "correlationId"?, "verification"}` -> 202 `{"operationId"}` |
//! | `GET /v1/activations/{operationId}` | `{"operationId", "state", "enrolmentState"}` |
//!
//! Every route needs the bearer token `app.token` (compared in constant time). A body is at most
//! `app.max_body_bytes`, a call at most `app.request_timeout_ms`. Refusals are JSON
//! `{"error", "message"}`: 400 `bad_request` / `pan_refused`, 401 `unauthorized`, 404
//! `unknown_card` / `not_found`, 405 `method_not_allowed`, 408 `timeout`, 409 `nothing_to_activate` / `ambiguous` /
//! `enrolment_completed`, 410 `window_passed`, 413 `body_too_large`, 429 `rate_limited`,
//! 503 `tsh_unavailable`, 500 `internal`. The API never takes a card number: a request holding
//! anything that looks like one is refused whole, unread.

mod activations;

use crate::state::SharedState;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The app API's router with its layers: the token, the deadline, panics as JSON 500, metrics.
pub fn router(state: SharedState) -> Router {
    let timeout = state
        .config
        .app
        .as_ref()
        .map(|a| a.request_timeout_ms)
        .unwrap_or(5000);
    Router::new()
        .route("/v1/activations", post(activations::create))
        .route("/v1/activations/{id}", get(activations::read))
        .fallback(|| async { AppError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            AppError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| deadline(Duration::from_millis(timeout), req, next),
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                AppError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
                .into_response()
            },
        ))
        .layer(axum::middleware::from_fn(count))
        .with_state(state)
}

/// A refusal: `{"error": kind, "message": text}`.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

/// The refusal's kind, kept on the response for the metrics.
#[derive(Debug, Clone, Copy)]
struct Outcome(&'static str);

impl AppError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        AppError {
            status,
            kind,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    fn conflict(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, kind, message)
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "app API: database failure");
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(json!({ "error": self.kind, "message": self.message })),
        )
            .into_response();
        r.extensions_mut().insert(Outcome(self.kind));
        r
    }
}

async fn require_token(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let expected = state
        .config
        .app
        .as_ref()
        .map(|a| a.token.expose())
        .unwrap_or("");
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(token) if !expected.is_empty() && tokens_match(token, expected) => next.run(req).await,
        _ => AppError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token (app.token) is required",
        )
        .into_response(),
    }
}

/// Equal or not, in time that does not depend on where they differ (both are hashed first, so
/// not on the length either).
fn tokens_match(given: &str, expected: &str) -> bool {
    use aws_lc_rs::digest::{SHA256, digest};
    let a = digest(&SHA256, given.as_bytes());
    let b = digest(&SHA256, expected.as_bytes());
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_ref(), b.as_ref()).is_ok()
}

/// The call's deadline, its body included: 408 `timeout` past it.
async fn deadline(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => AppError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the call took longer than app.request_timeout_ms",
        )
        .into_response(),
    }
}

/// Counts every call by route and outcome (`accepted`, `ok`, or the refusal's kind).
async fn count(req: Request, next: Next) -> Response {
    let route: &'static str = match (req.method().as_str(), req.uri().path()) {
        ("POST", "/v1/activations") => "create_activation",
        ("GET", p) if p.starts_with("/v1/activations/") => "read_activation",
        _ => "other",
    };
    let started = Instant::now();
    let r = next.run(req).await;
    let outcome = match r.extensions().get::<Outcome>() {
        Some(o) => o.0,
        None if r.status() == StatusCode::ACCEPTED => "accepted",
        None if r.status().is_success() => "ok",
        None => "other",
    };
    crate::metrics::record_app_request(route, outcome, started.elapsed());
    r
}

/// The app listener: bound by `Application::build` when `[app]` is configured.
pub struct Listener {
    pub listener: tokio::net::TcpListener,
    pub tls: Option<crate::tls::Reloadable>,
}

impl Listener {
    /// Binds `app.listen` and loads `app.tls.*`; each failure names its setting.
    pub async fn bind(config: &crate::config::AppApiConfig) -> anyhow::Result<Listener> {
        let tls = match &config.tls {
            Some(files) => {
                let files = files.clone();
                Some(
                    crate::tls::Reloadable::from_builder(
                        "app.tls",
                        Arc::new(move || server_config(&files)),
                    )
                    .map_err(|e| anyhow::anyhow!(e))?,
                )
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("app.listen: cannot listen on {}: {e}", config.listen))?;
        Ok(Listener { listener, tls })
    }

    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.local_addr().ok()
    }
}

/// The app listener's bounds: its own connection cap, the TSH-facing listener's timeouts.
pub fn limits(config: &crate::config::Config) -> crate::serve::Limits {
    crate::serve::Limits {
        max_connections: config.app.as_ref().map(|a| a.max_connections).unwrap_or(64),
        ..crate::serve::Limits::api(config)
    }
}

/// TLS for the app listener (`app.tls.*`): TLS 1.2 and 1.3; client certificates required and
/// verified against `app.tls.client_ca` when it is set.
fn server_config(files: &crate::config::AppTlsConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    crate::install_crypto_provider();
    let chain = crate::tls::read_certs(&files.cert_chain, "app.tls.cert_chain")?;
    match crate::data_keys::check_private_file(&files.private_key) {
        Ok(()) => {}
        Err(crate::data_keys::PermError::Io(e)) => {
            return Err(format!(
                "app.tls.private_key: cannot read {}: {e}",
                files.private_key.display()
            ));
        }
        Err(crate::data_keys::PermError::Mode(m)) => {
            return Err(format!(
                "app.tls.private_key: {} is readable by other users (mode {m:o}); run: chmod 600 {}",
                files.private_key.display(),
                files.private_key.display()
            ));
        }
    }
    let key = PrivateKeyDer::from_pem_file(&files.private_key).map_err(|_| {
        format!(
            "app.tls.private_key: {} holds no PEM private key",
            files.private_key.display()
        )
    })?;
    let builder = rustls::ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ]);
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in crate::tls::read_certs(ca, "app.tls.client_ca")? {
                roots.add(cert).map_err(|e| {
                    format!(
                        "app.tls.client_ca: {}: not a usable CA certificate: {e}",
                        ca.display()
                    )
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| format!("app.tls.client_ca: {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("app.tls.private_key: does not fit app.tls.cert_chain: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(tokens_match("0123456789abcdef", "0123456789abcdef"));
        assert!(!tokens_match("0123456789abcdeg", "0123456789abcdef"));
        assert!(!tokens_match("", "0123456789abcdef"));
    }
}
