//! The webhook event log: events for the bank's own systems, written in the same transaction as
//! what they report (each write macro that makes one calls [`emit_event_in!`] once), and their
//! delivery to each configured endpoint, claimed by the sender of any instance, in order per
//! card and endpoint.
//!
//! A delivery holds its card's queue (of its endpoint) while it is `waiting` (not sent yet,
//! being sent, or waiting for its next attempt); `delivered` and `dead` release it. A claim
//! moves `next_attempt_at` beyond the attempt's deadline, so that no other claim (another
//! instance, or this one after a restart) takes the same attempt while it may still run.
//!
//! A delivery made while an earlier one of its card waits at its endpoint is *parked*
//! (`next_attempt_at` = [`PARKED`]) and unparked, due at once, in the transaction that finishes
//! the one before it: a receiver that is down leaves one due delivery per card to look at, not
//! the whole backlog at every poll (on SQLite the claim holds the writer while it looks). The
//! writes that park and unpark a card's deliveries take the card's event lock (PostgreSQL), so
//! that none parks behind a delivery finishing at the same moment, and a card's events get their
//! ids in the order of their commits.
//!
//! An event is written only when some configured endpoint takes its type (the table
//! `webhook_endpoints`, written at start from `[[webhooks]]`): without webhooks, nothing grows.

use super::operations::BeginWrite;
use super::{Backend, LockKey, Store, StoreError};
use crate::domain::Millis;
use serde::Serialize;
use sqlx::Row;

/// The `next_attempt_at` of a parked delivery (one that waits for an earlier one of its card).
pub const PARKED: Millis = Millis(i64::MAX);

/// The advisory lock of a card's webhook events (PostgreSQL).
pub fn card_lock(card_ref: &str) -> String {
    format!("webhook-card:{card_ref}")
}

/// A new message id (the `webhook-id` header): `msg_` and 24 random lowercase letters (no
/// digits, so that it can never look like a card number).
pub fn new_message_id() -> String {
    let bytes = crate::data_keys::random_bytes::<24>();
    let letters: String = bytes.iter().map(|b| char::from(b'a' + (b % 26))).collect();
    format!("msg_{letters}")
}

/// RFC 3339 (UTC) of a time in milliseconds.
pub fn rfc3339(ms: Millis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms.0) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The body of an event, as Standard Webhooks recommends: `{"type", "timestamp", "data"}`,
/// `data` completed with the card's reference and last 4.
pub fn event_body(
    event_type: &str,
    at: Millis,
    card_ref: &str,
    last4: Option<&str>,
    data: serde_json::Value,
) -> String {
    let mut data = match data {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    data.insert("issuerCardRefId".into(), card_ref.into());
    if let Some(l) = last4 {
        data.insert("last4".into(), l.into());
    }
    serde_json::json!({ "type": event_type, "timestamp": rfc3339(at), "data": data }).to_string()
}

/// Writes, in transaction `$tx`, the event `$type` about card `$card_ref` at `$at`, with the
/// delivery of it to every configured endpoint that takes its type. `$data` (a JSON object, no
/// card data but masked values) is evaluated only when some endpoint takes the type.
/// Whether this process has seen a webhook endpoint: one configured here, or one in the
/// endpoints table when the store was opened (another instance's, or the last `serve`'s while a
/// command such as `cards import` runs). Raised, never lowered: a stale `true` only costs the
/// look at the endpoints table that finds no taker.
static ENDPOINTS_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// See [`ENDPOINTS_SEEN`].
pub(crate) fn may_have_endpoints() -> bool {
    ENDPOINTS_SEEN.load(std::sync::atomic::Ordering::Acquire)
}

pub(crate) fn endpoints_seen() {
    ENDPOINTS_SEEN.store(true, std::sync::atomic::Ordering::Release);
}

macro_rules! emit_event_in {
    ($tx:ident, $type:expr, $card_ref:expr, $at:expr, $data:expr) => {{
        let event_type: &str = $type;
        // Without any endpoint in sight (the usual case of a gateway with no `[[webhooks]]`),
        // not even the endpoints table is read: no statement added to the write.
        let (takers,): (i64,) = if $crate::store::events::may_have_endpoints() {
            sqlx::query_as(
                "SELECT COUNT(*) FROM webhook_endpoints WHERE events = '*' OR events LIKE $1",
            )
            .bind(format!("%,{event_type},%"))
            .fetch_one(&mut *$tx)
            .await?
        } else {
            (0,)
        };
        if takers > 0 {
            let card_ref: &str = $card_ref;
            let at: $crate::domain::Millis = $at;
            $tx.lock_key(&$crate::store::events::card_lock(card_ref)).await?;
            let last4: Option<(String,)> =
                sqlx::query_as("SELECT last4 FROM cards WHERE card_ref = $1")
                    .bind(card_ref)
                    .fetch_optional(&mut *$tx)
                    .await?;
            let data: serde_json::Value = $data;
            let body = $crate::store::events::event_body(
                event_type,
                at,
                card_ref,
                last4.as_ref().map(|(l,)| l.as_str()),
                data,
            );
            let row = sqlx::query(
                "INSERT INTO webhook_events (message_id, type, card_ref, body, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind($crate::store::events::new_message_id())
            .bind(event_type)
            .bind(card_ref)
            .bind(&body)
            .bind(at)
            .fetch_one(&mut *$tx)
            .await?;
            let event_id: i64 = sqlx::Row::try_get(&row, 0)?;
            sqlx::query(
                "INSERT INTO webhook_deliveries (event_id, endpoint, card_ref, state, attempts, next_attempt_at, \
                 queued_at, created_at, updated_at) \
                 SELECT $1, name, $2, 'waiting', 0, \
                 CASE WHEN EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.endpoint = webhook_endpoints.name \
                   AND p.card_ref = $2 AND p.state = 'waiting') THEN $5 ELSE $3 END, \
                 $3, $3, $3 FROM webhook_endpoints \
                 WHERE events = '*' OR events LIKE $4",
            )
            .bind(event_id)
            .bind(card_ref)
            .bind(at)
            .bind(format!("%,{event_type},%"))
            .bind($crate::store::events::PARKED)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

/// `enrolment.decided` for the decision `$d` of call `$call`, in transaction `$tx`: the
/// decision, its rule and the methods offered (masked values).
macro_rules! emit_decision_event_in {
    ($tx:ident, $call:expr, $d:expr) => {{
        let (call, d) = ($call, $d);
        emit_event_in!($tx, "enrolment.decided", call.card_ref.unwrap_or_default(), call.at, {
            let methods: Vec<serde_json::Value> = d
                .methods
                .iter()
                .map(|m| {
                    serde_json::json!({"id": &m.method_id, "type": &m.method_type,
                        "channel": m.channel.as_str(), "value": &m.masked_value})
                })
                .collect();
            serde_json::json!({
                "correlationId": call.correlation_id,
                "walletProviderId": call.wallet,
                "decision": &d.decision,
                "rule": &d.rule,
                "methods": methods,
            })
        });
    }};
}

/// `token.state_changed` for the notice `$n` of call `$call`, in transaction `$tx`, when it
/// changed the token's state (`$before` -> `$after`).
macro_rules! emit_token_event_in {
    ($tx:ident, $call:expr, $n:expr, $before:expr, $after:expr) => {{
        let (call, n): (&$crate::store::CallRecord<'_>, &$crate::store::NoticeRecord) = ($call, $n);
        let (before, after): (&Option<String>, &String) = ($before, $after);
        if before.as_deref() != Some(after.as_str()) {
            emit_event_in!($tx, "token.state_changed", &n.card_ref, call.at, {
                serde_json::json!({
                    "virtualCardId": &n.virtual_card_id,
                    "walletProviderId": &n.wallet_provider_id,
                    "tokenStorageId": &n.token_storage_id,
                    "action": n.action.as_str(),
                    "source": &n.source,
                    "stateBefore": before,
                    "stateAfter": after,
                    "correlationId": call.correlation_id,
                })
            });
        }
    }};
}

/// `card.status_changed` for card `$card_ref` going from `$old` to `$new`, in transaction
/// `$tx`, with the life-cycle operations the change made (`$made`, their labels).
macro_rules! emit_status_event_in {
    ($tx:ident, $card_ref:expr, $old:expr, $new:expr, $now:expr, $made:expr) => {{
        let (old, new): ($crate::domain::CardStatus, $crate::domain::CardStatus) = ($old, $new);
        if old != new {
            let made: &Vec<String> = $made;
            emit_event_in!($tx, "card.status_changed", $card_ref, $now, {
                serde_json::json!({"statusBefore": old.as_str(), "statusAfter": new.as_str(), "operations": made})
            });
        }
    }};
}

/// `otp.sent` (accepted by the provider) or `otp.failed` (anything else) for the claimed send
/// `$id`, in transaction `$tx`: channel, method and masked destination, never the OTP.
macro_rules! emit_send_event_in {
    ($tx:ident, $id:expr, $call:expr, $outcome:expr) => {{
        let outcome: $crate::domain::SendOutcome = $outcome;
        let event_type = if matches!(outcome, $crate::domain::SendOutcome::Accepted) {
            "otp.sent"
        } else {
            "otp.failed"
        };
        let call = $call;
        emit_event_in!($tx, event_type, call.card_ref.unwrap_or_default(), call.at, {
            let send = sqlx::query(
                "SELECT method_id, channel, provider, destination_masked FROM sends WHERE id = $1",
            )
            .bind($id)
            .fetch_optional(&mut *$tx)
            .await?;
            let col = |name: &str| -> Option<String> {
                send.as_ref()
                    .and_then(|r| sqlx::Row::try_get::<String, _>(r, name).ok())
            };
            serde_json::json!({
                "correlationId": call.correlation_id,
                "methodId": col("method_id"),
                "channel": col("channel"),
                "provider": col("provider"),
                "destination": col("destination_masked"),
                "outcome": outcome.as_str(),
                "responseCode": call.response_code,
            })
        });
    }};
}

/// `lifecycle.operation_failed` for operation `$id`, in transaction `$tx`, when `$state` is
/// `failed` (given up) or `refused`.
macro_rules! emit_operation_failed_in {
    ($tx:ident, $id:expr, $state:expr, $at:expr, $error:expr) => {{
        let state: &str = $state;
        if matches!(state, "failed" | "refused") {
            let op = sqlx::query(
                "SELECT card_ref, kind, action, virtual_card_id, reason, correlation_id, attempts, cause \
                 FROM lifecycle_operations WHERE id = $1",
            )
            .bind($id)
            .fetch_optional(&mut *$tx)
            .await?;
            if let Some(op) = op {
                let text = |name: &str| -> Option<String> {
                    sqlx::Row::try_get::<Option<String>, _>(&op, name)
                        .ok()
                        .flatten()
                };
                let card_ref = text("card_ref").unwrap_or_default();
                let attempts: i64 = sqlx::Row::try_get(&op, "attempts").unwrap_or(0);
                let error: Option<&str> = $error;
                emit_event_in!($tx, "lifecycle.operation_failed", &card_ref, $at, {
                    serde_json::json!({
                        "operationId": $id,
                        "operation": text("kind"),
                        "action": text("action"),
                        "virtualCardId": text("virtual_card_id"),
                        "reason": text("reason"),
                        "cause": text("cause"),
                        "correlationId": text("correlation_id"),
                        "state": state,
                        "attempts": attempts,
                        "error": error,
                    })
                });
            }
        }
    }};
}

/// A delivery claimed for an attempt, with its event.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub endpoint: String,
    pub card_ref: String,
    /// This attempt's number (1 for the first).
    pub attempts: i64,
    pub queued_at: Millis,
    pub message_id: String,
    pub event_type: String,
    pub body: String,
}

/// What a delivery attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryVerdict {
    Delivered,
    /// Again at `next`, or dead-lettered when `give_up`.
    Retry {
        next: Millis,
        give_up: bool,
    },
}

/// One delivery of an event, for the admin API.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRow {
    pub message_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(rename = "issuerCardRefId")]
    pub card_ref: String,
    pub endpoint: String,
    pub state: String,
    pub attempts: i64,
    /// When it is tried next (`None` while parked, or once finished: see `state`).
    pub next_attempt_at: Option<Millis>,
    /// Waiting for an earlier event of its card to be delivered (or dead-lettered) first.
    pub parked: bool,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub delivered_at: Option<Millis>,
    pub finished_at: Option<Millis>,
}

/// One event with its body.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct EventRow {
    pub message_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(rename = "issuerCardRefId")]
    pub card_ref: String,
    pub body: String,
    pub created_at: Millis,
}

/// The figures of one endpoint's deliveries.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStats {
    pub endpoint: String,
    pub waiting: i64,
    pub dead: i64,
    /// How long the oldest waiting delivery has waited, milliseconds (0 when none waits).
    pub lag_ms: i64,
}

const CLAIM_SQLITE: &str = "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $2, updated_at = $1 \
     WHERE id IN (SELECT d.id FROM webhook_deliveries d WHERE d.state = 'waiting' AND d.next_attempt_at <= $1 \
       AND d.endpoint = $4 \
       AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.endpoint = d.endpoint AND p.card_ref = d.card_ref \
         AND p.state = 'waiting' AND p.id < d.id) \
       ORDER BY d.id LIMIT $3) \
     RETURNING id, event_id, endpoint, card_ref, attempts, queued_at";

/// PostgreSQL: `FOR UPDATE SKIP LOCKED`, so that instances claiming at once take different
/// deliveries; a row another claim updated meanwhile is checked again (no longer due) and left.
const CLAIM_POSTGRES: &str = "WITH due AS (SELECT d.id FROM webhook_deliveries d WHERE d.state = 'waiting' AND d.next_attempt_at <= $1 \
       AND d.endpoint = $4 \
       AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.endpoint = d.endpoint AND p.card_ref = d.card_ref \
         AND p.state = 'waiting' AND p.id < d.id) \
       ORDER BY d.id LIMIT $3 FOR UPDATE OF d SKIP LOCKED) \
     UPDATE webhook_deliveries w SET attempts = w.attempts + 1, next_attempt_at = $2, updated_at = $1 \
     FROM due WHERE w.id = due.id RETURNING w.id, w.event_id, w.endpoint, w.card_ref, w.attempts, w.queued_at";

/// (`9223372036854775807` is [`PARKED`].)
const DELIVERY_SELECT: &str = "SELECT e.message_id, e.type AS event_type, d.card_ref, d.endpoint, d.state, d.attempts, \
     CASE WHEN d.next_attempt_at = 9223372036854775807 THEN NULL ELSE d.next_attempt_at END AS next_attempt_at, \
     (d.next_attempt_at = 9223372036854775807) AS parked, d.last_status, d.last_error, d.created_at, d.delivered_at, d.finished_at \
     FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id";

impl Store {
    /// Raises [`ENDPOINTS_SEEN`] when the endpoints table holds an entry (at connect).
    pub(super) async fn note_webhook_endpoints(&self) -> Result<(), StoreError> {
        let (n,): (i64,) = with_pool!(self, read, |pool| {
            sqlx::query_as("SELECT COUNT(*) FROM webhook_endpoints")
                .fetch_one(pool)
                .await?
        });
        if n > 0 {
            endpoints_seen();
        }
        Ok(())
    }

    /// Makes the endpoints table say what `[[webhooks]]` says: `(name, filter)` pairs, the
    /// filter `*` or `,type,type,`. Entries no longer configured are removed (their waiting
    /// deliveries stay, undelivered, until an entry of that name comes back).
    pub async fn sync_webhook_endpoints(
        &self,
        endpoints: &[(String, String)],
        now: Millis,
    ) -> Result<(), StoreError> {
        if !endpoints.is_empty() {
            endpoints_seen();
        }
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin_write().await?;
            let names: Vec<(String,)> = sqlx::query_as("SELECT name FROM webhook_endpoints")
                .fetch_all(&mut *tx)
                .await?;
            for (name,) in names {
                if !endpoints.iter().any(|(n, _)| *n == name) {
                    sqlx::query("DELETE FROM webhook_endpoints WHERE name = $1")
                        .bind(&name)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for (name, filter) in endpoints {
                sqlx::query(
                    "INSERT INTO webhook_endpoints (name, events, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET events = $2, updated_at = $3",
                )
                .bind(name)
                .bind(filter)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Claims up to `limit` due deliveries to `endpoint`, each the head of its card's queue
    /// there, and pushes their next attempt to `lease_until`. Oldest first.
    pub async fn claim_deliveries(
        &self,
        endpoint: &str,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        with_pool!(self, write, |pool| {
            let sql = match &self.backend {
                Backend::Sqlite { .. } => CLAIM_SQLITE,
                Backend::Postgres(_) => CLAIM_POSTGRES,
            };
            let rows = sqlx::query(sql)
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .bind(endpoint)
                .fetch_all(pool)
                .await?;
            let mut claimed = Vec::with_capacity(rows.len());
            for r in rows {
                let event_id: i64 = r.try_get("event_id")?;
                let event =
                    sqlx::query("SELECT message_id, type, body FROM webhook_events WHERE id = $1")
                        .bind(event_id)
                        .fetch_one(pool)
                        .await?;
                claimed.push(ClaimedDelivery {
                    id: r.try_get("id")?,
                    endpoint: r.try_get("endpoint")?,
                    card_ref: r.try_get("card_ref")?,
                    attempts: r.try_get("attempts")?,
                    queued_at: r.try_get("queued_at")?,
                    message_id: event.try_get("message_id")?,
                    event_type: event.try_get("type")?,
                    body: event.try_get("body")?,
                });
            }
            claimed.sort_by_key(|c| c.id);
            Ok(claimed)
        })
    }

    /// Records what attempt number `attempt` of delivery `id` (of card `card_ref`) came to.
    /// Changes the delivery only if it is still that attempt's (not redelivered or claimed again
    /// meanwhile); one that is delivered or dead unparks the card's next delivery.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_delivery(
        &self,
        id: i64,
        card_ref: &str,
        attempt: i64,
        at: Millis,
        status: Option<u16>,
        error: Option<&str>,
        verdict: DeliveryVerdict,
    ) -> Result<bool, StoreError> {
        let (state, next) = match verdict {
            DeliveryVerdict::Delivered => ("delivered", at),
            DeliveryVerdict::Retry {
                give_up: true,
                next,
            } => ("dead", next),
            DeliveryVerdict::Retry { next, .. } => ("waiting", next),
        };
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin_write().await?;
            tx.lock_key(&card_lock(card_ref)).await?;
            let changed = sqlx::query(
                "UPDATE webhook_deliveries SET state = $3, next_attempt_at = $4, last_status = $5, last_error = $6, \
                 updated_at = $7, delivered_at = CASE WHEN $3 = 'delivered' THEN $7 ELSE delivered_at END, \
                 finished_at = CASE WHEN $3 = 'waiting' THEN NULL ELSE $7 END \
                 WHERE id = $1 AND attempts = $2 AND state = 'waiting'",
            )
            .bind(id)
            .bind(attempt)
            .bind(state)
            .bind(next)
            .bind(status.map(i64::from))
            .bind(error)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 && state != "waiting" {
                // The card's next delivery at this endpoint, parked behind this one, is due now.
                sqlx::query(
                    "UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE next_attempt_at = $3 AND id = \
                     (SELECT MIN(n.id) FROM webhook_deliveries n JOIN webhook_deliveries f \
                      ON f.id = $1 AND n.endpoint = f.endpoint AND n.card_ref = f.card_ref WHERE n.state = 'waiting')",
                )
                .bind(id)
                .bind(at)
                .bind(PARKED)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(changed == 1)
        })
    }

    /// Makes due every parked delivery with no earlier one of its card waiting (at start: a
    /// safety net; the transactions that finish deliveries unpark the next one themselves).
    pub async fn unpark_webhook_heads(&self, now: Millis) -> Result<u64, StoreError> {
        with_pool!(self, write, |pool| {
            Ok(sqlx::query(
                "UPDATE webhook_deliveries SET next_attempt_at = $1 WHERE state = 'waiting' AND next_attempt_at = $2 \
                 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.endpoint = webhook_deliveries.endpoint \
                 AND p.card_ref = webhook_deliveries.card_ref AND p.state = 'waiting' AND p.id < webhook_deliveries.id)",
            )
            .bind(now)
            .bind(PARKED)
            .execute(pool)
            .await?
            .rows_affected())
        })
    }

    /// Deliveries, newest first, filtered by state, endpoint and card (empty: any).
    pub async fn webhook_deliveries(
        &self,
        state: &str,
        endpoint: &str,
        card_ref: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(&format!(
                "{DELIVERY_SELECT} WHERE ($1 = '' OR d.state = $1) AND ($2 = '' OR d.endpoint = $2) \
                 AND ($3 = '' OR d.card_ref = $3) ORDER BY d.id DESC LIMIT $4"
            ))
            .bind(state)
            .bind(endpoint)
            .bind(card_ref)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// One event by its message id, with its deliveries.
    pub async fn webhook_event(
        &self,
        message_id: &str,
    ) -> Result<Option<(EventRow, Vec<DeliveryRow>)>, StoreError> {
        with_pool!(self, read, |pool| {
            let event: Option<EventRow> = sqlx::query_as(
                "SELECT message_id, type AS event_type, card_ref, body, created_at FROM webhook_events \
                 WHERE message_id = $1",
            )
            .bind(message_id)
            .fetch_optional(pool)
            .await?;
            let Some(event) = event else {
                return Ok(None);
            };
            let deliveries = sqlx::query_as(&format!(
                "{DELIVERY_SELECT} WHERE e.message_id = $1 ORDER BY d.endpoint"
            ))
            .bind(message_id)
            .fetch_all(pool)
            .await?;
            Ok(Some((event, deliveries)))
        })
    }

    /// Makes the event's finished deliveries (delivered or dead; to `endpoint` only, unless
    /// empty) wait again, due now, with the same message id. `None`: no such event; else how
    /// many deliveries wait again.
    pub async fn redeliver_event(
        &self,
        message_id: &str,
        endpoint: &str,
        now: Millis,
    ) -> Result<Option<u64>, StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin_write().await?;
            let found: Option<(i64,)> =
                sqlx::query_as("SELECT id FROM webhook_events WHERE message_id = $1")
                    .bind(message_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((event_id,)) = found else {
                return Ok(None);
            };
            let n = sqlx::query(
                "UPDATE webhook_deliveries SET state = 'waiting', next_attempt_at = $2, queued_at = $2, \
                 finished_at = NULL, updated_at = $2 \
                 WHERE event_id = $1 AND ($3 = '' OR endpoint = $3) AND state IN ('delivered', 'dead')",
            )
            .bind(event_id)
            .bind(now)
            .bind(endpoint)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(Some(n))
        })
    }

    /// Per configured endpoint: deliveries waiting, dead, and the oldest waiting one's age.
    pub async fn webhook_stats(&self, now: Millis) -> Result<Vec<EndpointStats>, StoreError> {
        with_pool!(self, read, |pool| {
            let names: Vec<(String,)> =
                sqlx::query_as("SELECT name FROM webhook_endpoints ORDER BY name")
                    .fetch_all(pool)
                    .await?;
            let mut stats: Vec<EndpointStats> = names
                .into_iter()
                .map(|(endpoint,)| EndpointStats {
                    endpoint,
                    ..EndpointStats::default()
                })
                .collect();
            let rows = sqlx::query(
                "SELECT endpoint, state, COUNT(*) AS n, MIN(queued_at) AS oldest FROM webhook_deliveries \
                 WHERE state IN ('waiting', 'dead') GROUP BY endpoint, state",
            )
            .fetch_all(pool)
            .await?;
            for r in rows {
                let endpoint: String = r.try_get("endpoint")?;
                let state: String = r.try_get("state")?;
                let n: i64 = r.try_get("n")?;
                let oldest: Option<i64> = r.try_get("oldest")?;
                let Some(s) = stats.iter_mut().find(|s| s.endpoint == endpoint) else {
                    continue;
                };
                if state == "waiting" {
                    s.waiting = n;
                    s.lag_ms = oldest.map(|o| (now.0 - o).max(0)).unwrap_or(0);
                } else {
                    s.dead = n;
                }
            }
            Ok(stats)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_type_timestamp_and_data_with_the_card() {
        let body = event_body(
            "otp.sent",
            Millis(1_767_225_600_123),
            "cr-1",
            Some("0123"),
            serde_json::json!({"channel": "sms"}),
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["type"], "otp.sent");
        assert_eq!(v["timestamp"], "2026-01-01T00:00:00.123Z");
        assert_eq!(
            v["data"],
            serde_json::json!({"channel": "sms", "issuerCardRefId": "cr-1", "last4": "0123"})
        );
    }

    #[test]
    fn message_ids_are_letters_only_and_differ() {
        let (a, b) = (new_message_id(), new_message_id());
        assert_ne!(a, b);
        assert!(a.starts_with("msg_") && a.len() == 28);
        let letters = a.strip_prefix("msg_").unwrap();
        assert!(letters.chars().all(|c| c.is_ascii_lowercase()));
    }
}
