//! Activations outside the OTP (options C and D): the enrolments the bank's app may activate,
//! the tokens an enrolment's notices named, the RESUME made with its activation record (one
//! transaction), and the app API's per-card request count.
//!
//! The ACTIVATE notice that answers the RESUME completes the activation's enrolment
//! (`apply_notice_in!` in `tokens.rs`).

use super::operations::BeginWrite;
use super::{Backend, LockKey, NewOperation, Store, StoreError, TokenRow};
use crate::domain::{IdvKind, Millis};
use serde::Serialize;

/// An enrolment answered yellow that offered a given method.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OfferedEnrolmentRow {
    pub correlation_id: String,
    pub wallet_provider_id: Option<String>,
    pub state: String,
    /// When the yellow answer was given (its `requestCardDigitization`).
    pub answered_at: Option<Millis>,
}

/// What an activation records besides its RESUME operation.
#[derive(Debug, Clone)]
pub struct NewActivation {
    /// The enrolment the ACTIVATE notice completes, when one was found.
    pub enrolment_id: Option<String>,
    pub wallet_provider_id: Option<String>,
    /// `bank_app` (Option C) or `customer_service` (Option D).
    pub method: IdvKind,
    pub verification: Option<String>,
}

/// The outcome of [`Store::create_activation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activated {
    /// A new RESUME, this id.
    Created(i64),
    /// The enrolment already has a RESUME that is waiting, sent or confirmed: that one.
    Existing(i64),
}

impl Activated {
    pub fn id(self) -> i64 {
        match self {
            Activated::Created(id) | Activated::Existing(id) => id,
        }
    }
}

/// An activation, for `GET /v1/activations/{id}`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ActivationRow {
    pub operation_id: i64,
    pub enrolment_id: Option<String>,
    pub card_ref: String,
    pub method: String,
    pub verification: Option<String>,
    pub state: String,
    pub enrolment_state: Option<String>,
}

impl Store {
    /// The card's enrolments answered yellow that offered `method`, newest first.
    pub async fn enrolments_offering(
        &self,
        card_ref: &str,
        method: IdvKind,
    ) -> Result<Vec<OfferedEnrolmentRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT e.correlation_id, e.wallet_provider_id, e.state, \
                 (SELECT MAX(c.at) FROM calls c WHERE c.correlation_id = e.correlation_id \
                   AND c.operation = 'requestCardDigitization' AND c.outcome = 'yellow') AS answered_at \
                 FROM enrolments e WHERE e.card_ref = $1 AND e.decision = 'yellow' \
                 AND EXISTS (SELECT 1 FROM enrolment_methods m WHERE m.correlation_id = e.correlation_id AND m.channel = $2) \
                 ORDER BY e.created_at DESC, e.correlation_id LIMIT 50",
            )
            .bind(card_ref)
            .bind(method.as_str())
            .fetch_all(pool)
            .await?)
        })
    }

    /// The newest enrolment of the card answered yellow and neither complete nor failed (of
    /// this wallet, when given): the one an agent's activation completes.
    pub async fn open_yellow_enrolment(
        &self,
        card_ref: &str,
        wallet: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        with_pool!(self, read, |pool| {
            let rows: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT correlation_id, wallet_provider_id FROM enrolments WHERE card_ref = $1 \
                 AND decision = 'yellow' AND state NOT IN ('complete', 'failed') \
                 ORDER BY created_at DESC, correlation_id LIMIT 50",
            )
            .bind(card_ref)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .find(|(_, w)| match (wallet, w) {
                    (Some(want), Some(have)) => want.eq_ignore_ascii_case(have),
                    _ => true,
                })
                .map(|(c, _)| c))
        })
    }

    /// The tokens an enrolment's notices named (the token row it created, or any token with a
    /// notice of that correlation id).
    pub async fn enrolment_tokens(
        &self,
        correlation_id: &str,
    ) -> Result<Vec<TokenRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT * FROM tokens WHERE correlation_id = $1 OR virtual_card_id IN \
                 (SELECT virtual_card_id FROM token_events WHERE correlation_id = $1) \
                 ORDER BY created_at, virtual_card_id",
            )
            .bind(correlation_id)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Creates the RESUME `op` with its activation record, in one transaction under the card's
    /// lock; when the enrolment already has a RESUME waiting, sent or confirmed, creates
    /// nothing and returns that one (a repeated request makes no second RESUME).
    pub async fn create_activation(
        &self,
        op: &NewOperation,
        a: &NewActivation,
        now: Millis,
    ) -> Result<Activated, StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin_write().await?;
            tx.lock_key(&format!("card-ref:{}", op.card_ref)).await?;
            if let Some(e) = &a.enrolment_id {
                let existing: Option<(i64,)> = sqlx::query_as(
                    "SELECT a.operation_id FROM activations a JOIN lifecycle_operations o ON o.id = a.operation_id \
                     WHERE a.enrolment_id = $1 AND o.state IN ('waiting', 'sent', 'confirmed') \
                     ORDER BY a.operation_id DESC LIMIT 1",
                )
                .bind(e)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((id,)) = existing {
                    tx.commit().await?;
                    return Ok(Activated::Existing(id));
                }
            }
            let id = insert_operation!(tx, op, now);
            sqlx::query(
                "INSERT INTO activations (operation_id, enrolment_id, card_ref, wallet_provider_id, method, verification, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(&a.enrolment_id)
            .bind(&op.card_ref)
            .bind(&a.wallet_provider_id)
            .bind(a.method.as_str())
            .bind(&a.verification)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Activated::Created(id))
        })
    }

    /// An activation with its operation's state and its enrolment's.
    pub async fn activation(&self, operation_id: i64) -> Result<Option<ActivationRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT a.operation_id, a.enrolment_id, a.card_ref, a.method, a.verification, o.state, \
                 e.state AS enrolment_state FROM activations a \
                 JOIN lifecycle_operations o ON o.id = a.operation_id \
                 LEFT JOIN enrolments e ON e.correlation_id = a.enrolment_id \
                 WHERE a.operation_id = $1",
            )
            .bind(operation_id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Counts one app API request naming the card, unless the card already had `limit`
    /// (not themselves refused for the limit) since `since`: then records a refusal and
    /// answers false. Atomic under the card's lock, across instances.
    pub async fn admit_activation_request(
        &self,
        card_ref: &str,
        since: Millis,
        limit: u32,
        now: Millis,
    ) -> Result<bool, StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin_write().await?;
            tx.lock_key(&format!("app-requests:{card_ref}")).await?;
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM activation_requests WHERE card_ref = $1 AND at >= $2 AND outcome <> 'rate_limited'",
            )
            .bind(card_ref)
            .bind(since)
            .fetch_one(&mut *tx)
            .await?;
            let admitted = n < i64::from(limit);
            sqlx::query(
                "INSERT INTO activation_requests (card_ref, outcome, at) VALUES ($1, $2, $3)",
            )
            .bind(card_ref)
            .bind(if admitted { "admitted" } else { "rate_limited" })
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(admitted)
        })
    }
}
