//! The audit log: every console login (success or failure) and every operator action, from the
//! console, the admin API or the command line. Append-only; each entry carries a keyed hash
//! (HMAC with the data keys' fingerprint key) of its content and of the previous entry's hash,
//! so that an entry changed, removed or inserted afterwards breaks the chain (`verify_chain`).

use super::operations::BeginWrite;
use super::{Backend, LockKey, Store, StoreError};
use crate::data_keys::DataKeys;
use crate::domain::Millis;
use serde::Serialize;

/// The hash before the first entry.
pub const AUDIT_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an audit entry says (free text fields are checked by the caller: no card number).
#[derive(Debug, Clone, Default)]
pub struct AuditEntry<'a> {
    /// Who: an operator's name, or the `operator` of an admin API or CLI action.
    pub actor: &'a str,
    /// `console`, `admin-api` or `cli`.
    pub channel: &'a str,
    /// e.g. `login`, `logout`, `token SUSPEND`, `operation retry`, `operator add`.
    pub action: &'a str,
    /// `ok`, `refused`, `failed`, ...
    pub outcome: &'a str,
    pub card_ref: Option<&'a str>,
    pub virtual_card_id: Option<&'a str>,
    pub operation_id: Option<i64>,
    pub reason: Option<&'a str>,
    pub detail: Option<&'a str>,
    /// The source address of a console request.
    pub source: Option<&'a str>,
}

/// One stored entry, as exported (JSON lines).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AuditRow {
    pub seq: i64,
    pub at: Millis,
    pub actor: String,
    pub channel: String,
    pub action: String,
    pub outcome: String,
    pub card_ref: Option<String>,
    pub virtual_card_id: Option<String>,
    pub operation_id: Option<i64>,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub source: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The keyed hash of an entry, chained to `prev`.
#[allow(clippy::too_many_arguments)]
fn entry_hash(keys: &DataKeys, seq: i64, at: Millis, e: &AuditEntry<'_>, prev: &str) -> String {
    let op = e.operation_id.map(|i| i.to_string()).unwrap_or_default();
    let opt = |v: Option<&str>| v.unwrap_or("\u{0}").as_bytes().to_vec();
    keys.fingerprint(
        "audit-log",
        &[
            seq.to_string().as_bytes(),
            at.0.to_string().as_bytes(),
            e.actor.as_bytes(),
            e.channel.as_bytes(),
            e.action.as_bytes(),
            e.outcome.as_bytes(),
            &opt(e.card_ref),
            &opt(e.virtual_card_id),
            op.as_bytes(),
            &opt(e.reason),
            &opt(e.detail),
            &opt(e.source),
            prev.as_bytes(),
        ],
    )
}

impl AuditRow {
    fn entry(&self) -> AuditEntry<'_> {
        AuditEntry {
            actor: &self.actor,
            channel: &self.channel,
            action: &self.action,
            outcome: &self.outcome,
            card_ref: self.card_ref.as_deref(),
            virtual_card_id: self.virtual_card_id.as_deref(),
            operation_id: self.operation_id,
            reason: self.reason.as_deref(),
            detail: self.detail.as_deref(),
            source: self.source.as_deref(),
        }
    }
}

/// Checks a run of entries (in order) against the chain, starting after `prev` (the hash of the
/// entry before the first, [`AUDIT_GENESIS`] from the start): the first entry that does not
/// hold, or `None` when all do.
pub fn verify_chain(keys: &DataKeys, rows: &[AuditRow], prev: &str) -> Option<i64> {
    let mut prev = prev.to_owned();
    for r in rows {
        let expected = entry_hash(keys, r.seq, r.at, &r.entry(), &prev);
        let linked = r.prev_hash == prev;
        let holds = aws_lc_rs::constant_time::verify_slices_are_equal(
            expected.as_bytes(),
            r.hash.as_bytes(),
        )
        .is_ok();
        if !linked || !holds {
            return Some(r.seq);
        }
        prev.clone_from(&r.hash);
    }
    None
}

const AUDIT_SELECT: &str = "SELECT seq, at, actor, channel, action, outcome, card_ref, \
    virtual_card_id, operation_id, reason, detail, source, prev_hash, hash FROM audit_log";

impl Store {
    /// Appends an entry at the end of the chain (one at a time across instances: a lock on the
    /// log); returns its sequence number.
    pub async fn append_audit(
        &self,
        keys: &DataKeys,
        e: &AuditEntry<'_>,
        at: Millis,
    ) -> Result<i64, StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin_write().await?;
            tx.lock_key("audit-log").await?;
            let last: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            let (seq, prev) = match last {
                Some((s, h)) => (s + 1, h),
                None => (1, AUDIT_GENESIS.to_owned()),
            };
            let hash = entry_hash(keys, seq, at, e, &prev);
            sqlx::query(
                "INSERT INTO audit_log (seq, at, actor, channel, action, outcome, card_ref, \
                 virtual_card_id, operation_id, reason, detail, source, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(seq)
            .bind(at)
            .bind(e.actor)
            .bind(e.channel)
            .bind(e.action)
            .bind(e.outcome)
            .bind(e.card_ref)
            .bind(e.virtual_card_id)
            .bind(e.operation_id)
            .bind(e.reason)
            .bind(e.detail)
            .bind(e.source)
            .bind(&prev)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(seq)
        })
    }

    /// Entries after `after_seq`, oldest first, at most `limit`.
    pub async fn audit_entries(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(&format!(
                "{AUDIT_SELECT} WHERE seq > $1 ORDER BY seq LIMIT $2"
            ))
            .bind(after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// The latest entries, newest first.
    pub async fn audit_latest(&self, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(
                sqlx::query_as(&format!("{AUDIT_SELECT} ORDER BY seq DESC LIMIT $1"))
                    .bind(limit)
                    .fetch_all(pool)
                    .await?,
            )
        })
    }

    /// Walks the whole chain in batches: the first entry that does not hold, if any, and how
    /// many entries were checked.
    pub async fn verify_audit(&self, keys: &DataKeys) -> Result<(Option<i64>, u64), StoreError> {
        let mut prev = AUDIT_GENESIS.to_owned();
        let mut after = 0;
        let mut checked = 0u64;
        loop {
            let rows = self.audit_entries(after, 1000).await?;
            let Some(last) = rows.last() else {
                return Ok((None, checked));
            };
            if let Some(bad) = verify_chain(keys, &rows, &prev) {
                return Ok((Some(bad), checked));
            }
            checked += rows.len() as u64;
            after = last.seq;
            prev.clone_from(&last.hash);
        }
    }
}
