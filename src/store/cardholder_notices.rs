//! Messages to the cardholder that are not OTPs: the activation notice after an ACTIVATE. A
//! durable queue beside the life-cycle operation log, in its style: written in the transaction
//! of the token notice that causes it (so TSH's answer never waits for it, and a crash loses
//! none), once per token and target (a unique key: an ACTIVATE that arrives twice makes one),
//! claimed by the notice sender of any instance (`FOR UPDATE SKIP LOCKED` on PostgreSQL; a
//! claim moves `next_attempt_at` beyond the attempt's deadline), retried with back-off.
//!
//! States: `waiting` (due at `next_attempt_at`), then `sent`, `failed` (given up after certain
//! failures), `unclear` (the provider may have delivered it: never sent again), `skipped` (no
//! destination on file, or the card is gone).

use super::{Backend, Store, StoreError};
use crate::domain::Millis;
use serde::Serialize;

/// The activation notice's kind.
pub const TOKEN_ACTIVATED: &str = "token_activated";

/// One notice of the queue.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CardholderNoticeRow {
    pub id: i64,
    pub kind: String,
    pub card_ref: String,
    pub virtual_card_id: String,
    pub wallet_provider_id: String,
    pub correlation_id: String,
    /// `current`: the card's destination when the notice goes; `previous`: the one it had before
    /// a recent change.
    pub target: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Millis,
    pub last_error: Option<String>,
    pub channel: Option<String>,
    /// The provider that accepted it.
    pub provider: Option<String>,
    pub destination_masked: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub finished_at: Option<Millis>,
}

/// What an attempt came to.
#[derive(Debug, Clone)]
pub struct NoticeAttempt {
    pub at: Millis,
    /// `sent`, `waiting` (again at `next`), `failed`, `unclear`, `skipped`.
    pub state: &'static str,
    pub next: Millis,
    pub error: Option<String>,
    pub channel: Option<&'static str>,
    pub provider: Option<String>,
    pub destination_masked: Option<String>,
}

/// Queues the activation notice of token `$vcid` in transaction `$tx` (nothing when one is
/// already queued for that token: once per token), and a second one to the card's previous
/// destination when its phone or e-mail changed after `$previous_since` (`Option<Millis>`;
/// `None`: never).
macro_rules! enqueue_activation_notice {
    ($tx:ident, $card_ref:expr, $vcid:expr, $wallet:expr, $correlation_id:expr, $now:expr, $previous_since:expr) => {{
        bind_enqueue_notice!(
            sqlx::query($crate::store::cardholder_notices::ENQUEUE_CURRENT),
            $card_ref,
            $vcid,
            $wallet,
            $correlation_id,
            $now
        )
        .execute(&mut *$tx)
        .await?;
        let previous_since: Option<$crate::domain::Millis> = $previous_since;
        if let Some(since) = previous_since {
            bind_enqueue_notice!(
                sqlx::query($crate::store::cardholder_notices::ENQUEUE_PREVIOUS),
                $card_ref,
                $vcid,
                $wallet,
                $correlation_id,
                $now
            )
            .bind(since)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

/// The activation notice to the card's current destination ([`bind_enqueue_notice!`]).
pub(super) const ENQUEUE_CURRENT: &str = "INSERT INTO cardholder_notices (kind, card_ref, virtual_card_id, wallet_provider_id, correlation_id, target, \
     state, attempts, next_attempt_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, 'current', 'waiting', 0, $6, $6, $6) \
     ON CONFLICT (kind, virtual_card_id, target) DO NOTHING";

/// ... and to its previous one, when it changed after `$7` ([`bind_enqueue_notice!`], then
/// `$7`).
pub(super) const ENQUEUE_PREVIOUS: &str = "INSERT INTO cardholder_notices (kind, card_ref, virtual_card_id, wallet_provider_id, correlation_id, target, \
     state, attempts, next_attempt_at, created_at, updated_at) \
     SELECT $1, $2, $3, $4, $5, 'previous', 'waiting', 0, $6, $6, $6 FROM cards WHERE card_ref = $2 \
     AND ((phone_previous_sealed IS NOT NULL AND phone_changed_at > $7) \
       OR (email_previous_sealed IS NOT NULL AND email_changed_at > $7)) \
     ON CONFLICT (kind, virtual_card_id, target) DO NOTHING";

/// Binds `$1` to `$6` of [`ENQUEUE_CURRENT`] and [`ENQUEUE_PREVIOUS`].
macro_rules! bind_enqueue_notice {
    ($q:expr, $card_ref:expr, $vcid:expr, $wallet:expr, $correlation_id:expr, $now:expr) => {
        $q.bind($crate::store::TOKEN_ACTIVATED)
            .bind($card_ref)
            .bind($vcid)
            .bind($wallet)
            .bind($correlation_id)
            .bind($now)
    };
}

/// Records an attempt of a notice ([`bind_finish_notice!`]); changes it only if it is still that
/// attempt's (not claimed again meanwhile).
pub(super) const FINISH_NOTICE: &str = "UPDATE cardholder_notices SET state = $3, next_attempt_at = $4, last_error = $5, \
     channel = COALESCE($6, channel), provider = COALESCE($7, provider), \
     destination_masked = COALESCE($8, destination_masked), updated_at = $9, finished_at = $10 \
     WHERE id = $1 AND attempts = $2 AND state = 'waiting'";

/// Binds [`FINISH_NOTICE`] for attempt number `$attempt` of notice `$id`, which came to `$a`.
macro_rules! bind_finish_notice {
    ($q:expr, $id:expr, $attempt:expr, $a:expr) => {
        $q.bind($id)
            .bind($attempt)
            .bind($a.state)
            .bind($a.next)
            .bind(&$a.error)
            .bind($a.channel)
            .bind(&$a.provider)
            .bind(&$a.destination_masked)
            .bind($a.at)
            .bind(($a.state != "waiting").then_some($a.at))
    };
}

const CLAIM_SQLITE: &str = "UPDATE cardholder_notices SET attempts = attempts + 1, next_attempt_at = $2, updated_at = $1 \
     WHERE id IN (SELECT id FROM cardholder_notices WHERE state = 'waiting' AND next_attempt_at <= $1 ORDER BY id LIMIT $3) \
     RETURNING *";

const CLAIM_POSTGRES: &str = "WITH due AS (SELECT id FROM cardholder_notices WHERE state = 'waiting' AND next_attempt_at <= $1 \
       ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
     UPDATE cardholder_notices n SET attempts = n.attempts + 1, next_attempt_at = $2, updated_at = $1 \
     FROM due WHERE n.id = due.id RETURNING n.*";

impl Store {
    /// Claims up to `limit` due notices and pushes their next attempt to `lease_until`.
    pub async fn claim_cardholder_notices(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> Result<Vec<CardholderNoticeRow>, StoreError> {
        let mut rows: Vec<CardholderNoticeRow> = match &self.backend {
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

    /// Records attempt number `attempt` of notice `id`; changes it only if it is still that
    /// attempt's (not claimed again meanwhile).
    pub async fn finish_cardholder_notice(
        &self,
        id: i64,
        attempt: i64,
        a: &NoticeAttempt,
    ) -> Result<(), StoreError> {
        match &self.backend {
            // In the group commit: one fsync for many, instead of one of its own on the writer
            // connection, which the calls' writes would wait behind.
            Backend::Sqlite { batcher, .. } => batcher.finish_notice(id, attempt, a).await,
            Backend::Postgres(pg) => {
                bind_finish_notice!(sqlx::query(FINISH_NOTICE), id, attempt, a)
                    .execute(pg)
                    .await?;
                Ok(())
            }
        }
    }

    /// The card's destinations before their last change, sealed: (phone, e-mail).
    pub async fn previous_destinations(
        &self,
        card_ref: &str,
    ) -> Result<(Option<String>, Option<String>), StoreError> {
        with_pool!(self, read, |pool| {
            let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT phone_previous_sealed, email_previous_sealed FROM cards WHERE card_ref = $1",
            )
            .bind(card_ref)
            .fetch_optional(pool)
            .await?;
            Ok(row.unwrap_or((None, None)))
        })
    }

    /// How many notices are in each state (`waiting`, `sent`, `failed`, `unclear`, `skipped`).
    pub async fn cardholder_notice_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT state, COUNT(*) FROM cardholder_notices GROUP BY state ORDER BY state",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// The notices of a card, in the order they were queued.
    pub async fn cardholder_notices_of_card(
        &self,
        card_ref: &str,
    ) -> Result<Vec<CardholderNoticeRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(
                sqlx::query_as("SELECT * FROM cardholder_notices WHERE card_ref = $1 ORDER BY id")
                    .bind(card_ref)
                    .fetch_all(pool)
                    .await?,
            )
        })
    }
}
