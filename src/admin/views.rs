//! The admin API's answers: cards, tokens, enrolments. Built from stored rows only, which hold no
//! PAN, OTP or destination in clear (destinations are shown in their masked form).

use super::AdminError;
use crate::clock::format_ms;
use crate::domain::{CardStatus, Email, Millis, Phone};
use crate::state::SharedState;
use crate::store::{CardRow, CardUpdate, ContactUpdate};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// How many of a card's enrolments its view lists.
const CARD_ENROLMENTS: i64 = 20;
/// Default and largest number of stuck enrolments listed.
const STUCK_DEFAULT_LIMIT: i64 = 100;
const STUCK_MAX_LIMIT: i64 = 1000;
/// Largest card update body.
const MAX_UPDATE_BYTES: usize = 16 * 1024;

type Answer = Result<Json<Value>, AdminError>;

fn time(ms: Millis) -> Value {
    Value::String(format_ms(ms))
}

fn opt_time(ms: Option<Millis>) -> Value {
    ms.map(time).unwrap_or(Value::Null)
}

fn card_view(card: &CardRow) -> Value {
    let destination = |masked: &Option<String>, changed: Option<Millis>| match masked {
        Some(m) => json!({ "masked": m, "changedAt": opt_time(changed) }),
        None => json!({ "masked": null, "changedAt": opt_time(changed) }),
    };
    let wallets: Vec<&str> = card
        .wallets
        .split(';')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    json!({
        "issuerCardRefId": card.card_ref,
        "bin": card.bin,
        "last4": card.last4,
        "exp": card.exp,
        "status": card.status.as_str(),
        "productId": card.product_id,
        "language": card.language,
        "wallets": wallets,
        "phone": destination(&card.phone_masked, card.phone_changed_at),
        "email": destination(&card.email_masked, card.email_changed_at),
        "createdAt": time(card.created_at),
        "updatedAt": time(card.updated_at),
    })
}

/// `GET /cards/{issuerCardRefId}`: the card, and its most recent enrolments.
pub async fn card(State(state): State<SharedState>, Path(card_ref): Path<String>) -> Answer {
    let card = state
        .store
        .card_by_ref(&card_ref)
        .await?
        .ok_or_else(|| AdminError::not_found("no card with this issuerCardRefId"))?;
    let enrolments = state
        .store
        .admin_enrolments_of_card(&card_ref, CARD_ENROLMENTS)
        .await?;
    let mut view = card_view(&card);
    if let Some(obj) = view.as_object_mut() {
        let list: Vec<Value> = enrolments
            .iter()
            .map(|e| {
                json!({
                    "correlationId": e.correlation_id,
                    "walletProviderId": e.wallet_provider_id,
                    "state": e.state,
                    "decision": e.decision,
                    "decisionRule": e.decision_rule,
                    "createdAt": time(e.created_at),
                    "updatedAt": time(e.updated_at),
                })
            })
            .collect();
        obj.insert("recentEnrolments".into(), Value::Array(list));
    }
    Ok(Json(view))
}

/// `PATCH` / `PUT /cards/{issuerCardRefId}`: updates any of `status`, `phone`, `email`,
/// `language` (absent: unchanged; `null`: removed, except `status`). Destinations are checked
/// with the domain types and stored sealed, masked and fingerprinted like the card file's; a
/// destination that changed records the time of the change.
pub async fn update_card(
    State(state): State<SharedState>,
    Path(card_ref): Path<String>,
    body: Bytes,
) -> Answer {
    if body.len() > MAX_UPDATE_BYTES {
        return Err(AdminError::bad_request("body is larger than 16 KiB"));
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|_| AdminError::bad_request("body is not valid JSON"))?;
    let Value::Object(map) = value else {
        return Err(AdminError::bad_request("body must be a JSON object"));
    };
    // The destinations are sealed for this very card (bound to its PAN index).
    let pan_index = state
        .store
        .card_by_ref(&card_ref)
        .await?
        .ok_or_else(|| AdminError::not_found("no card with this issuerCardRefId"))?
        .pan_index;
    let update = parse_update(&state, &map, &pan_index)?;
    let now = state.clock.now_ms();
    let (card, changed, operations) = state
        .store
        .admin_update_card(&card_ref, &update, now)
        .await?
        .ok_or_else(|| AdminError::not_found("no card with this issuerCardRefId"))?;
    let fields: Vec<&str> = map.keys().map(String::as_str).collect();
    // Key names only in the audit log too (never a destination).
    let detail = crate::domain::log_safe(&fields.join(","));
    super::operations::audit(
        &state,
        &crate::store::AuditEntry {
            actor: "admin-api",
            action: "card update",
            card_ref: Some(&card.card_ref),
            detail: Some(&detail),
            ..super::operations::api_entry()
        },
    )
    .await;
    tracing::info!(
        card_ref = %card.card_ref,
        // Key names only (never values), with any long digit run masked: a key is caller input.
        fields = %crate::domain::log_safe(&fields.join(",")),
        destinations_changed = %changed.join(","),
        "admin: card updated"
    );
    let mut view = card_view(&card);
    if let Some(obj) = view.as_object_mut() {
        obj.insert("destinationsChanged".into(), json!(changed));
        obj.insert("operationsCreated".into(), json!(operations));
    }
    Ok(Json(view))
}

fn parse_update(
    state: &SharedState,
    map: &Map<String, Value>,
    card_key: &str,
) -> Result<CardUpdate, AdminError> {
    if let Some(unknown) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "status" | "phone" | "email" | "language"))
    {
        return Err(AdminError::bad_request(format!(
            "'{}' cannot be updated (status, phone, email, language)",
            crate::domain::log_safe(unknown.chars().take(32).collect::<String>().as_str())
        )));
    }
    if map.is_empty() {
        return Err(AdminError::bad_request(
            "nothing to update: give status, phone, email or language",
        ));
    }
    let keys = &state.data_keys;
    // Never quote the value of a destination in an error.
    let text = |name: &str| -> Result<Option<Option<&str>>, AdminError> {
        match map.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s.trim()))),
            Some(_) => Err(AdminError::bad_request(format!(
                "{name} must be a string or null"
            ))),
        }
    };
    let status = match text("status")? {
        None => None,
        Some(None) => return Err(AdminError::bad_request("status cannot be removed")),
        Some(Some(s)) => Some(CardStatus::parse(s).ok_or_else(|| {
            AdminError::bad_request("status must be one of active, blocked, lost, stolen, closed")
        })?),
    };
    let phone: Option<Option<ContactUpdate>> = match text("phone")? {
        None => None,
        Some(None) => Some(None),
        Some(Some(p)) => {
            let phone =
                Phone::parse(p).map_err(|e| AdminError::bad_request(format!("phone: {e}")))?;
            Some(Some(crate::card_file::sealed_phone(keys, card_key, &phone)))
        }
    };
    let email: Option<Option<ContactUpdate>> = match text("email")? {
        None => None,
        Some(None) => Some(None),
        Some(Some(e)) => {
            let email =
                Email::parse(e).map_err(|e| AdminError::bad_request(format!("email: {e}")))?;
            Some(Some(crate::card_file::sealed_email(keys, card_key, &email)))
        }
    };
    let language = match text("language")? {
        None => None,
        Some(None) => Some(None),
        Some(Some(l)) => match crate::domain::Language::parse(l) {
            Some(language) => Some(Some(language.to_string())),
            None => {
                return Err(AdminError::bad_request(
                    "language must be a language code such as en or fr",
                ));
            }
        },
    };
    Ok(CardUpdate {
        status,
        phone,
        email,
        language,
    })
}

/// `GET /cards/{issuerCardRefId}/tokens[?refresh=true]`: each token of the card with its state
/// and history, and the card's pending life-cycle operations; with `refresh=true`, Thales's own
/// state of each token (`getCardInfo`) beside ours.
pub async fn tokens(
    State(state): State<SharedState>,
    Path(card_ref): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    if state.store.card_by_ref(&card_ref).await?.is_none() {
        return Err(AdminError::not_found("no card with this issuerCardRefId"));
    }
    let thales = match q.get("refresh").map(String::as_str) {
        None | Some("false") => None,
        Some("true") => Some(super::operations::thales_states(&state, &card_ref).await?),
        Some(_) => return Err(AdminError::bad_request("refresh must be true or false")),
    };
    let tokens = state.store.tokens_of_card(&card_ref).await?;
    // What the cardholder was told of each token (the activation notices).
    let told = state.store.cardholder_notices_of_card(&card_ref).await?;
    let mut list = Vec::with_capacity(tokens.len());
    for t in tokens {
        let events = state.store.token_events(&t.virtual_card_id).await?;
        let history: Vec<Value> = events
            .iter()
            .map(|e| {
                json!({
                    "correlationId": e.correlation_id,
                    "action": e.action,
                    "source": e.source,
                    "errorCode": e.error_code,
                    "stateBefore": e.state_before,
                    "stateAfter": e.state_after,
                    "at": time(e.at),
                })
            })
            .collect();
        list.push(json!({
            "virtualCardId": t.virtual_card_id,
            "walletProviderId": t.wallet_provider_id,
            "tokenStorageId": t.token_storage_id,
            "isPrimary": t.is_primary,
            "state": t.state,
            "dpanLast4": t.dpan_last4,
            "dpanExp": t.dpan_exp,
            "correlationId": t.correlation_id,
            "createdAt": time(t.created_at),
            "updatedAt": time(t.updated_at),
            "history": history,
            "thalesState": thales.as_ref().map(|m| m.get(&t.virtual_card_id).cloned()),
            "cardholderNotices": told
                .iter()
                .filter(|n| n.virtual_card_id == t.virtual_card_id)
                .map(|n| json!({
                    "kind": n.kind,
                    "target": n.target,
                    "state": n.state,
                    "channel": n.channel,
                    "provider": n.provider,
                    "destination": n.destination_masked,
                    "attempts": n.attempts,
                    "lastError": n.last_error,
                    "createdAt": time(n.created_at),
                    "finishedAt": n.finished_at.map(time),
                }))
                .collect::<Vec<_>>(),
        }));
    }
    let pending = super::operations::pending_view(&state, &card_ref).await?;
    // Tokens only TSH knows yet (an INACTIVE one waiting for activation: Option D).
    let thales_only: Option<Vec<Value>> = thales.as_ref().map(|m| {
        m.iter()
            .filter(|(v, _)| {
                !list
                    .iter()
                    .any(|t| t.get("virtualCardId").and_then(Value::as_str) == Some(v.as_str()))
            })
            .map(|(v, s)| json!({ "virtualCardId": v, "thalesState": s }))
            .collect()
    });
    Ok(Json(
        json!({ "issuerCardRefId": card_ref, "tokens": list, "pendingOperations": pending, "thalesOnly": thales_only }),
    ))
}

/// `GET /enrolments/{correlationId}`: everything recorded under the correlation id.
pub async fn enrolment(
    State(state): State<SharedState>,
    Path(correlation_id): Path<String>,
) -> Answer {
    // Stored in the same form the API gave it (a PAN-like run replaced by its fingerprint).
    let correlation_id = state.data_keys.safe_identifier(&correlation_id);
    let store = &state.store;
    let (enrolment, methods, calls, sends, notices) = tokio::try_join!(
        store.enrolment(&correlation_id),
        store.enrolment_methods(&correlation_id),
        store.calls(&correlation_id),
        store.sends(&correlation_id),
        store.admin_notices(&correlation_id),
    )?;
    let e =
        enrolment.ok_or_else(|| AdminError::not_found("no enrolment with this correlationId"))?;
    let signals = e
        .decision_signals
        .as_deref()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .unwrap_or(Value::Null);
    let decision = match &e.decision {
        Some(outcome) => json!({
            "outcome": outcome,
            "rule": e.decision_rule,
            "signals": signals,
            "deviceLanguage": e.device_language,
        }),
        None => Value::Null,
    };
    let calls: Vec<Value> = calls
        .iter()
        .map(|c| {
            json!({
                "operation": c.operation,
                "issuerCardRefId": c.card_ref,
                "responseCode": c.response_code,
                "outcome": c.outcome,
                "detail": c.detail,
                "durationMs": c.duration_ms,
                "at": time(c.at),
            })
        })
        .collect();
    let methods: Vec<Value> = methods
        .iter()
        .map(|m| {
            json!({
                "id": m.method_id,
                "channel": m.channel,
                "type": m.method_type,
                "value": m.masked_value,
            })
        })
        .collect();
    let sends: Vec<Value> = sends
        .iter()
        .map(|s| {
            json!({
                "methodId": s.method_id,
                "channel": s.channel,
                "provider": s.provider,
                "acceptedBy": s.accepted_by,
                "attempts": s.attempts,
                "destination": s.destination_masked,
                "outcome": s.outcome,
                "responseCode": s.response_code,
                "providerMessageId": s.provider_message_id,
                "providerCode": s.provider_code,
                "latencyMs": s.latency_ms,
                "at": time(s.at),
            })
        })
        .collect();
    let notices: Vec<Value> = notices
        .iter()
        .map(|n| {
            json!({
                "virtualCardId": n.virtual_card_id,
                "action": n.action,
                "source": n.source,
                "errorCode": n.error_code,
                "stateBefore": n.state_before,
                "stateAfter": n.state_after,
                "at": time(n.at),
            })
        })
        .collect();
    Ok(Json(json!({
        "correlationId": e.correlation_id,
        "issuerCardRefId": e.card_ref,
        "walletProviderId": e.wallet_provider_id,
        "state": e.state,
        "decision": decision,
        "methodsOffered": methods,
        "calls": calls,
        "sends": sends,
        "notices": notices,
        "createdAt": time(e.created_at),
        "updatedAt": time(e.updated_at),
    })))
}

/// `GET /enrolments?stuck` or `?stuck_after_minutes=N` (default `admin.stuck_after_minutes`),
/// with `&limit=M` (default 100, at most 1000): enrolments answered yellow at least N minutes
/// ago and neither activated nor failed since, oldest first.
pub async fn stuck_enrolments(
    State(state): State<SharedState>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    if let Some(unknown) = q
        .keys()
        .find(|k| !matches!(k.as_str(), "stuck" | "stuck_after_minutes" | "limit"))
    {
        return Err(AdminError::bad_request(format!(
            "unknown parameter '{}' (stuck, stuck_after_minutes, limit)",
            crate::domain::log_safe(unknown.chars().take(32).collect::<String>().as_str())
        )));
    }
    if !q.contains_key("stuck") && !q.contains_key("stuck_after_minutes") {
        return Err(AdminError::bad_request(
            "give ?stuck or ?stuck_after_minutes=N: enrolments are listed by correlation id (GET /enrolments/{correlationId})",
        ));
    }
    let minutes = match q.get("stuck_after_minutes") {
        None => i64::from(state.config.admin.stuck_after_minutes),
        Some(m) => m
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|m| (1..=10_080).contains(m))
            .map(i64::from)
            .ok_or_else(|| {
                AdminError::bad_request(
                    "stuck_after_minutes must be a whole number of minutes, 1 to 10080 (a week)",
                )
            })?,
    };
    let limit = match q.get("limit") {
        None => STUCK_DEFAULT_LIMIT,
        Some(l) => l
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=STUCK_MAX_LIMIT).contains(l))
            .ok_or_else(|| AdminError::bad_request("limit must be 1 to 1000"))?,
    };
    let now = state.clock.now_ms();
    let cutoff = now.minus(Millis(minutes.saturating_mul(60_000)));
    let rows = state.store.admin_stuck_enrolments(cutoff, limit).await?;
    let list: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "correlationId": r.correlation_id,
                "issuerCardRefId": r.card_ref,
                "walletProviderId": r.wallet_provider_id,
                "state": r.state,
                "decisionRule": r.decision_rule,
                "decidedAt": time(r.decided_at),
                "minutesWaiting": now.since(r.decided_at).as_i64() / 60_000,
                "sends": r.sends,
                "sendsAccepted": r.sends_accepted,
                "createdAt": time(r.created_at),
                "updatedAt": time(r.updated_at),
            })
        })
        .collect();
    Ok(Json(json!({
        "stuckAfterMinutes": minutes,
        "asOf": time(now),
        "count": list.len(),
        "enrolments": list,
    })))
}
