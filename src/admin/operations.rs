//! The admin API's life-cycle routes: operators' token actions (one token, every token of a
//! card, every token on one device), and the operation log (list, read, cancel, retry).
//!
//! | route | does |
//! |---|---|
//! | `POST /cards/{ref}/token-actions` | `{"action", "virtualCardId"?, "reason", "operator", "verification"?}` -> 202 `{"operationId"}` |
//! | `POST /devices/{tokenStorageId}/token-actions` | the same without `virtualCardId`, for every token on the device -> 202 `{"operationIds"}` |
//! | `GET /operations?state=waiting\|sent\|confirmed\|failed\|refused\|cancelled\|unconfirmed` | operations in that state, oldest first |
//! | `GET /operations/{id}` | one operation with its attempts |
//! | `POST /operations/{id}/cancel` | a waiting one; `{"operator"}` |
//! | `POST /operations/{id}/retry` | a failed one, now |
//!
//! Writes always need the bearer token: with no `admin.token` set they are refused (401).

use super::AdminError;
use crate::clock::format_ms;
use crate::domain::Millis;
use crate::domain::lifecycle::{OpKind, TokenAction, valid_reason};
use crate::state::SharedState;
use crate::store::{AttemptRow, NewOperation, OperationRow};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

const MAX_BODY: usize = 16 * 1024;
const LIST_LIMIT: i64 = 1000;

/// The view of an operation (never its sealed `fpanDetails`).
pub fn operation_view(
    op: &OperationRow,
    attempts: &[AttemptRow],
    unconfirmed_before: Millis,
) -> Value {
    let unconfirmed = op.state == "sent" && op.sent_at.is_some_and(|s| s.0 < unconfirmed_before.0);
    json!({
        "operationId": op.id,
        "kind": op.kind,
        "action": op.action,
        "issuerCardRefId": op.card_ref,
        "virtualCardId": op.virtual_card_id,
        "reason": op.reason,
        "operator": op.operator,
        "verification": op.verification,
        "cause": op.cause,
        "correlationId": op.correlation_id,
        "state": op.state,
        "unconfirmed": unconfirmed,
        "notices": op.notices,
        "lastError": op.last_error,
        "attempts": attempts.iter().map(|a| json!({
            "at": format_ms(a.at),
            "httpStatus": a.http_status,
            "responseCode": a.response_code,
            "outcome": a.outcome,
            "durationMs": a.duration_ms,
        })).collect::<Vec<_>>(),
        "nextAttemptAt": if op.state == "waiting" { Value::String(format_ms(op.next_attempt_at)) } else { Value::Null },
        "createdAt": format_ms(op.created_at),
        "sentAt": op.sent_at.map(format_ms),
        "finishedAt": op.finished_at.map(format_ms),
    })
}

/// Sent operations sent before this are unconfirmed.
pub fn unconfirmed_before(state: &SharedState) -> Millis {
    let now = state.clock.now_ms();
    Millis(now.0 - i64::from(state.config.tsh.confirm_within_minutes) * 60_000)
}

/// Writes need the token even on loopback.
fn require_write_token(state: &SharedState) -> Result<(), AdminError> {
    if state.config.admin.token.is_empty() {
        return Err(AdminError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "admin.token is not set: life-cycle writes are refused until it is",
        ));
    }
    Ok(())
}

fn body_object(body: &Bytes) -> Result<Map<String, Value>, AdminError> {
    if body.len() > MAX_BODY {
        return Err(AdminError::bad_request("body is larger than 16 KiB"));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(AdminError::bad_request("body must be a JSON object")),
        Err(_) => Err(AdminError::bad_request("body is not valid JSON")),
    }
}

/// A token action as given: checked fields.
struct ActionRequest {
    action: TokenAction,
    virtual_card_id: Option<String>,
    reason: String,
    operator: String,
    verification: Option<String>,
}

fn parse_action(map: &Map<String, Value>, allow_token: bool) -> Result<ActionRequest, AdminError> {
    let allowed: &[&str] = if allow_token {
        &[
            "action",
            "virtualCardId",
            "reason",
            "operator",
            "verification",
        ]
    } else {
        &["action", "reason", "operator", "verification"]
    };
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(AdminError::bad_request(format!(
            "'{}' is not a field of a token action ({})",
            crate::domain::log_safe(&k.chars().take(32).collect::<String>()),
            allowed.join(", ")
        )));
    }
    let text = |k: &str| map.get(k).and_then(Value::as_str).map(str::trim);
    let action = text("action")
        .and_then(TokenAction::parse)
        .ok_or_else(|| AdminError::bad_request("action must be SUSPEND, RESUME or DELETE"))?;
    let reason = text("reason")
        .filter(|r| valid_reason(r))
        .ok_or_else(|| {
            AdminError::bad_request(
                "reason is required: 1 to 64 characters, no card number (e.g. CUSTOMER_REQUEST, FRAUD_SUSPECTED)",
            )
        })?
        .to_owned();
    let operator = text("operator")
        .filter(|o| valid_reason(o))
        .ok_or_else(|| {
            AdminError::bad_request("operator is required: 1 to 64 characters (who acts)")
        })?
        .to_owned();
    let verification = match map.get("verification") {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) if valid_reason(v.trim()) => Some(v.trim().to_owned()),
        Some(_) => {
            return Err(AdminError::bad_request(
                "verification must be 1 to 64 characters (how the caller was verified)",
            ));
        }
    };
    let virtual_card_id = match map.get("virtualCardId") {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) if (1..=64).contains(&v.len()) => Some(v.clone()),
        Some(_) => {
            return Err(AdminError::bad_request(
                "virtualCardId must be 1 to 64 characters",
            ));
        }
    };
    Ok(ActionRequest {
        action,
        virtual_card_id,
        reason,
        operator,
        verification,
    })
}

fn operator_op(card_ref: &str, vcid: Option<String>, a: &ActionRequest) -> NewOperation {
    NewOperation {
        card_ref: card_ref.to_owned(),
        kind: OpKind::UpdateCardState,
        action: Some(a.action),
        virtual_card_id: vcid,
        reason: Some(a.reason.clone()),
        operator: Some(a.operator.clone()),
        verification: a.verification.clone(),
        cause: "operator",
        fpan_details: None,
        new_product_id: None,
    }
}

fn accepted(body: Value) -> Response {
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// `POST /cards/{ref}/token-actions`.
pub async fn card_action(
    State(state): State<SharedState>,
    Path(card_ref): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    require_write_token(&state)?;
    let a = parse_action(&body_object(&body)?, true)?;
    if state.store.card_by_ref(&card_ref).await?.is_none() {
        return Err(AdminError::not_found("no card with this issuerCardRefId"));
    }
    let vcid = match &a.virtual_card_id {
        Some(v) => {
            let v = state.data_keys.safe_identifier(v);
            let ok = match state.store.token(&v).await? {
                Some(t) => t.card_ref == card_ref,
                // Option D: a token waiting for activation that only TSH knows yet.
                None => {
                    a.action == TokenAction::Resume
                        && state.config.tsh.configured()
                        && thales_states(&state, &card_ref)
                            .await?
                            .get(&v)
                            .is_some_and(|s| s.eq_ignore_ascii_case("INACTIVE"))
                }
            };
            if !ok {
                return Err(AdminError::not_found(
                    "no token with this virtualCardId on this card",
                ));
            }
            Some(v)
        }
        None if a.action == TokenAction::Resume => {
            return Err(AdminError::bad_request(
                "a RESUME names its token: give virtualCardId",
            ));
        }
        None => None,
    };
    let op = operator_op(&card_ref, vcid, &a);
    // Option D: an agent's RESUME of a token waiting for activation.
    let id = match agent_activation(&state, &op, &a).await? {
        Some(id) => id,
        None => {
            let ids = state
                .store
                .create_operations(std::slice::from_ref(&op), state.clock.now_ms())
                .await?;
            ids.first().copied().unwrap_or_default()
        }
    };
    let label = format!("token {}", a.action);
    audit(
        &state,
        &crate::store::AuditEntry {
            actor: &a.operator,
            action: &label,
            card_ref: Some(&card_ref),
            virtual_card_id: op.virtual_card_id.as_deref(),
            operation_id: Some(id),
            reason: Some(&a.reason),
            detail: a.verification.as_deref(),
            ..api_entry()
        },
    )
    .await;
    tracing::info!(operation_id = id, card_ref = %card_ref, action = %a.action, operator = %crate::domain::log_safe(&a.operator), "admin: token action");
    Ok(accepted(json!({ "operationId": id })))
}

/// An agent's RESUME of a token waiting for activation (Option D: not one we know as active,
/// suspended or deleted), recorded as an activation by customer service with the operator and
/// the caller's verification; its ACTIVATE notice completes the newest open enrolment of the
/// card answered yellow (of the token's wallet, when the token is known). `None`: not an
/// activation.
async fn agent_activation(
    state: &SharedState,
    op: &NewOperation,
    a: &ActionRequest,
) -> Result<Option<i64>, AdminError> {
    let (Some(TokenAction::Resume), Some(v)) = (op.action, &op.virtual_card_id) else {
        return Ok(None);
    };
    let wallet = match state.store.token(v).await? {
        Some(t) if t.state != "pending" => return Ok(None),
        Some(t) => Some(t.wallet_provider_id),
        None => None,
    };
    let enrolment_id = state
        .store
        .open_yellow_enrolment(&op.card_ref, wallet.as_deref())
        .await?;
    let activation = crate::store::NewActivation {
        enrolment_id,
        wallet_provider_id: wallet,
        method: crate::domain::IdvKind::CustomerService,
        verification: a.verification.clone(),
    };
    Ok(Some(
        state
            .store
            .create_activation(op, &activation, state.clock.now_ms())
            .await?
            .id(),
    ))
}

/// `POST /devices/{tokenStorageId}/token-actions`: one operation per token on the device that
/// the action applies to (not deleted; a RESUME only of suspended ones).
pub async fn device_action(
    State(state): State<SharedState>,
    Path(storage): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    require_write_token(&state)?;
    let a = parse_action(&body_object(&body)?, false)?;
    let storage = state.data_keys.safe_identifier(&storage);
    let tokens = state.store.tokens_on_device(&storage).await?;
    let ops: Vec<NewOperation> = tokens
        .iter()
        .filter(|t| t.state != "deleted")
        .filter(|t| a.action != TokenAction::Resume || t.state == "suspended")
        .map(|t| operator_op(&t.card_ref, Some(t.virtual_card_id.clone()), &a))
        .collect();
    if ops.is_empty() {
        return Err(AdminError::not_found(
            "no token on this device that the action applies to",
        ));
    }
    let ids = state
        .store
        .create_operations(&ops, state.clock.now_ms())
        .await?;
    let label = format!("device token {}", a.action);
    for (op, id) in ops.iter().zip(&ids) {
        audit(
            &state,
            &crate::store::AuditEntry {
                actor: &a.operator,
                action: &label,
                card_ref: Some(&op.card_ref),
                virtual_card_id: op.virtual_card_id.as_deref(),
                operation_id: Some(*id),
                reason: Some(&a.reason),
                ..api_entry()
            },
        )
        .await;
    }
    tracing::info!(operations = ids.len(), action = %a.action, operator = %crate::domain::log_safe(&a.operator), "admin: device token action");
    Ok(accepted(json!({ "operationIds": ids })))
}

/// `GET /operations?state=...`.
pub async fn list(
    State(state): State<SharedState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AdminError> {
    let wanted = q.get("state").map(String::as_str).unwrap_or("waiting");
    let known = [
        "waiting",
        "sent",
        "confirmed",
        "failed",
        "refused",
        "cancelled",
        "unconfirmed",
    ];
    if !known.contains(&wanted) {
        return Err(AdminError::bad_request(format!(
            "state must be one of {}",
            known.join(", ")
        )));
    }
    let before = unconfirmed_before(&state);
    let rows = state
        .store
        .operations_in_state(wanted, before, LIST_LIMIT)
        .await?;
    let list: Vec<Value> = rows
        .iter()
        .map(|r| operation_view(r, &[], before))
        .collect();
    Ok(Json(
        json!({ "state": wanted, "count": list.len(), "operations": list }),
    ))
}

fn parse_id(id: &str) -> Result<i64, AdminError> {
    id.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| AdminError::not_found("no operation with this id"))
}

/// `GET /operations/{id}`.
pub async fn one(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let id = parse_id(&id)?;
    let op = state
        .store
        .operation(id)
        .await?
        .ok_or_else(|| AdminError::not_found("no operation with this id"))?;
    let attempts = state.store.operation_attempts(id).await?;
    Ok(Json(operation_view(
        &op,
        &attempts,
        unconfirmed_before(&state),
    )))
}

/// `POST /operations/{id}/cancel` `{"operator"}`: a waiting operation only (409 otherwise).
pub async fn cancel(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    require_write_token(&state)?;
    let id = parse_id(&id)?;
    let map = if body.is_empty() {
        Map::new()
    } else {
        body_object(&body)?
    };
    let operator = map
        .get("operator")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|o| valid_reason(o))
        .ok_or_else(|| {
            AdminError::bad_request("operator is required: 1 to 64 characters (who cancels)")
        })?;
    let (op, cancelled) = state
        .store
        .cancel_operation(id, operator, state.clock.now_ms())
        .await?
        .ok_or_else(|| AdminError::not_found("no operation with this id"))?;
    if !cancelled {
        return Err(AdminError::new(
            StatusCode::CONFLICT,
            "not_waiting",
            format!(
                "the operation is {}: only a waiting one can be cancelled",
                op.state
            ),
        ));
    }
    audit(
        &state,
        &crate::store::AuditEntry {
            actor: operator,
            action: "operation cancel",
            card_ref: Some(&op.card_ref),
            operation_id: Some(id),
            ..api_entry()
        },
    )
    .await;
    tracing::info!(operation_id = id, operator = %crate::domain::log_safe(operator), "admin: operation cancelled");
    let attempts = state.store.operation_attempts(id).await?;
    Ok(Json(operation_view(
        &op,
        &attempts,
        unconfirmed_before(&state),
    )))
}

/// `POST /operations/{id}/retry`: a failed operation, now (409 otherwise).
pub async fn retry(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    require_write_token(&state)?;
    let id = parse_id(&id)?;
    let (op, retried) = state
        .store
        .retry_operation(id, state.clock.now_ms())
        .await?
        .ok_or_else(|| AdminError::not_found("no operation with this id"))?;
    if !retried {
        return Err(AdminError::new(
            StatusCode::CONFLICT,
            "not_failed",
            format!(
                "the operation is {}: only a failed one can be retried",
                op.state
            ),
        ));
    }
    audit(
        &state,
        &crate::store::AuditEntry {
            actor: "admin-api",
            action: "operation retry",
            card_ref: Some(&op.card_ref),
            operation_id: Some(id),
            ..api_entry()
        },
    )
    .await;
    let attempts = state.store.operation_attempts(id).await?;
    Ok(Json(operation_view(
        &op,
        &attempts,
        unconfirmed_before(&state),
    )))
}

/// An audit log entry of an admin API action (the console's audit log; see `store::audit`).
pub(super) fn api_entry() -> crate::store::AuditEntry<'static> {
    crate::store::AuditEntry {
        channel: "admin-api",
        outcome: "ok",
        ..crate::store::AuditEntry::default()
    }
}

/// Writes an audit entry; the action is done already, so a failure is logged, not answered.
pub(super) async fn audit(state: &SharedState, entry: &crate::store::AuditEntry<'_>) {
    let at = state.clock.now_ms();
    if let Err(e) = state.store.append_audit(&state.data_keys, entry, at).await {
        tracing::error!(error = %e, action = entry.action, "admin: cannot write the audit log");
    }
}

/// The operation log's part of `/health` (and the gauges of `/metrics`).
pub async fn health_detail(state: &SharedState) -> Value {
    let now = state.clock.now_ms();
    match state
        .store
        .operation_stats(now, unconfirmed_before(state))
        .await
    {
        Ok(s) => {
            crate::metrics::record_operation_stats(&s);
            json!({
                "tsh": if state.config.tsh.configured() { "configured" } else { "not_configured" },
                "waiting": s.waiting,
                "failed": s.failed,
                "refused": s.refused,
                "unconfirmed": s.unconfirmed,
                "oldestWaitingSeconds": s.oldest_waiting_ms / 1000,
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "health: cannot read the operation log");
            json!({ "error": "cannot read the operation log" })
        }
    }
}

/// The card's operations not finished yet (`waiting`, `sent`), for the tokens view.
pub async fn pending_view(state: &SharedState, card_ref: &str) -> Result<Vec<Value>, AdminError> {
    let before = unconfirmed_before(state);
    Ok(state
        .store
        .operations_of_card(card_ref)
        .await?
        .iter()
        .filter(|o| o.state == "waiting" || o.state == "sent")
        .map(|o| operation_view(o, &[], before))
        .collect())
}

/// Thales's own state of each token of the card, asked now (`getCardInfo`).
pub async fn thales_states(
    state: &SharedState,
    card_ref: &str,
) -> Result<std::collections::BTreeMap<String, String>, AdminError> {
    let unavailable = |m: String| AdminError::new(StatusCode::BAD_GATEWAY, "tsh_unavailable", m);
    if !state.config.tsh.configured() {
        return Err(AdminError::new(
            StatusCode::CONFLICT,
            "tsh_not_configured",
            "refresh needs tsh.base_url",
        ));
    }
    let tokens = crate::tsh::card_tokens(&state.config.tsh, &state.config.issuer.id, card_ref)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(tokens
        .into_iter()
        .map(|t| {
            (
                state.data_keys.safe_identifier(&t.virtual_card_id),
                t.status,
            )
        })
        .collect())
}

/// The configured certificates expiring within `cert_expiry::WARN_DAYS` (for `/health`).
pub fn expiring_certificates(state: &SharedState) -> Value {
    let now = state.clock.now_ms();
    let list = crate::cert_expiry::configured(&state.config);
    Value::Array(
        crate::cert_expiry::soon(&list, now)
            .into_iter()
            .map(|e| {
                json!({
                    "setting": e.setting,
                    "expiresAt": e.not_after.map(format_ms),
                    "daysLeft": e.not_after.map(|t| (t.0 - now.0) / 86_400_000),
                })
            })
            .collect(),
    )
}
