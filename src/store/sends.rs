//! OTP send attempts.

use super::*;

impl Store {

    /// True when a send with this retry fingerprint was already accepted.
    pub async fn send_accepted(&self, retry_fp: &str) -> Result<bool, StoreError> {
        with_pool!(self, write, |pool| {
            let row: Option<(i64,)> = sqlx::query_as(
                "SELECT id FROM sends WHERE retry_fp = $1 AND outcome = 'accepted' LIMIT 1",
            )
            .bind(retry_fp)
            .fetch_optional(pool)
            .await?;
            Ok(row.is_some())
        })
    }

    /// Records a send attempt and the call, in one transaction.
    pub async fn record_send(
        &self,
        call: &CallRecord<'_>,
        s: &SendRecord<'_>,
    ) -> Result<(), StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            upsert_enrolment!(tx, call);
            sqlx::query(
                "INSERT INTO sends (correlation_id, card_ref, method_id, channel, provider, destination_masked, destination_fp, \
                 retry_fp, outcome, response_code, provider_message_id, provider_code, latency_ms, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(call.correlation_id)
            .bind(s.card_ref)
            .bind(s.method_id)
            .bind(s.channel)
            .bind(s.provider)
            .bind(s.destination_masked)
            .bind(s.destination_fp)
            .bind(s.retry_fp)
            .bind(s.outcome)
            .bind(call.response_code)
            .bind(s.provider_message_id)
            .bind(s.provider_code)
            .bind(s.latency_ms)
            .bind(call.at)
            .execute(&mut *tx)
            .await?;
            insert_call!(tx, call);
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn sends(&self, correlation_id: &str) -> Result<Vec<SendRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT method_id, channel, provider, destination_masked, outcome, response_code, provider_message_id, \
                 provider_code, latency_ms, at FROM sends WHERE correlation_id = $1 ORDER BY id",
            )
            .bind(correlation_id)
            .fetch_all(pool)
            .await?)
        })
    }
}
