//! The admin API, on its own listener: health and metrics (open), the rest behind the bearer
//! token.

pub mod metrics;

use crate::api::SharedState;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(prometheus))
        .with_state(state)
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
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn prometheus() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(),
    )
        .into_response()
}
