//! What the admin API reads and writes beyond the operations' own queries: card updates by
//! reference, the notices and enrolments of a card, enrolments stuck in step-up, and the state
//! of the connection pools. Like the rest of the store, nothing here holds a PAN, an OTP or a
//! destination in clear.

use super::operations::BeginWrite;
use super::{Backend, CardRow, LockKey, Store, StoreError};
use crate::domain::{CardStatus, LevelOfTrust, Millis};
use serde::Serialize;

/// A new destination, already sealed, masked and fingerprinted (see
/// `card_file::sealed_phone` / `card_file::sealed_email`).
#[derive(Debug, Clone)]
pub struct ContactUpdate {
    pub sealed: String,
    pub masked: String,
    pub fp: String,
}

/// An update of a card from the admin API. For each field, `None` leaves it as it is; for the
/// contact details and the language, `Some(None)` removes the value.
#[derive(Debug, Clone, Default)]
pub struct CardUpdate {
    pub status: Option<CardStatus>,
    pub phone: Option<Option<ContactUpdate>>,
    pub email: Option<Option<ContactUpdate>>,
    pub language: Option<Option<String>>,
}

/// A token notice of an enrolment.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct NoticeRow {
    pub virtual_card_id: String,
    pub action: String,
    pub source: Option<String>,
    pub error_code: Option<i64>,
    pub state_before: Option<String>,
    pub state_after: String,
    pub at: Millis,
}

/// One enrolment of a card, in short.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EnrolmentSummaryRow {
    pub correlation_id: String,
    pub wallet_provider_id: Option<String>,
    pub state: String,
    pub decision: Option<LevelOfTrust>,
    pub decision_rule: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// An enrolment answered yellow and neither activated nor failed since.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StuckEnrolmentRow {
    pub correlation_id: String,
    pub card_ref: Option<String>,
    pub wallet_provider_id: Option<String>,
    pub state: String,
    pub decision_rule: Option<String>,
    /// When the (last) yellow answer was given.
    pub decided_at: Millis,
    pub sends: i64,
    pub sends_accepted: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// The state of one connection pool.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PoolStat {
    /// `writer` / `reader` (SQLite) or `main` (PostgreSQL).
    pub pool: &'static str,
    /// Connections open (idle or in use).
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

impl Store {
    /// Updates a card's status and contact details by reference. A destination whose
    /// fingerprint changed (set, replaced or removed) gets `*_changed_at` = `now`. Returns the
    /// card as stored after the update and which destinations changed, or `None` when no card
    /// has this reference.
    pub async fn admin_update_card(
        &self,
        card_ref: &str,
        update: &CardUpdate,
        now: Millis,
    ) -> Result<Option<(CardRow, Vec<&'static str>, Vec<String>)>, StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin_write().await?;
            // The card's lock first, the one `cards import` takes (its PAN index never
            // changes), then the row read afresh under it: a concurrent import is never undone
            // by rewriting the contact columns it had just changed (on PostgreSQL; SQLite's
            // single writer serialises the two anyway).
            let index: Option<(String,)> =
                sqlx::query_as("SELECT pan_index FROM cards WHERE card_ref = $1")
                    .bind(card_ref)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((pan_index,)) = index else {
                return Ok(None);
            };
            tx.lock_key(&format!("card-pan:{pan_index}")).await?;
            let old: Option<CardRow> = sqlx::query_as("SELECT * FROM cards WHERE card_ref = $1")
                .bind(card_ref)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(old) = old else {
                return Ok(None);
            };
            let mut changed = Vec::new();
            let (phone_sealed, phone_masked, phone_fp, phone_changed_at) = merge_contact(
                &update.phone,
                (
                    &old.phone_sealed,
                    &old.phone_masked,
                    &old.phone_fp,
                    old.phone_changed_at,
                ),
                now,
                || changed.push("phone"),
            );
            let (email_sealed, email_masked, email_fp, email_changed_at) = merge_contact(
                &update.email,
                (
                    &old.email_sealed,
                    &old.email_masked,
                    &old.email_fp,
                    old.email_changed_at,
                ),
                now,
                || changed.push("email"),
            );
            let status = update.status.unwrap_or(old.status);
            let language = match &update.language {
                None => old.language.clone(),
                Some(l) => l.clone(),
            };
            sqlx::query(
                "UPDATE cards SET status = $2, phone_sealed = $3, phone_masked = $4, phone_fp = $5, \
                 phone_changed_at = $6, email_sealed = $7, email_masked = $8, email_fp = $9, \
                 email_changed_at = $10, language = $11, updated_at = $12 WHERE card_ref = $1",
            )
            .bind(card_ref)
            .bind(status.as_str())
            .bind(phone_sealed)
            .bind(phone_masked)
            .bind(phone_fp)
            .bind(phone_changed_at)
            .bind(email_sealed)
            .bind(email_masked)
            .bind(email_fp)
            .bind(email_changed_at)
            .bind(language)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            // The life-cycle operations of a status change, in the same transaction.
            let ops = status_change_operations!(tx, card_ref, old.status, status, now);
            let row: CardRow = sqlx::query_as("SELECT * FROM cards WHERE card_ref = $1")
                .bind(card_ref)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some((row, changed, ops)))
        })
    }

    /// The most recent enrolments of a card, newest first.
    pub async fn admin_enrolments_of_card(
        &self,
        card_ref: &str,
        limit: i64,
    ) -> Result<Vec<EnrolmentSummaryRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT correlation_id, wallet_provider_id, state, decision, decision_rule, created_at, updated_at \
                 FROM enrolments WHERE card_ref = $1 ORDER BY created_at DESC, correlation_id LIMIT $2",
            )
            .bind(card_ref)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// The token notices recorded under a correlation id, in order.
    pub async fn admin_notices(&self, correlation_id: &str) -> Result<Vec<NoticeRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT virtual_card_id, action, source, error_code, state_before, state_after, at \
                 FROM token_events WHERE correlation_id = $1 ORDER BY id",
            )
            .bind(correlation_id)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Enrolments whose last decision was yellow, answered at or before `decided_before` (ms),
    /// and neither complete (activated) nor failed since; oldest first, at most `limit`.
    pub async fn admin_stuck_enrolments(
        &self,
        decided_before: Millis,
        limit: i64,
    ) -> Result<Vec<StuckEnrolmentRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT * FROM (\
                   SELECT e.correlation_id, e.card_ref, e.wallet_provider_id, e.state, e.decision_rule, \
                     COALESCE((SELECT MAX(c.at) FROM calls c WHERE c.correlation_id = e.correlation_id \
                       AND c.operation = 'requestCardDigitization' AND c.response_code = 200), e.updated_at) AS decided_at, \
                     (SELECT COUNT(*) FROM sends s WHERE s.correlation_id = e.correlation_id) AS sends, \
                     (SELECT COUNT(*) FROM sends s WHERE s.correlation_id = e.correlation_id \
                       AND s.outcome = 'accepted') AS sends_accepted, \
                     e.created_at, e.updated_at \
                   FROM enrolments e \
                   WHERE e.decision = 'yellow' AND e.state NOT IN ('complete', 'failed')\
                 ) t WHERE t.decided_at <= $1 ORDER BY t.decided_at, t.correlation_id LIMIT $2",
            )
            .bind(decided_before)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// SQLite's group commit: transactions committed and the calls' writes they held, since
    /// start (for the metrics). `None` on PostgreSQL.
    pub fn write_batches(&self) -> Option<(u64, u64)> {
        match &self.backend {
            Backend::Sqlite { batcher, .. } => Some(batcher.counts()),
            Backend::Postgres(_) => None,
        }
    }

    /// Size, idle connections and maximum of each connection pool (for the metrics).
    pub fn pool_stats(&self) -> Vec<PoolStat> {
        fn stat<DB: sqlx::Database>(name: &'static str, p: &sqlx::Pool<DB>) -> PoolStat {
            PoolStat {
                pool: name,
                size: p.size(),
                idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
                max: p.options().get_max_connections(),
            }
        }
        match &self.backend {
            Backend::Sqlite { writer, reader, .. } => {
                vec![stat("writer", writer), stat("reader", reader)]
            }
            Backend::Postgres(pg) => vec![stat("main", pg)],
        }
    }
}

type Contact<'a> = (
    &'a Option<String>,
    &'a Option<String>,
    &'a Option<String>,
    Option<Millis>,
);

/// The stored columns of a destination after an update: unchanged when not updated; when the
/// fingerprint differs from the stored one, `changed` is called and the change time is `now`.
fn merge_contact(
    update: &Option<Option<ContactUpdate>>,
    (sealed, masked, fp, changed_at): Contact<'_>,
    now: Millis,
    changed: impl FnOnce(),
) -> (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Millis>,
) {
    match update {
        None => (sealed.clone(), masked.clone(), fp.clone(), changed_at),
        Some(new) => {
            let new_fp = new.as_ref().map(|c| c.fp.clone());
            let at = if new_fp == *fp {
                changed_at
            } else {
                changed();
                Some(now)
            };
            match new {
                None => (None, None, None, at),
                Some(c) => (Some(c.sealed.clone()), Some(c.masked.clone()), new_fp, at),
            }
        }
    }
}
