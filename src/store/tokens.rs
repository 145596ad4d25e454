//! Tokens (virtual cards) and their notices.

use super::{Backend, Store, StoreError};
use crate::domain::Millis;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TokenRow {
    pub virtual_card_id: String,
    pub card_ref: String,
    pub wallet_provider_id: String,
    pub token_storage_id: Option<String>,
    pub is_primary: Option<bool>,
    pub state: String,
    pub dpan_last4: Option<String>,
    pub dpan_exp: Option<String>,
    pub correlation_id: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TokenEventRow {
    pub correlation_id: String,
    pub action: String,
    pub source: Option<String>,
    pub error_code: Option<i64>,
    pub state_before: Option<String>,
    pub state_after: String,
    pub at: Millis,
}

/// A token notice.
#[derive(Debug, Clone)]
pub struct NoticeRecord {
    pub virtual_card_id: String,
    pub card_ref: String,
    pub wallet_provider_id: String,
    pub token_storage_id: Option<String>,
    pub is_primary: Option<bool>,
    pub action: crate::domain::Action,
    pub source: Option<String>,
    pub error_code: Option<i64>,
    pub dpan_last4: Option<String>,
    pub dpan_exp: Option<String>,
    pub notice_fp: String,
    /// Queue the cardholder's activation notice when this ACTIVATE activates the token
    /// (`notices.token_activated`).
    pub tell_cardholder: bool,
    /// ... and to the card's previous destination too when it changed after this time (the
    /// destination-change control's window; `None`: never).
    pub previous_destination_since: Option<Millis>,
}

/// Outcome of recording a token notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeOutcome {
    Recorded {
        before: Option<String>,
        after: String,
    },
    Duplicate,
}

/// Completes, in transaction `$tx`, the enrolment of an activation outside the OTP (options C
/// and D) that the notice answers: by the RESUME's correlation id, or by the token it named.
macro_rules! complete_activated_enrolment {
    ($tx:ident, $correlation_id:expr, $virtual_card_id:expr, $now:expr) => {
        sqlx::query($crate::store::tokens::COMPLETE_ACTIVATED)
            .bind($correlation_id)
            .bind($virtual_card_id)
            .bind($now)
            .execute(&mut *$tx)
            .await?
    };
}

/// [`complete_activated_enrolment!`]'s statement: `$1` the correlation id, `$2` the token, `$3`
/// the time.
pub(super) const COMPLETE_ACTIVATED: &str = "UPDATE enrolments SET state = 'complete', updated_at = $3 WHERE state NOT IN ('complete', 'failed') \
     AND correlation_id IN (SELECT a.enrolment_id FROM activations a JOIN lifecycle_operations o ON o.id = a.operation_id \
     WHERE o.correlation_id = $1 OR (o.virtual_card_id = $2 AND o.state IN ('sent', 'confirmed')))";

/// The notice's event, once per fingerprint ([`bind_token_event!`]).
pub(super) const INSERT_TOKEN_EVENT: &str = "INSERT INTO token_events (virtual_card_id, correlation_id, action, source, error_code, state_before, state_after, notice_fp, at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (notice_fp) DO NOTHING";

/// Binds [`INSERT_TOKEN_EVENT`] for notice `$n` of call `$call`, from state `$before` to `$after`.
macro_rules! bind_token_event {
    ($q:expr, $call:expr, $n:expr, $before:expr, $after:expr) => {
        $q.bind(&$n.virtual_card_id)
            .bind($call.correlation_id)
            .bind($n.action.as_str())
            .bind(&$n.source)
            .bind($n.error_code)
            .bind($before)
            .bind($after)
            .bind(&$n.notice_fp)
            .bind($call.at)
    };
}

/// The token as the notice leaves it ([`bind_token!`]).
pub(super) const UPSERT_TOKEN: &str = "INSERT INTO tokens (virtual_card_id, card_ref, wallet_provider_id, token_storage_id, is_primary, state, \
     dpan_last4, dpan_exp, correlation_id, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
     ON CONFLICT (virtual_card_id) DO UPDATE SET state = $6, \
     token_storage_id = COALESCE($4, tokens.token_storage_id), \
     is_primary = COALESCE($5, tokens.is_primary), \
     dpan_last4 = CASE WHEN $11 THEN NULL ELSE COALESCE($7, tokens.dpan_last4) END, \
     dpan_exp = CASE WHEN $11 THEN NULL ELSE COALESCE($8, tokens.dpan_exp) END, \
     card_ref = CASE WHEN $12 AND tokens.state <> 'deleted' THEN $2 ELSE tokens.card_ref END, \
     updated_at = $10";

/// Binds [`UPSERT_TOKEN`] for notice `$n` of call `$call` leaving state `$after`; `$failed`: the
/// notice reports a failed operation; `$wipe`: it erases the token's details.
macro_rules! bind_token {
    ($q:expr, $call:expr, $n:expr, $after:expr, $failed:expr, $wipe:expr) => {
        $q.bind(&$n.virtual_card_id)
            .bind(&$n.card_ref)
            .bind(&$n.wallet_provider_id)
            .bind(&$n.token_storage_id)
            .bind($n.is_primary)
            .bind($after)
            .bind(if $wipe || $failed {
                None
            } else {
                $n.dpan_last4.as_deref()
            })
            .bind(if $wipe || $failed {
                None
            } else {
                $n.dpan_exp.as_deref()
            })
            .bind($call.correlation_id)
            .bind($call.at)
            .bind($wipe)
            // UPDATE: the funding card changed (renewal, replacement): the token now belongs to
            // the card the notice names.
            .bind(!$failed && matches!($n.action, $crate::domain::Action::Update))
    };
}

/// An ACTIVATE completes the enrolment of its correlation id (`$1`) at `$2`.
pub(super) const ENROLMENT_COMPLETE: &str = "UPDATE enrolments SET state = 'complete', updated_at = $2 WHERE correlation_id = $1 AND state <> 'failed'";

/// A deletion fails the enrolment of its correlation id (`$1`) at `$2`.
pub(super) const ENROLMENT_FAILED: &str = "UPDATE enrolments SET state = 'failed', updated_at = $2 WHERE correlation_id = $1 AND state <> 'complete'";

/// The state notice `n` leaves its token in, coming from `before`, and whether it reports a
/// failed life-cycle operation. A notice carrying an errorCode reports a life-cycle operation
/// that failed: it is recorded, and changes neither the token (a token it names for the first
/// time is pending) nor the enrolment.
pub(super) fn state_after(before: Option<&str>, n: &NoticeRecord) -> (String, bool) {
    let before_state = before.and_then(crate::domain::TokenState::parse);
    let failed = n.error_code.is_some();
    let after = if failed {
        before_state.unwrap_or(crate::domain::TokenState::Pending)
    } else {
        crate::domain::TokenState::after(before_state, &n.action)
    };
    (after.as_str().to_owned(), failed)
}

/// What a recorded (not duplicate) notice does besides its event, its token, its enrolment's
/// row and the operation it confirms.
pub(super) struct NoticeThen {
    /// An ACTIVATE that activated the token: the cardholder's activation notice is queued
    /// (`notices.token_activated`), ...
    pub enqueue_notice: bool,
    /// ... and its enrolment is complete.
    pub complete_enrolment: bool,
    /// The token became active (ACTIVATE or RESUME): an activation outside the OTP (options C
    /// and D) that it answers completes its enrolment.
    pub complete_activated: bool,
    /// A deletion fails the enrolment.
    pub fail_enrolment: bool,
}

impl NoticeThen {
    pub(super) fn of(n: &NoticeRecord, after: &str, failed: bool) -> NoticeThen {
        use crate::domain::Action;
        let activated = !failed && matches!(n.action, Action::Activate) && after == "active";
        NoticeThen {
            enqueue_notice: activated && n.tell_cardholder,
            complete_enrolment: activated,
            complete_activated: activated
                || (!failed && matches!(n.action, Action::Resume) && after == "active"),
            fail_enrolment: !failed
                && matches!(
                    n.action,
                    Action::Delete | Action::DeleteFromApp | Action::Erase
                ),
        }
    }
}

/// The statements of a token notice and its call, on `$tx`: `Result<NoticeOutcome, _>`.
///
/// Applies a token notice idempotently: the notice's fingerprint is recorded once; a second
/// identical notice changes nothing. The enrolment of the same correlation id is completed by
/// an ACTIVATE and failed by a DELETE (unless already complete).
///
/// Notices of one token are applied one at a time, whichever instance receives them: the
/// token's lock is taken before its state is read, so two notices racing each other cannot
/// both start from the same state (a lost update could bring a deleted token back), and the
/// same notice delivered twice at once is recorded once and seen as a duplicate by the other.
macro_rules! apply_notice_in {
    ($tx:ident, $call:expr, $n:expr) => {
        async {
            let (call, n) = ($call, $n);
            $tx.lock_key(&format!("token:{}", n.virtual_card_id))
                .await?;
            let current: Option<(String,)> =
                sqlx::query_as("SELECT state FROM tokens WHERE virtual_card_id = $1")
                    .bind(&n.virtual_card_id)
                    .fetch_optional(&mut *$tx)
                    .await?;
            let before = current.map(|(s,)| s);
            let (after, failed) = $crate::store::tokens::state_after(before.as_deref(), n);
            // The event first: its fingerprint is unique, so a notice already recorded inserts
            // nothing here (never a constraint error) and changes nothing else.
            let inserted = bind_token_event!(
                sqlx::query($crate::store::tokens::INSERT_TOKEN_EVENT),
                call,
                n,
                &before,
                &after
            )
            .execute(&mut *$tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                let dup = CallRecord {
                    outcome: "duplicate",
                    state: None,
                    ..*call
                };
                upsert_enrolment!($tx, &dup);
                insert_call!($tx, &dup);
                return Ok(NoticeOutcome::Duplicate);
            }
            let wipe = !failed && matches!(n.action, crate::domain::Action::Erase);
            let then = $crate::store::tokens::NoticeThen::of(n, &after, failed);
            bind_token!(
                sqlx::query($crate::store::tokens::UPSERT_TOKEN),
                call,
                n,
                &after,
                failed,
                wipe
            )
            .execute(&mut *$tx)
            .await?;
            emit_token_event_in!($tx, call, n, &before, &after);
            upsert_enrolment!($tx, call);
            // The life-cycle operation this notice answers, if any, is confirmed.
            confirm_operation!(
                $tx,
                call.correlation_id,
                &n.card_ref,
                &n.virtual_card_id,
                n.action.as_str(),
                call.at
            );
            if then.enqueue_notice {
                // The cardholder is told, once per token, by the notice sender.
                enqueue_activation_notice!(
                    $tx,
                    &n.card_ref,
                    &n.virtual_card_id,
                    &n.wallet_provider_id,
                    call.correlation_id,
                    call.at,
                    n.previous_destination_since
                );
            }
            if then.complete_enrolment {
                sqlx::query($crate::store::tokens::ENROLMENT_COMPLETE)
                    .bind(call.correlation_id)
                    .bind(call.at)
                    .execute(&mut *$tx)
                    .await?;
            }
            if then.complete_activated {
                complete_activated_enrolment!(
                    $tx,
                    call.correlation_id,
                    &n.virtual_card_id,
                    call.at
                );
            }
            if then.fail_enrolment {
                sqlx::query($crate::store::tokens::ENROLMENT_FAILED)
                    .bind(call.correlation_id)
                    .bind(call.at)
                    .execute(&mut *$tx)
                    .await?;
            }
            insert_call!($tx, call);
            Ok::<NoticeOutcome, StoreError>(NoticeOutcome::Recorded { before, after })
        }
        .await
    };
}

impl Store {
    pub async fn token(&self, virtual_card_id: &str) -> Result<Option<TokenRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(
                sqlx::query_as("SELECT * FROM tokens WHERE virtual_card_id = $1")
                    .bind(virtual_card_id)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    pub async fn tokens_of_card(&self, card_ref: &str) -> Result<Vec<TokenRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT * FROM tokens WHERE card_ref = $1 ORDER BY created_at, virtual_card_id",
            )
            .bind(card_ref)
            .fetch_all(pool)
            .await?)
        })
    }

    pub async fn token_events(
        &self,
        virtual_card_id: &str,
    ) -> Result<Vec<TokenEventRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT correlation_id, action, source, error_code, state_before, state_after, at FROM token_events \
                 WHERE virtual_card_id = $1 ORDER BY id",
            )
            .bind(virtual_card_id)
            .fetch_all(pool)
            .await?)
        })
    }

    /// The tokens on one device (`tokenStorageId`), across cards.
    pub async fn tokens_on_device(
        &self,
        token_storage_id: &str,
    ) -> Result<Vec<TokenRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT * FROM tokens WHERE token_storage_id = $1 ORDER BY card_ref, virtual_card_id",
            )
            .bind(token_storage_id)
            .fetch_all(pool)
            .await?)
        })
    }

    /// The card's tokens that are active now.
    pub async fn count_active_tokens(&self, card_ref: &str) -> Result<i64, StoreError> {
        with_pool!(self, read, |pool| {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM tokens WHERE card_ref = $1 AND state = 'active'",
            )
            .bind(card_ref)
            .fetch_one(pool)
            .await?;
            Ok(n)
        })
    }
}
