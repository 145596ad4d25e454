//! The life-cycle operation log: operations for TSH's inbound API, written in the same
//! transaction as their cause (a card's status change, an operator's action), claimed and sent
//! by the sender of any instance, in order per card, and confirmed by the notices that come back.
//!
//! An operation holds its card's queue while it is `waiting` (not sent yet, being sent, or
//! waiting for its next attempt); `sent`, `failed`, `refused` and `cancelled` release it. A
//! claim moves `next_attempt_at` beyond the attempt's deadline, so that no other claim (another
//! instance, or this one after a restart) takes the same attempt while it may still be running.

use super::{Backend, LockKey, Store, StoreError};
use crate::domain::Millis;
use crate::domain::lifecycle::{OpKind, OpState, TokenAction};
use serde::Serialize;
use sqlx::Row;

/// Begins a write transaction. SQLite: `BEGIN IMMEDIATE`, which takes the write lock at once
/// (waiting up to the busy timeout for another process's writer, such as `cards import` next to
/// `serve`) instead of failing at the first write after a read; PostgreSQL: `BEGIN`.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send;
}

impl BeginWrite for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for sqlx::PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// One operation of the log.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OperationRow {
    pub id: i64,
    pub card_ref: String,
    pub kind: String,
    pub action: Option<String>,
    pub virtual_card_id: Option<String>,
    pub reason: Option<String>,
    pub operator: Option<String>,
    pub verification: Option<String>,
    pub cause: String,
    pub correlation_id: String,
    /// Sealed to Thales's certificate; cleared once the operation is finished.
    #[serde(skip)]
    pub fpan_details: Option<String>,
    pub new_product_id: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Millis,
    pub last_error: Option<String>,
    pub notices: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub sent_at: Option<Millis>,
    pub finished_at: Option<Millis>,
}

impl OperationRow {
    pub fn op_state(&self) -> Option<OpState> {
        OpState::parse(&self.state)
    }
    pub fn op_kind(&self) -> Option<OpKind> {
        OpKind::parse(&self.kind)
    }
    /// `kind` and, for updateCardState, its action: `updateCardState SUSPEND`.
    pub fn label(&self) -> String {
        match &self.action {
            Some(a) => format!("{} {a}", self.kind),
            None => self.kind.clone(),
        }
    }
}

/// One attempt of an operation.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AttemptRow {
    pub at: Millis,
    pub http_status: Option<i64>,
    pub response_code: Option<i64>,
    pub outcome: String,
    pub duration_ms: i64,
}

/// An operation to create.
#[derive(Debug, Clone)]
pub struct NewOperation {
    pub card_ref: String,
    pub kind: OpKind,
    pub action: Option<TokenAction>,
    pub virtual_card_id: Option<String>,
    pub reason: Option<String>,
    pub operator: Option<String>,
    pub verification: Option<String>,
    /// What made it: `card_status`, `renewal`, `replacement`, `operator`.
    pub cause: &'static str,
    pub fpan_details: Option<String>,
    pub new_product_id: Option<String>,
}

impl NewOperation {
    pub fn card_state(
        card_ref: &str,
        action: TokenAction,
        virtual_card_id: Option<String>,
        reason: &str,
        cause: &'static str,
    ) -> NewOperation {
        NewOperation {
            card_ref: card_ref.to_owned(),
            kind: OpKind::UpdateCardState,
            action: Some(action),
            virtual_card_id,
            reason: Some(reason.to_owned()),
            operator: None,
            verification: None,
            cause,
            fpan_details: None,
            new_product_id: None,
        }
    }

    pub fn label(&self) -> String {
        match self.action {
            Some(a) => format!("{} {a}", self.kind),
            None => self.kind.to_string(),
        }
    }
}

/// What an attempt came to, as the sender judged TSH's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptVerdict {
    /// 200: `sent`, waiting for its notices.
    Accepted,
    /// 5xx, time-out, no connection, a retryable responseCode: again at `next` (or `failed`
    /// when `give_up`).
    Retry { next: Millis, give_up: bool },
    /// Another 400: `refused`.
    Refused,
}

/// The outcome of one attempt, to record.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at: Millis,
    pub http_status: Option<u16>,
    pub response_code: Option<i64>,
    /// `accepted`, `http_5xx`, `timeout`, `connection`, `retryable_code`, `refused`.
    pub outcome: &'static str,
    pub duration_ms: i64,
    pub error: Option<String>,
    pub verdict: AttemptVerdict,
}

/// The figures of the log, for `/health` and the metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OperationStats {
    /// Operations by kind label and state.
    pub by_kind_state: Vec<(String, String, i64)>,
    pub waiting: i64,
    pub failed: i64,
    pub refused: i64,
    pub unconfirmed: i64,
    /// Age of the oldest waiting operation, milliseconds (0 when none waits).
    pub oldest_waiting_ms: i64,
}

/// A new correlation id for an operation: 24 random lowercase letters (no digits, so that it can
/// never look like a card number), prefixed `lcm-`.
pub fn new_correlation_id() -> String {
    let bytes = crate::data_keys::random_bytes::<24>();
    let letters: String = bytes.iter().map(|b| char::from(b'a' + (b % 26))).collect();
    format!("lcm-{letters}")
}

/// Inserts one operation in transaction `$tx` (waiting, due at `$now`); evaluates to its id.
macro_rules! insert_operation {
    ($tx:ident, $op:expr, $now:expr) => {{
        let op: &$crate::store::NewOperation = $op;
        let row = sqlx::query(
            "INSERT INTO lifecycle_operations (card_ref, kind, action, virtual_card_id, reason, operator, verification, \
             cause, correlation_id, fpan_details, new_product_id, state, attempts, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'waiting', 0, $12, $12, $12) RETURNING id",
        )
        .bind(&op.card_ref)
        .bind(op.kind.as_str())
        .bind(op.action.map(|a| a.as_str()))
        .bind(&op.virtual_card_id)
        .bind(&op.reason)
        .bind(&op.operator)
        .bind(&op.verification)
        .bind(op.cause)
        .bind($crate::store::new_correlation_id())
        .bind(&op.fpan_details)
        .bind(&op.new_product_id)
        .bind($now)
        .fetch_one(&mut *$tx)
        .await?;
        let id: i64 = sqlx::Row::try_get(&row, 0)?;
        id
    }};
}

/// The operations a card's status change makes, created in transaction `$tx`; evaluates to
/// their labels (`updateCardState SUSPEND`, ...). See `domain::lifecycle::status_effect`.
macro_rules! status_change_operations {
    ($tx:ident, $card_ref:expr, $old:expr, $new:expr, $now:expr) => {{
        let card_ref: &str = $card_ref;
        let now: $crate::domain::Millis = $now;
        let mut made: Vec<String> = Vec::new();
        match $crate::domain::lifecycle::status_effect($old, $new) {
            None => {}
            Some($crate::domain::lifecycle::StatusEffect::SuspendAll(reason)) => {
                let op = $crate::store::NewOperation::card_state(
                    card_ref,
                    $crate::domain::lifecycle::TokenAction::Suspend,
                    None,
                    reason,
                    "card_status",
                );
                let id = insert_operation!($tx, &op, now);
                made.push(op.label());
                // The tokens this suspends: the ones the return to active resumes.
                sqlx::query(
                    "INSERT INTO status_suspended_tokens (card_ref, virtual_card_id, operation_id) \
                     SELECT card_ref, virtual_card_id, $2 FROM tokens WHERE card_ref = $1 AND state = 'active' \
                     ON CONFLICT (card_ref, virtual_card_id) DO NOTHING",
                )
                .bind(card_ref)
                .bind(id)
                .execute(&mut *$tx)
                .await?;
            }
            Some($crate::domain::lifecycle::StatusEffect::DeleteAll) => {
                let op = $crate::store::NewOperation::card_state(
                    card_ref,
                    $crate::domain::lifecycle::TokenAction::Delete,
                    None,
                    $crate::domain::lifecycle::REASON_CARD_CLOSED,
                    "card_status",
                );
                insert_operation!($tx, &op, now);
                made.push(op.label());
                sqlx::query("DELETE FROM status_suspended_tokens WHERE card_ref = $1")
                    .bind(card_ref)
                    .execute(&mut *$tx)
                    .await?;
            }
            Some($crate::domain::lifecycle::StatusEffect::ResumeSuspended) => {
                let tokens: Vec<(String,)> = sqlx::query_as(
                    "SELECT s.virtual_card_id FROM status_suspended_tokens s \
                     JOIN tokens t ON t.virtual_card_id = s.virtual_card_id \
                     WHERE s.card_ref = $1 AND t.state <> 'deleted' ORDER BY s.virtual_card_id",
                )
                .bind(card_ref)
                .fetch_all(&mut *$tx)
                .await?;
                for (vcid,) in tokens {
                    let op = $crate::store::NewOperation::card_state(
                        card_ref,
                        $crate::domain::lifecycle::TokenAction::Resume,
                        Some(vcid),
                        $crate::domain::lifecycle::REASON_CARD_REACTIVATED,
                        "card_status",
                    );
                    insert_operation!($tx, &op, now);
                    made.push(op.label());
                }
                sqlx::query("DELETE FROM status_suspended_tokens WHERE card_ref = $1")
                    .bind(card_ref)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
        emit_status_event_in!($tx, card_ref, $old, $new, now, &made);
        made
    }};
}

/// Confirms, in transaction `$tx`, the operation a token notice answers: the one of the
/// notice's correlation id (also while its attempt is still being recorded: a notice can come
/// back before the sender wrote down the 200), else the latest sent one naming the token (or
/// its card) with the notice's action.
macro_rules! confirm_operation {
    ($tx:ident, $correlation_id:expr, $card_ref:expr, $virtual_card_id:expr, $action:expr, $now:expr) => {{
        let by_id = sqlx::query($crate::store::operations::CONFIRM_BY_ID)
            .bind($correlation_id)
            .bind($now)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        if by_id == 0 {
            bind_confirm_by_card!(
                sqlx::query($crate::store::operations::CONFIRM_BY_CARD),
                $card_ref,
                $virtual_card_id,
                $action,
                $now
            )
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

/// [`confirm_operation!`]'s first statement: the operation of the notice's correlation id
/// (`$1`), at `$2`.
pub(super) const CONFIRM_BY_ID: &str = "UPDATE lifecycle_operations SET state = CASE WHEN state = 'confirmed' THEN state ELSE 'confirmed' END, \
     notices = notices + 1, updated_at = $2, sent_at = COALESCE(sent_at, $2), \
     finished_at = COALESCE(finished_at, $2), fpan_details = NULL \
     WHERE correlation_id = $1 AND state IN ('waiting', 'sent', 'confirmed')";

/// [`confirm_operation!`]'s second statement, when the first confirmed nothing
/// ([`bind_confirm_by_card!`] binds its parameters).
pub(super) const CONFIRM_BY_CARD: &str = "UPDATE lifecycle_operations SET state = 'confirmed', notices = notices + 1, updated_at = $4, finished_at = $4 \
     WHERE id = (SELECT id FROM lifecycle_operations WHERE state = 'sent' AND card_ref = $1 \
       AND action = $3 AND (virtual_card_id = $2 OR virtual_card_id IS NULL) ORDER BY id DESC LIMIT 1)";

macro_rules! bind_confirm_by_card {
    ($q:expr, $card_ref:expr, $virtual_card_id:expr, $action:expr, $now:expr) => {
        $q.bind($card_ref)
            .bind($virtual_card_id)
            .bind($action)
            .bind($now)
    };
}

const CLAIM_SQLITE: &str = "UPDATE lifecycle_operations SET attempts = attempts + 1, next_attempt_at = $2, updated_at = $1 \
     WHERE id IN (SELECT o.id FROM lifecycle_operations o WHERE o.state = 'waiting' AND o.next_attempt_at <= $1 \
       AND NOT EXISTS (SELECT 1 FROM lifecycle_operations p WHERE p.card_ref = o.card_ref AND p.state = 'waiting' AND p.id < o.id) \
       ORDER BY o.id LIMIT $3) \
     RETURNING *";

/// PostgreSQL: `FOR UPDATE SKIP LOCKED`, so that instances claiming at once take different
/// operations; a row another claim updated meanwhile is checked again (no longer due) and left.
const CLAIM_POSTGRES: &str = "WITH due AS (SELECT o.id FROM lifecycle_operations o WHERE o.state = 'waiting' AND o.next_attempt_at <= $1 \
       AND NOT EXISTS (SELECT 1 FROM lifecycle_operations p WHERE p.card_ref = o.card_ref AND p.state = 'waiting' AND p.id < o.id) \
       ORDER BY o.id LIMIT $3 FOR UPDATE OF o SKIP LOCKED) \
     UPDATE lifecycle_operations l SET attempts = l.attempts + 1, next_attempt_at = $2, updated_at = $1 \
     FROM due WHERE l.id = due.id RETURNING l.*";

/// Columns of an operation row, for the queries that list them.
const OP_SELECT: &str = "SELECT * FROM lifecycle_operations";

impl Store {
    /// Creates operators' operations (each one a new correlation id) in one transaction, after
    /// checking with `check` (in the transaction, under the card's lock) that they still apply.
    /// Returns their ids.
    pub async fn create_operations(
        &self,
        ops: &[NewOperation],
        now: Millis,
    ) -> Result<Vec<i64>, StoreError> {
        let mut cards: Vec<&str> = ops.iter().map(|o| o.card_ref.as_str()).collect();
        cards.sort_unstable();
        cards.dedup();
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin_write().await?;
            for c in &cards {
                tx.lock_key(&format!("card-ref:{c}")).await?;
            }
            let mut ids = Vec::with_capacity(ops.len());
            for op in ops {
                let id = insert_operation!(tx, op, now);
                if op.operator.is_some() {
                    // An operator took this token over: the card's return to active leaves it.
                    if let Some(vcid) = &op.virtual_card_id {
                        sqlx::query(
                            "DELETE FROM status_suspended_tokens WHERE card_ref = $1 AND virtual_card_id = $2",
                        )
                        .bind(&op.card_ref)
                        .bind(vcid)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                ids.push(id);
            }
            tx.commit().await?;
            Ok(ids)
        })
    }

    /// Claims up to `limit` due operations, each the head of its card's queue, and pushes their
    /// next attempt to `lease_until` (beyond the attempt's deadline). Oldest first.
    pub async fn claim_operations(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> Result<Vec<OperationRow>, StoreError> {
        let mut rows: Vec<OperationRow> = match &self.backend {
            Backend::Sqlite { writer, .. } => {
                sqlx::query_as(CLAIM_SQLITE)
                    .bind(now)
                    .bind(lease_until)
                    .bind(limit)
                    .fetch_all(writer)
                    .await?
            }
            Backend::Postgres(pg) => {
                sqlx::query_as(CLAIM_POSTGRES)
                    .bind(now)
                    .bind(lease_until)
                    .bind(limit)
                    .fetch_all(pg)
                    .await?
            }
        };
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// Records attempt number `attempt` of operation `id` and what it came to. Changes the
    /// operation only if it is still that attempt's (not cancelled or claimed again meanwhile).
    pub async fn finish_attempt(
        &self,
        id: i64,
        attempt: i64,
        a: &Attempt,
    ) -> Result<(), StoreError> {
        let (state, next, sent_at, finished_at) = match a.verdict {
            AttemptVerdict::Accepted => ("sent", a.at, Some(a.at), None),
            AttemptVerdict::Retry {
                give_up: true,
                next,
            } => ("failed", next, None, Some(a.at)),
            AttemptVerdict::Retry { next, .. } => ("waiting", next, None, None),
            AttemptVerdict::Refused => ("refused", a.at, None, Some(a.at)),
        };
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO lifecycle_attempts (operation_id, at, http_status, response_code, outcome, duration_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(a.at)
            .bind(a.http_status.map(i64::from))
            .bind(a.response_code)
            .bind(a.outcome)
            .bind(a.duration_ms)
            .execute(&mut *tx)
            .await?;
            let changed = sqlx::query(
                "UPDATE lifecycle_operations SET state = $3, next_attempt_at = $4, \
                 sent_at = COALESCE($5, sent_at), finished_at = COALESCE($6, finished_at), last_error = $7, \
                 fpan_details = CASE WHEN $3 = 'waiting' THEN fpan_details ELSE NULL END, updated_at = $8 \
                 WHERE id = $1 AND attempts = $2 AND state = 'waiting'",
            )
            .bind(id)
            .bind(attempt)
            .bind(state)
            .bind(next)
            .bind(sent_at)
            .bind(finished_at)
            .bind(&a.error)
            .bind(a.at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 {
                emit_operation_failed_in!(tx, id, state, a.at, a.error.as_deref());
            }
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn operation(&self, id: i64) -> Result<Option<OperationRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(&format!("{OP_SELECT} WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?)
        })
    }

    pub async fn operation_attempts(&self, id: i64) -> Result<Vec<AttemptRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT at, http_status, response_code, outcome, duration_ms FROM lifecycle_attempts \
                 WHERE operation_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(pool)
            .await?)
        })
    }

    /// The operations of a card, in the order they were made.
    pub async fn operations_of_card(
        &self,
        card_ref: &str,
    ) -> Result<Vec<OperationRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(
                sqlx::query_as(&format!("{OP_SELECT} WHERE card_ref = $1 ORDER BY id"))
                    .bind(card_ref)
                    .fetch_all(pool)
                    .await?,
            )
        })
    }

    /// Operations in `state`, oldest first; `unconfirmed` lists the `sent` ones sent before
    /// `unconfirmed_before`.
    pub async fn operations_in_state(
        &self,
        state: &str,
        unconfirmed_before: Millis,
        limit: i64,
    ) -> Result<Vec<OperationRow>, StoreError> {
        with_pool!(self, read, |pool| {
            let rows = if state == "unconfirmed" {
                sqlx::query_as(&format!(
                    "{OP_SELECT} WHERE state = 'sent' AND sent_at < $1 ORDER BY id LIMIT $2"
                ))
                .bind(unconfirmed_before)
                .bind(limit)
                .fetch_all(pool)
                .await?
            } else {
                sqlx::query_as(&format!(
                    "{OP_SELECT} WHERE state = $1 ORDER BY id LIMIT $2"
                ))
                .bind(state)
                .bind(limit)
                .fetch_all(pool)
                .await?
            };
            Ok(rows)
        })
    }

    /// Cancels a waiting operation. `Ok(None)`: no such operation; else the row after the
    /// attempt, and whether this call cancelled it.
    pub async fn cancel_operation(
        &self,
        id: i64,
        operator: &str,
        now: Millis,
    ) -> Result<Option<(OperationRow, bool)>, StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin_write().await?;
            let cancelled = sqlx::query(
                "UPDATE lifecycle_operations SET state = 'cancelled', finished_at = $2, updated_at = $2, \
                 fpan_details = NULL, last_error = $3 WHERE id = $1 AND state = 'waiting'",
            )
            .bind(id)
            .bind(now)
            .bind(format!("cancelled by {operator}"))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let row: Option<OperationRow> = sqlx::query_as(&format!("{OP_SELECT} WHERE id = $1"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(row.map(|r| (r, cancelled)))
        })
    }

    /// Makes a `failed` operation due now (it waits again, at the head of its card's queue if
    /// nothing older waits). Returns the row after the attempt, and whether this call did it.
    pub async fn retry_operation(
        &self,
        id: i64,
        now: Millis,
    ) -> Result<Option<(OperationRow, bool)>, StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin_write().await?;
            let retried = sqlx::query(
                "UPDATE lifecycle_operations SET state = 'waiting', next_attempt_at = $2, finished_at = NULL, \
                 updated_at = $2 WHERE id = $1 AND state = 'failed'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let row: Option<OperationRow> = sqlx::query_as(&format!("{OP_SELECT} WHERE id = $1"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(row.map(|r| (r, retried)))
        })
    }

    /// The figures of the log at `now`; `sent` operations sent before `unconfirmed_before` count
    /// as unconfirmed.
    pub async fn operation_stats(
        &self,
        now: Millis,
        unconfirmed_before: Millis,
    ) -> Result<OperationStats, StoreError> {
        with_pool!(self, read, |pool| {
            let rows = sqlx::query(
                "SELECT kind, COALESCE(action, '') AS action, state, COUNT(*) AS n FROM lifecycle_operations \
                 GROUP BY kind, action, state ORDER BY kind, action, state",
            )
            .fetch_all(pool)
            .await?;
            let mut stats = OperationStats::default();
            for r in rows {
                let kind: String = r.try_get("kind")?;
                let action: String = r.try_get("action")?;
                let state: String = r.try_get("state")?;
                let n: i64 = r.try_get("n")?;
                match state.as_str() {
                    "waiting" => stats.waiting += n,
                    "failed" => stats.failed += n,
                    "refused" => stats.refused += n,
                    _ => {}
                }
                let label = if action.is_empty() {
                    kind
                } else {
                    format!("{kind} {action}")
                };
                stats.by_kind_state.push((label, state, n));
            }
            let (unconfirmed,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM lifecycle_operations WHERE state = 'sent' AND sent_at < $1",
            )
            .bind(unconfirmed_before)
            .fetch_one(pool)
            .await?;
            stats.unconfirmed = unconfirmed;
            let (oldest,): (Option<i64>,) = sqlx::query_as(
                "SELECT MIN(created_at) FROM lifecycle_operations WHERE state = 'waiting'",
            )
            .fetch_one(pool)
            .await?;
            stats.oldest_waiting_ms = oldest.map(|o| (now.0 - o).max(0)).unwrap_or(0);
            Ok(stats)
        })
    }
}
