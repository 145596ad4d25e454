//! OTP send attempts, and the rate limits counted over them.
//!
//! A send is claimed before it goes out: in one transaction that holds the locks of the card, the
//! destination and the channel (PostgreSQL advisory locks; SQLite has a single writer), the
//! retry fingerprint and every limit are checked and a `pending` row is inserted. The limits
//! are therefore exact under any concurrency and across instances. After the provider answered,
//! the row gets its outcome together with the call record.

use super::{Backend, LockKey, Store, StoreError};
use crate::domain::{Channel, Millis, SendOutcome};
use serde::Serialize;

/// Sends that count against the limits: those that went out, or may have (`pending`: under way
/// or interrupted by a crash; `timeout`: the provider may have delivered it). Refusals do not
/// count, so nobody can use failures to lock a cardholder out.
pub(super) const COUNTED: &str = "('pending', 'accepted', 'timeout')";

/// What a limit counts sends by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// The enrolment (correlation id).
    Enrolment,
    Card,
    /// The phone number or e-mail address (its fingerprint).
    Destination,
    /// Every send on the channel, all cards together.
    Channel,
}

impl LimitScope {
    /// The column of `sends` that holds this scope's key.
    pub(super) fn column(self) -> &'static str {
        match self {
            LimitScope::Enrolment => "correlation_id",
            LimitScope::Card => "card_ref",
            LimitScope::Destination => "destination_fp",
            LimitScope::Channel => "channel",
        }
    }
}

/// One rate limit, as `controls::limits` defines it: at most `max` counted sends with the same
/// key within `window` (`None`: ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimit {
    pub name: &'static str,
    pub scope: LimitScope,
    pub window: Option<Millis>,
    pub max: i64,
}

/// A send about to go out.
#[derive(Debug, Clone, Copy)]
pub struct SendClaim<'a> {
    pub correlation_id: &'a str,
    pub card_ref: &'a str,
    pub method_id: &'a str,
    pub channel: Channel,
    pub provider: &'a str,
    pub destination_masked: &'a str,
    pub destination_fp: &'a str,
    pub retry_fp: &'a str,
    pub at: Millis,
    /// A `pending` send older than this is taken as interrupted (a crash) for the retry rule.
    pub stale_after: Millis,
    pub limits: &'a [SendLimit],
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Go ahead: the pending send's id.
    Claimed(i64),
    /// The same OTP on the same method was already accepted: send nothing.
    AlreadyAccepted,
    /// The same OTP on the same method is being sent right now by another call.
    InFlight,
    /// The same OTP on the same method already went out twice without a clear outcome (the
    /// first send and its one retry): it is not sent a third time.
    RetriedOnce,
    /// A limit is reached (its name).
    Limited(&'static str),
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SendRow {
    pub method_id: String,
    pub channel: Channel,
    pub provider: String,
    pub destination_masked: String,
    pub outcome: SendOutcome,
    pub response_code: i64,
    pub provider_message_id: Option<String>,
    pub provider_code: Option<String>,
    pub latency_ms: Millis,
    pub at: Millis,
    /// The provider that accepted the message (NULL: none did).
    pub accepted_by: Option<String>,
    /// Every attempt in order: `twilio:refused vonage:accepted`.
    pub attempts: Option<String>,
}

/// The provider's answer to a claimed send.
#[derive(Debug, Clone)]
pub struct SendFinish {
    pub outcome: SendOutcome,
    pub provider_message_id: Option<String>,
    pub provider_code: Option<String>,
    pub latency_ms: Millis,
    /// The provider that accepted the message, if one did.
    pub accepted_by: Option<String>,
    /// Every attempt in order (`Sent::summary`).
    pub attempts: String,
}

/// The outcome of claimed send `$1` ([`bind_send_finish!`] binds its parameters).
pub(super) const FINISH_SEND: &str = "UPDATE sends SET outcome = $2, response_code = $3, provider_message_id = $4, \
     provider_code = $5, latency_ms = $6, accepted_by = $7, attempts = $8 WHERE id = $1";

/// Binds the parameters of [`FINISH_SEND`] for send `$id`, its call `$call` and outcome `$f`.
macro_rules! bind_send_finish {
    ($q:expr, $id:expr, $call:expr, $f:expr) => {
        $q.bind($id)
            .bind($f.outcome.as_str())
            .bind($call.response_code)
            .bind(&$f.provider_message_id)
            .bind(&$f.provider_code)
            .bind($f.latency_ms)
            .bind(&$f.accepted_by)
            .bind(&$f.attempts)
    };
}

/// The statements of a claimed send's outcome and its call, on `$tx`.
macro_rules! finish_send_in {
    ($tx:ident, $id:expr, $call:expr, $f:expr) => {
        async {
            let (id, call, f) = ($id, $call, $f);
            upsert_enrolment!($tx, call);
            bind_send_finish!(sqlx::query($crate::store::sends::FINISH_SEND), id, call, f)
                .execute(&mut *$tx)
                .await?;
            emit_send_event_in!($tx, id, call, f.outcome);
            insert_call!($tx, call);
            Ok::<(), StoreError>(())
        }
        .await
    };
}

/// The statements of a send's claim (`Store::claim_send`) on `$tx`: `Result<Claim, StoreError>`.
/// A claim that is refused writes nothing.
macro_rules! claim_send_in {
    ($tx:ident, $c:expr) => {
        async {
            let c: &$crate::store::SendClaim<'_> = $c;
            // Always the same order (card, destination, channel), so two claims never deadlock.
            let keys = [
                format!("send-card:{}", c.card_ref),
                format!("send-destination:{}", c.destination_fp),
                format!("send-channel:{}", c.channel.as_str()),
            ];
            for key in &keys {
                $tx.lock_key(key).await?;
            }
            let previous: Vec<($crate::domain::SendOutcome, $crate::domain::Millis)> =
                sqlx::query_as("SELECT outcome, at FROM sends WHERE retry_fp = $1 AND outcome IN ('accepted', 'pending', 'timeout')")
                    .bind(c.retry_fp)
                    .fetch_all(&mut *$tx)
                    .await?;
            if previous.iter().any(|(o, _)| *o == $crate::domain::SendOutcome::Accepted) {
                return Ok($crate::store::Claim::AlreadyAccepted);
            }
            if previous
                .iter()
                .any(|(o, at)| *o == $crate::domain::SendOutcome::Pending && *at > c.at.minus(c.stale_after))
            {
                return Ok($crate::store::Claim::InFlight);
            }
            // Unclear outcomes (a timeout, a crash mid-send): the same OTP goes out once more,
            // not again and again (the same code twice is harmless, an endless stream is not).
            let unclear = previous
                .iter()
                .filter(|(o, _)| matches!(o, $crate::domain::SendOutcome::Timeout | $crate::domain::SendOutcome::Pending))
                .count();
            if unclear >= 2 {
                return Ok($crate::store::Claim::RetriedOnce);
            }
            for limit in c.limits {
                let key = match limit.scope {
                    $crate::store::LimitScope::Enrolment => c.correlation_id,
                    $crate::store::LimitScope::Card => c.card_ref,
                    $crate::store::LimitScope::Destination => c.destination_fp,
                    $crate::store::LimitScope::Channel => c.channel.as_str(),
                };
                let sql = format!(
                    "SELECT COUNT(*) FROM sends WHERE {} = $1 AND outcome IN {} AND at > $2",
                    limit.scope.column(),
                    $crate::store::sends::COUNTED
                );
                // A send at time t counts while now < t + window: the window reopens exactly
                // `window` after the send.
                let since = limit.window.map_or($crate::domain::Millis(i64::MIN), |w| c.at.minus(w));
                let (n,): (i64,) = sqlx::query_as(&sql)
                    .bind(key)
                    .bind(since)
                    .fetch_one(&mut *$tx)
                    .await?;
                if n >= limit.max {
                    return Ok($crate::store::Claim::Limited(limit.name));
                }
            }
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO sends (correlation_id, card_ref, method_id, channel, provider, destination_masked, destination_fp, \
                 retry_fp, outcome, response_code, latency_ms, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, 0, $9) RETURNING id",
            )
            .bind(c.correlation_id)
            .bind(c.card_ref)
            .bind(c.method_id)
            .bind(c.channel.as_str())
            .bind(c.provider)
            .bind(c.destination_masked)
            .bind(c.destination_fp)
            .bind(c.retry_fp)
            .bind(c.at)
            .fetch_one(&mut *$tx)
            .await?;
            Ok::<$crate::store::Claim, $crate::store::StoreError>($crate::store::Claim::Claimed(id))
        }
        .await
    };
}

impl Store {
    /// Claims a send: checks the retry rule and every limit, and records a pending send, atomically.
    /// On SQLite the claim joins the group commit (`super::group_commit`): it shares the batch's
    /// fsync, and is answered only once that is on disk.
    pub async fn claim_send(&self, c: &SendClaim<'_>) -> Result<Claim, StoreError> {
        match &self.backend {
            Backend::Sqlite { batcher, .. } => batcher.claim(c).await,
            Backend::Postgres(pg) => {
                let mut tx = pg.begin().await?;
                let claim = claim_send_in!(tx, c)?;
                tx.commit().await?;
                Ok(claim)
            }
        }
    }

    /// The outcome of the newest send with this retry fingerprint, if any.
    pub async fn send_outcome(&self, retry_fp: &str) -> Result<Option<SendOutcome>, StoreError> {
        with_pool!(self, read, |pool| {
            let row: Option<(SendOutcome,)> = sqlx::query_as(
                "SELECT outcome FROM sends WHERE retry_fp = $1 ORDER BY id DESC LIMIT 1",
            )
            .bind(retry_fp)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|(o,)| o))
        })
    }

    pub async fn sends(&self, correlation_id: &str) -> Result<Vec<SendRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT method_id, channel, provider, destination_masked, outcome, response_code, provider_message_id, \
                 provider_code, latency_ms, at, accepted_by, attempts FROM sends WHERE correlation_id = $1 ORDER BY id",
            )
            .bind(correlation_id)
            .fetch_all(pool)
            .await?)
        })
    }
}
