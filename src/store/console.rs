//! What the operator console reads beyond the admin API's own queries: the overview's counts of
//! the last hours, the search by BIN and last 4, and the lists the overview's numbers link to.
//! Like the rest of the store, nothing here holds a PAN, an OTP or a destination in clear.

use super::{Backend, CardRow, Store, StoreError};
use crate::domain::{LevelOfTrust, Millis};

/// A count of one group (a label or a pair of labels).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GroupCount {
    pub key: String,
    pub sub: String,
    pub count: i64,
}

/// The overview's counts since a time.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    /// Enrolments by decision (`green`, `yellow`, `red`) and `refused` (no decision: refused
    /// at eligibility or digitization).
    pub enrolments: Vec<GroupCount>,
    /// Decisions by the rule that decided (`sub`: the outcome).
    pub rules: Vec<GroupCount>,
    /// OTP sends by channel (`key`) and outcome (`sub`).
    pub sends: Vec<GroupCount>,
    /// sendOTP calls refused, by response code (limits and fraud controls).
    pub refusals: Vec<GroupCount>,
}

/// Which enrolments a list shows.
#[derive(Debug, Clone)]
pub enum EnrolmentFilter {
    /// By decision outcome, or `refused` for no decision.
    Outcome(String),
    /// By the rule that decided.
    Rule(String),
    /// Those with a send on this channel with this outcome.
    Send { channel: String, outcome: String },
    /// Those with a sendOTP refused with this response code (limits, fraud controls).
    RefusedSend(i64),
}

/// One enrolment of a list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EnrolmentListRow {
    pub correlation_id: String,
    pub card_ref: Option<String>,
    pub wallet_provider_id: Option<String>,
    pub state: String,
    pub decision: Option<LevelOfTrust>,
    pub decision_rule: Option<String>,
    pub created_at: Millis,
}

impl Store {
    /// The overview's counts of what happened since `since`.
    pub async fn console_overview(&self, since: Millis) -> Result<Overview, StoreError> {
        with_pool!(self, read, |pool| {
            let enrolments = sqlx::query_as(
                "SELECT COALESCE(decision, 'refused') AS key, '' AS sub, COUNT(*) AS count \
                 FROM enrolments WHERE created_at >= $1 GROUP BY COALESCE(decision, 'refused') \
                 ORDER BY 1",
            )
            .bind(since)
            .fetch_all(pool)
            .await?;
            let rules = sqlx::query_as(
                "SELECT COALESCE(decision_rule, '-') AS key, decision AS sub, COUNT(*) AS count \
                 FROM enrolments WHERE created_at >= $1 AND decision IS NOT NULL \
                 GROUP BY COALESCE(decision_rule, '-'), decision ORDER BY 3 DESC, 1 LIMIT 20",
            )
            .bind(since)
            .fetch_all(pool)
            .await?;
            let sends = sqlx::query_as(
                "SELECT channel AS key, outcome AS sub, COUNT(*) AS count FROM sends \
                 WHERE at >= $1 GROUP BY channel, outcome ORDER BY 1, 2",
            )
            .bind(since)
            .fetch_all(pool)
            .await?;
            let refusals = sqlx::query_as(
                "SELECT CAST(response_code AS TEXT) AS key, '' AS sub, COUNT(*) AS count \
                 FROM calls WHERE at >= $1 AND operation = 'sendOTP' AND outcome = 'refused' \
                 GROUP BY response_code ORDER BY 3 DESC",
            )
            .bind(since)
            .fetch_all(pool)
            .await?;
            Ok(Overview {
                enrolments,
                rules,
                sends,
                refusals,
            })
        })
    }

    /// The cards with this BIN and last 4 (at most `limit`).
    pub async fn cards_by_bin_last4(
        &self,
        bin: &str,
        last4: &str,
        limit: i64,
    ) -> Result<Vec<CardRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT * FROM cards WHERE bin = $1 AND last4 = $2 ORDER BY card_ref LIMIT $3",
            )
            .bind(bin)
            .bind(last4)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Enrolments created since `since` that the filter selects, newest first.
    pub async fn console_enrolments(
        &self,
        filter: &EnrolmentFilter,
        since: Millis,
        limit: i64,
    ) -> Result<Vec<EnrolmentListRow>, StoreError> {
        const SELECT: &str = "SELECT correlation_id, card_ref, wallet_provider_id, state, \
            decision, decision_rule, created_at FROM enrolments e";
        with_pool!(self, read, |pool| {
            let code_text = match filter {
                EnrolmentFilter::RefusedSend(code) => code.to_string(),
                _ => String::new(),
            };
            let (sql, a, b) = match filter {
                EnrolmentFilter::Outcome(o) => (
                    format!(
                        "{SELECT} WHERE created_at >= $1 AND COALESCE(decision, 'refused') = $2 \
                         AND $3 = '' ORDER BY created_at DESC LIMIT $4"
                    ),
                    o.as_str(),
                    "",
                ),
                EnrolmentFilter::Rule(r) => (
                    format!(
                        "{SELECT} WHERE created_at >= $1 AND decision IS NOT NULL \
                         AND COALESCE(decision_rule, '-') = $2 AND $3 = '' \
                         ORDER BY created_at DESC LIMIT $4"
                    ),
                    r.as_str(),
                    "",
                ),
                EnrolmentFilter::Send { channel, outcome } => (
                    format!(
                        "{SELECT} WHERE EXISTS (SELECT 1 FROM sends s WHERE s.correlation_id = \
                         e.correlation_id AND s.at >= $1 AND s.channel = $2 AND s.outcome = $3) \
                         ORDER BY created_at DESC LIMIT $4"
                    ),
                    channel.as_str(),
                    outcome.as_str(),
                ),
                EnrolmentFilter::RefusedSend(_) => (
                    format!(
                        "{SELECT} WHERE EXISTS (SELECT 1 FROM calls c WHERE c.correlation_id = \
                         e.correlation_id AND c.at >= $1 AND c.operation = 'sendOTP' \
                         AND c.outcome = 'refused' AND CAST(c.response_code AS TEXT) = $2) \
                         AND $3 = '' ORDER BY created_at DESC LIMIT $4"
                    ),
                    code_text.as_str(),
                    "",
                ),
            };
            let q = sqlx::query_as(&sql).bind(since).bind(a).bind(b).bind(limit);
            Ok(q.fetch_all(pool).await?)
        })
    }
}
