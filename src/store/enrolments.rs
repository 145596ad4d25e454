//! Enrolments, their calls and decisions.

use super::sends::SendFinish;
use super::tokens::NoticeRecord;
use super::{Backend, LockKey, NoticeOutcome, Store, StoreError};
use crate::domain::{IdvKind, LevelOfTrust, Millis};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EnrolmentRow {
    pub correlation_id: String,
    pub card_ref: Option<String>,
    pub wallet_provider_id: Option<String>,
    pub state: String,
    pub decision: Option<LevelOfTrust>,
    pub decision_rule: Option<String>,
    pub decision_signals: Option<String>,
    pub device_language: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// The device the digitization named, for the activation notice.
    pub device_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MethodRow {
    pub method_id: String,
    /// The method's kind (an OTP channel, the bank's app, customer service).
    pub channel: IdvKind,
    pub method_type: String,
    pub masked_value: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CallRow {
    pub operation: String,
    pub card_ref: Option<String>,
    pub response_code: i64,
    pub outcome: String,
    pub detail: Option<String>,
    pub duration_ms: Millis,
    pub at: Millis,
}

/// One call of an enrolment, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct CallRecord<'a> {
    pub correlation_id: &'a str,
    pub operation: &'a str,
    pub card_ref: Option<&'a str>,
    pub wallet: Option<&'a str>,
    /// The enrolment's new state, if this call changes it.
    pub state: Option<&'a str>,
    pub response_code: i64,
    pub outcome: &'a str,
    pub detail: Option<&'a str>,
    pub duration_ms: Millis,
    pub at: Millis,
}

#[derive(Debug, Clone)]
pub struct MethodRecord {
    pub method_id: String,
    /// The method's kind (an OTP channel, the bank's app, customer service).
    pub channel: IdvKind,
    pub method_type: String,
    pub masked_value: String,
}

/// A digitization decision, with the ID&V methods it offered.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub decision: String,
    pub rule: String,
    pub signals_json: String,
    pub device_language: Option<String>,
    /// The device the digitization named (`delivery::template::device_label`).
    pub device_name: Option<String>,
    pub methods: Vec<MethodRecord>,
}

/// What an operation writes besides its call record, in the same transaction
/// ([`super::Store::record`]).
#[derive(Debug, Clone)]
pub enum Write {
    /// Only the call record (and the enrolment it belongs to).
    Nothing,
    Decision(DecisionRecord),
    /// The outcome of the claimed send `id`.
    SendFinished {
        id: i64,
        finish: SendFinish,
    },
    Notice(NoticeRecord),
}

/// What a [`Write`] found, where the caller needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Done,
    Notice(super::NoticeOutcome),
}

/// The decision of a digitization, on its enrolment ([`bind_decision!`] binds its parameters).
/// The decision is about the card it names: a later sendOTP must be for that card.
pub(super) const SET_DECISION: &str = "UPDATE enrolments SET decision = $2, decision_rule = $3, decision_signals = $4, \
     device_language = COALESCE($5, device_language), card_ref = COALESCE($6, card_ref), \
     device_name = COALESCE($7, device_name) WHERE correlation_id = $1";

/// Binds the parameters of [`SET_DECISION`] for call `$call` and decision `$d`.
macro_rules! bind_decision {
    ($q:expr, $call:expr, $d:expr) => {
        $q.bind($call.correlation_id)
            .bind(&$d.decision)
            .bind(&$d.rule)
            .bind(&$d.signals_json)
            .bind(&$d.device_language)
            .bind($call.card_ref)
            .bind(&$d.device_name)
    };
}

/// The methods of an earlier decision of the enrolment (`$1`) go: a decision replaces them whole.
pub(super) const DELETE_METHODS: &str = "DELETE FROM enrolment_methods WHERE correlation_id = $1";

/// One ID&V method offered ([`bind_method!`] binds its parameters).
pub(super) const INSERT_METHOD: &str = "INSERT INTO enrolment_methods (correlation_id, method_id, channel, method_type, masked_value, position) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// Binds the parameters of [`INSERT_METHOD`] for method `$m`, the `$i`-th of call `$call`.
macro_rules! bind_method {
    ($q:expr, $call:expr, $m:expr, $i:expr) => {
        $q.bind($call.correlation_id)
            .bind(&$m.method_id)
            .bind($m.channel)
            .bind(&$m.method_type)
            .bind(&$m.masked_value)
            .bind(i64::try_from($i).unwrap_or(i64::MAX))
    };
}

/// The statements of a digitization decision (with its methods) and its call, on `$tx`.
///
/// Two decisions of one enrolment at once (a retried digitization on another instance) are
/// applied one after the other without a further lock: the first statement, the enrolment
/// upsert, holds the enrolment's row until commit, and every later statement reads afresh, so
/// the second replaces the first's methods whole.
macro_rules! record_decision_in {
    ($tx:ident, $call:expr, $d:expr) => {
        async {
            let call = $call;
            let d = $d;
            upsert_enrolment!($tx, call);
            bind_decision!(
                sqlx::query($crate::store::enrolments::SET_DECISION),
                call,
                d
            )
            .execute(&mut *$tx)
            .await?;
            sqlx::query($crate::store::enrolments::DELETE_METHODS)
                .bind(call.correlation_id)
                .execute(&mut *$tx)
                .await?;
            for (i, m) in d.methods.iter().enumerate() {
                bind_method!(
                    sqlx::query($crate::store::enrolments::INSERT_METHOD),
                    call,
                    m,
                    i
                )
                .execute(&mut *$tx)
                .await?;
            }
            emit_decision_event_in!($tx, call, d);
            insert_call!($tx, call);
            Ok::<(), StoreError>(())
        }
        .await
    };
}

/// The statements of one call's record and what its operation writes, on `$tx` (a transaction
/// or a savepoint): `Result<Written, StoreError>`.
macro_rules! apply_write {
    ($tx:ident, $call:expr, $write:expr) => {
        async {
            let call = $call;
            match $write {
                Write::Nothing => {
                    upsert_enrolment!($tx, call);
                    insert_call!($tx, call);
                    Ok::<Written, StoreError>(Written::Done)
                }
                Write::Decision(d) => record_decision_in!($tx, call, d).map(|()| Written::Done),
                Write::SendFinished { id, finish } => {
                    finish_send_in!($tx, *id, call, finish).map(|()| Written::Done)
                }
                Write::Notice(n) => apply_notice_in!($tx, call, n).map(Written::Notice),
            }
        }
        .await
    };
}

impl Store {
    /// Records one call of an enrolment with what its operation writes, in one transaction,
    /// creating the enrolment when it is new. The call record's `state`, when given, becomes
    /// the enrolment's state; its `card_ref` and `wallet` fill in what is unknown.
    pub async fn record(
        &self,
        call: &CallRecord<'_>,
        write: &Write,
    ) -> Result<Written, StoreError> {
        match &self.backend {
            // Group commit: the single writer batches concurrent calls' writes into one
            // transaction (super::group_commit).
            Backend::Sqlite { batcher, .. } => batcher.record(call, write).await,
            Backend::Postgres(pg) => {
                let mut tx = pg.begin().await?;
                let written = apply_write!(tx, call, write)?;
                tx.commit().await?;
                Ok(written)
            }
        }
    }

    pub async fn enrolment(
        &self,
        correlation_id: &str,
    ) -> Result<Option<EnrolmentRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(
                sqlx::query_as("SELECT * FROM enrolments WHERE correlation_id = $1")
                    .bind(correlation_id)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    pub async fn enrolment_methods(
        &self,
        correlation_id: &str,
    ) -> Result<Vec<MethodRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as("SELECT method_id, channel, method_type, masked_value FROM enrolment_methods WHERE correlation_id = $1 ORDER BY position")
                .bind(correlation_id)
                .fetch_all(pool)
                .await?)
        })
    }

    /// Whether a refused call may be recorded: it belongs to an enrolment already on file, or
    /// names a card the issuer has (`card_ref`), and its enrolment holds fewer than `cap`
    /// refused calls. Anyone who can reach the API could otherwise grow the database with
    /// refusals under made-up correlation ids and card references.
    pub async fn may_record_refusal(
        &self,
        correlation_id: &str,
        card_ref: Option<&str>,
        cap: i64,
    ) -> Result<bool, StoreError> {
        with_pool!(self, read, |pool| {
            let (enrolments, cards, refused): (i64, i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM enrolments WHERE correlation_id = $1), \
                 (SELECT COUNT(*) FROM cards WHERE card_ref = $2), \
                 (SELECT COUNT(*) FROM calls WHERE correlation_id = $1 AND response_code <> 200)",
            )
            .bind(correlation_id)
            .bind(card_ref.unwrap_or(""))
            .fetch_one(pool)
            .await?;
            Ok((enrolments > 0 || cards > 0) && refused < cap)
        })
    }

    pub async fn calls(&self, correlation_id: &str) -> Result<Vec<CallRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as("SELECT operation, card_ref, response_code, outcome, detail, duration_ms, at FROM calls WHERE correlation_id = $1 ORDER BY id")
                .bind(correlation_id)
                .fetch_all(pool)
                .await?)
        })
    }
}
