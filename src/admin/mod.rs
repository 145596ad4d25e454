//! The admin API, on its own listener: health and metrics (open), the rest behind the bearer
//! token `admin.token` (optional only for reads on a loopback listener: every write needs it,
//! and the configuration refuses a non-loopback `admin.listen` without a token).
//!
//! | route | answers |
//! |---|---|
//! | `GET /health` | 200 once the gateway can serve, 503 otherwise |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /openapi.yaml` | the OpenAPI document of the TSH-facing API (YAML), with `server.base_path` |
//! | `GET /cards/{issuerCardRefId}` | the card (BIN, last 4, status, masked destinations...) |
//! | `PATCH` (or `PUT`) `/cards/{issuerCardRefId}` | updates status, phone, e-mail, language |
//! | `GET /cards/{issuerCardRefId}/tokens[?refresh=true]` | the card's tokens with their state history and pending life-cycle operations; `refresh`: Thales's state beside ours |
//! | `GET /enrolments/{correlationId}` | calls, decision and rule, methods, sends, notices |
//! | `GET /enrolments?stuck[_after_minutes=N]` | enrolments answered yellow, not activated |
//! | `POST /cards/{ref}/token-actions`, `POST /devices/{tokenStorageId}/token-actions` | operators' token actions (see `operations.rs`) |
//! | `GET /operations[?state=...]`, `GET /operations/{id}`, `POST /operations/{id}/cancel`, `/retry` | the life-cycle operation log |
//! | `GET /webhooks/events`, `GET /webhooks/events/{id}`, `POST /webhooks/events/{id}/redeliver` | the webhook event log (see `webhooks.rs`) |
//! | `/console/...` | the operator console (HTML, its own login: see `console`) |
//!
//! Every answer is JSON and never holds a PAN, an OTP or an unmasked destination.

mod operations;
mod views;
mod webhooks;

use crate::state::SharedState;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

pub fn router(state: SharedState) -> Router {
    let protected = Router::new()
        .route(
            "/cards/{card_ref}",
            get(views::card)
                .patch(views::update_card)
                .put(views::update_card),
        )
        .route("/cards/{card_ref}/tokens", get(views::tokens))
        .route("/enrolments", get(views::stuck_enrolments))
        .route("/enrolments/{correlation_id}", get(views::enrolment))
        .route(
            "/cards/{card_ref}/token-actions",
            post(operations::card_action),
        )
        .route(
            "/devices/{storage}/token-actions",
            post(operations::device_action),
        )
        .route("/operations", get(operations::list))
        .route("/operations/{id}", get(operations::one))
        .route("/operations/{id}/cancel", post(operations::cancel))
        .route("/operations/{id}/retry", post(operations::retry))
        .route("/webhooks/events", get(webhooks::list))
        .route("/webhooks/events/{id}", get(webhooks::one))
        .route("/webhooks/events/{id}/redeliver", post(webhooks::redeliver))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(prometheus))
        .route("/openapi.yaml", get(openapi_yaml))
        .merge(protected)
        // The operator console: people log in as themselves (the bearer token does not open it).
        .nest_service("/console", crate::console::router(state.clone()))
        .fallback(|| async { AdminError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .with_state(state)
}

/// An admin answer other than 200: `{"error": kind, "message": text}`.
#[derive(Debug)]
pub struct AdminError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl AdminError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        AdminError {
            status,
            kind,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl From<crate::store::StoreError> for AdminError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "admin: database error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "database error (see the gateway's log)",
        )
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            axum::Json(json!({ "error": self.kind, "message": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"issuer-gateway admin\""),
            );
        }
        resp
    }
}

/// Lets a request through when it carries `Authorization: Bearer <admin.token>`; when no token
/// is configured (loopback only, see the configuration), reads (GET, HEAD) go through and every
/// write is refused.
async fn require_token(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let expected = state.config.admin.token.expose();
    if expected.is_empty() {
        let read = matches!(*req.method(), Method::GET | Method::HEAD);
        if read {
            return next.run(req).await;
        }
        return AdminError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "admin writes need a bearer token, and admin.token is not set",
        )
        .into_response();
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(token) if tokens_match(token, expected) => next.run(req).await,
        _ => AdminError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token (admin.token) is required",
        )
        .into_response(),
    }
}

/// Compares two tokens in constant time, length included: the SHA-256 digests are compared
/// with a constant-time comparison.
fn tokens_match(given: &str, expected: &str) -> bool {
    use aws_lc_rs::digest::{SHA256, digest};
    let a = digest(&SHA256, given.as_bytes());
    let b = digest(&SHA256, expected.as_bytes());
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_ref(), b.as_ref()).is_ok()
}

/// 200 once the gateway can serve (database reachable, keys loaded), 503 otherwise.
async fn health(State(state): State<SharedState>) -> Response {
    let db = tokio::time::timeout(
        std::time::Duration::from_millis(state.config.database.timeout_ms),
        state.store.ping(),
    )
    .await;
    let db_ok = matches!(db, Ok(Ok(())));
    let keys = state.keys.len();
    let ok = db_ok && keys > 0;
    let body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "database": if db_ok { "ok" } else { "unreachable" },
        "backend": state.store.backend_name(),
        "pkcs7_keys": keys,
        "operations": operations::health_detail(&state).await,
        "webhooks": webhooks::health_detail(&state).await,
        // Channels whose messages are written to files, not delivered (development only).
        "outbox_channels": state.delivery.outbox_channels().iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        // Every delivery provider and its circuit breaker (closed, open, half_open).
        "deliveryProviders": state.delivery.providers_health(state.clock.now_ms()),
        // The activation notices by state (waiting, sent, failed, unclear, skipped).
        "cardholderNotices": state.store.cardholder_notice_counts().await.ok().map(|c| c.into_iter().collect::<std::collections::BTreeMap<_, _>>()),
        "certificatesExpiringSoon": operations::expiring_certificates(&state),
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// The OpenAPI document of the TSH-facing API (openapi/issuer-gateway.yaml), its paths under the
/// configured `server.base_path`.
async fn openapi_yaml(State(state): State<SharedState>) -> Response {
    const DOCUMENT: &str = include_str!("../../openapi/issuer-gateway.yaml");
    let base = &state.config.server.base_path;
    let body = DOCUMENT.replace("\n  /issuer/igwapi/v2.0/", &format!("\n  {base}/"));
    ([(header::CONTENT_TYPE, "application/yaml")], body).into_response()
}

async fn prometheus(State(state): State<SharedState>) -> Response {
    crate::metrics::record_pool_stats(&state.store.pool_stats());
    if let Some((batches, writes)) = state.store.write_batches() {
        crate::metrics::record_write_batches(batches, writes);
    }
    let breakers: Vec<(&'static str, String, bool)> = state
        .delivery
        .providers_health(state.clock.now_ms())
        .into_iter()
        .map(|p| {
            let open = p.breaker.state != crate::delivery::breaker::BreakerState::Closed;
            (p.channel.as_str(), p.provider, open)
        })
        .collect();
    crate::metrics::record_breakers(&breakers);
    // The operation log's gauges, read now.
    let _ = operations::health_detail(&state).await;
    let _ = webhooks::health_detail(&state).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::tokens_match;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(tokens_match("s3cret-token", "s3cret-token"));
        assert!(!tokens_match("s3cret-tokem", "s3cret-token"));
        assert!(!tokens_match("s3cret", "s3cret-token"));
        assert!(!tokens_match("", "s3cret-token"));
    }
}
