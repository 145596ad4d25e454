//! The webhook event log on the admin API (docs/webhooks.md):
//!
//! | route | answers |
//! |---|---|
//! | `GET /webhooks/events[?state=&endpoint=&card=&limit=]` | deliveries, newest first |
//! | `GET /webhooks/events/{id}` | one event (by its `webhook-id`): body and deliveries |
//! | `POST /webhooks/events/{id}/redeliver[?endpoint=NAME]` | its delivered or dead deliveries wait again, due now, same `webhook-id` |
//!
//! Event bodies hold card references, last 4 and masked destinations only.

use super::AdminError;
use crate::state::SharedState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

const LIST_LIMIT: i64 = 1000;
const STATES: [&str; 3] = ["waiting", "delivered", "dead"];

fn valid_message_id(id: &str) -> bool {
    id.len() <= 64
        && id.starts_with("msg_")
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `GET /webhooks/events`.
pub async fn list(
    State(state): State<SharedState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AdminError> {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let wanted = get("state");
    if !wanted.is_empty() && !STATES.contains(&wanted) {
        return Err(AdminError::bad_request(format!(
            "state must be one of {}",
            STATES.join(", ")
        )));
    }
    let limit = match get("limit") {
        "" => 100,
        l => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=LIST_LIMIT).contains(n))
            .ok_or_else(|| AdminError::bad_request(format!("limit must be 1 to {LIST_LIMIT}")))?,
    };
    let rows = state
        .store
        .webhook_deliveries(wanted, get("endpoint"), get("card"), limit)
        .await?;
    Ok(Json(json!({ "count": rows.len(), "deliveries": rows })))
}

/// `GET /webhooks/events/{id}`.
pub async fn one(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    if !valid_message_id(&id) {
        return Err(AdminError::not_found("no event with this id"));
    }
    let Some((event, deliveries)) = state.store.webhook_event(&id).await? else {
        return Err(AdminError::not_found("no event with this id"));
    };
    let body: Value = serde_json::from_str(&event.body).unwrap_or(Value::Null);
    Ok(Json(json!({
        "id": event.message_id,
        "type": event.event_type,
        "issuerCardRefId": event.card_ref,
        "createdAt": event.created_at,
        "body": body,
        "deliveries": deliveries,
    })))
}

/// `POST /webhooks/events/{id}/redeliver`.
pub async fn redeliver(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AdminError> {
    if !valid_message_id(&id) {
        return Err(AdminError::not_found("no event with this id"));
    }
    let endpoint = q.get("endpoint").map(String::as_str).unwrap_or("");
    if !endpoint.is_empty() && !state.config.webhooks.iter().any(|w| w.name == endpoint) {
        return Err(AdminError::bad_request(
            "endpoint: no [[webhooks]] entry has this name",
        ));
    }
    let now = state.clock.now_ms();
    let Some(n) = state.store.redeliver_event(&id, endpoint, now).await? else {
        return Err(AdminError::not_found("no event with this id"));
    };
    tracing::info!(webhook_id = %id, endpoint, deliveries = n, "admin: webhook event redelivered");
    if n == 0 {
        return Err(AdminError::new(
            StatusCode::CONFLICT,
            "conflict",
            "nothing to redeliver: its deliveries are still waiting (or none goes to that endpoint)",
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "redelivering": n })),
    )
        .into_response())
}

/// The `/health` detail: per endpoint, deliveries waiting, dead, and the lag. Also sets the
/// metrics' gauges.
pub async fn health_detail(state: &SharedState) -> Value {
    if state.config.webhooks.is_empty() {
        return json!({ "endpoints": [] });
    }
    match state.store.webhook_stats(state.clock.now_ms()).await {
        Ok(stats) => {
            crate::metrics::record_webhook_stats(&stats);
            let endpoints: Vec<Value> = stats
                .iter()
                .map(|s| {
                    json!({
                        "name": s.endpoint,
                        "waiting": s.waiting,
                        "dead": s.dead,
                        "lagSeconds": s.lag_ms / 1000,
                    })
                })
                .collect();
            json!({ "endpoints": endpoints })
        }
        Err(e) => {
            tracing::error!(error = %e, "health: cannot read the webhook log");
            json!({ "error": "cannot read the webhook log" })
        }
    }
}
