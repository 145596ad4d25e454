//! The purge: rows past their retention (`[retention]`), removed in small batches so that no
//! transaction holds the database for long (on SQLite every batch is one short write
//! transaction, between which the calls' own writes go through). On PostgreSQL one instance
//! purges at a time: a batch starts only under a transaction-scoped advisory lock that no other
//! instance holds. Tokens, cards and token events are never purged.

use super::{Backend, LockKey, Store, StoreError};
use crate::domain::Millis;

/// The tables the purge removes rows from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeTable {
    Calls,
    Sends,
    /// Enrolments by their last change, with the ID&V methods they were offered.
    Enrolments,
    /// Finished life-cycle operations (by when they finished), with their attempts.
    Operations,
    /// Webhook events every delivery of which was delivered (by the last delivery), with
    /// their deliveries.
    Events,
}

impl PurgeTable {
    pub const ALL: [PurgeTable; 5] = [
        PurgeTable::Calls,
        PurgeTable::Sends,
        PurgeTable::Enrolments,
        PurgeTable::Operations,
        PurgeTable::Events,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PurgeTable::Calls => "calls",
            PurgeTable::Sends => "sends",
            PurgeTable::Enrolments => "enrolments",
            PurgeTable::Operations => "operations",
            PurgeTable::Events => "events",
        }
    }

    fn count_sql(self) -> &'static str {
        match self {
            PurgeTable::Calls => "SELECT COUNT(*) FROM calls WHERE at < $1",
            PurgeTable::Sends => "SELECT COUNT(*) FROM sends WHERE at < $1",
            PurgeTable::Enrolments => "SELECT COUNT(*) FROM enrolments WHERE updated_at < $1",
            PurgeTable::Operations => {
                "SELECT COUNT(*) FROM lifecycle_operations WHERE finished_at < $1 \
                 AND state IN ('confirmed', 'failed', 'refused', 'cancelled')"
            }
            PurgeTable::Events => {
                "SELECT COUNT(*) FROM webhook_events e WHERE e.created_at < $1 AND NOT EXISTS \
                 (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id \
                 AND (d.state <> 'delivered' OR d.finished_at >= $1))"
            }
        }
    }

    /// The statements of one batch; the last one's count is the batch's.
    fn delete_sql(self) -> &'static [&'static str] {
        match self {
            // The app API's request counts (options C and D) go with the calls of their time.
            PurgeTable::Calls => &[
                "DELETE FROM activation_requests WHERE id IN (SELECT id FROM activation_requests WHERE at < $1 ORDER BY id LIMIT $2)",
                "DELETE FROM calls WHERE id IN (SELECT id FROM calls WHERE at < $1 ORDER BY id LIMIT $2)",
            ],
            PurgeTable::Sends => &[
                "DELETE FROM sends WHERE id IN (SELECT id FROM sends WHERE at < $1 ORDER BY id LIMIT $2)",
            ],
            // The methods of the batch's enrolments first, then the enrolments (the same batch:
            // the same condition and order).
            PurgeTable::Enrolments => &[
                "DELETE FROM enrolment_methods WHERE correlation_id IN (SELECT correlation_id FROM enrolments \
                 WHERE updated_at < $1 ORDER BY correlation_id LIMIT $2)",
                "DELETE FROM enrolments WHERE correlation_id IN (SELECT correlation_id FROM enrolments \
                 WHERE updated_at < $1 ORDER BY correlation_id LIMIT $2)",
            ],
            // The attempts of the batch's operations first, then the operations. Waiting and
            // sent operations are never purged (they hold their card's queue, or wait for
            // their notices).
            PurgeTable::Operations => &[
                "DELETE FROM activations WHERE operation_id IN (SELECT id FROM lifecycle_operations \
                 WHERE finished_at < $1 AND state IN ('confirmed', 'failed', 'refused', 'cancelled') \
                 ORDER BY id LIMIT $2)",
                "DELETE FROM lifecycle_attempts WHERE operation_id IN (SELECT id FROM lifecycle_operations \
                 WHERE finished_at < $1 AND state IN ('confirmed', 'failed', 'refused', 'cancelled') \
                 ORDER BY id LIMIT $2)",
                "DELETE FROM lifecycle_operations WHERE id IN (SELECT id FROM lifecycle_operations \
                 WHERE finished_at < $1 AND state IN ('confirmed', 'failed', 'refused', 'cancelled') \
                 ORDER BY id LIMIT $2)",
            ],
            // An event goes once every delivery of it was delivered before the cutoff: its
            // deliveries first, then the event (the same batch: the same condition and order;
            // once its deliveries are gone, an event of the batch still meets it).
            PurgeTable::Events => &[
                "DELETE FROM webhook_deliveries WHERE event_id IN (SELECT e.id FROM webhook_events e \
                 WHERE e.created_at < $1 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id \
                 AND (d.state <> 'delivered' OR d.finished_at >= $1)) ORDER BY e.id LIMIT $2)",
                "DELETE FROM webhook_events WHERE id IN (SELECT e.id FROM webhook_events e \
                 WHERE e.created_at < $1 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id \
                 AND (d.state <> 'delivered' OR d.finished_at >= $1)) ORDER BY e.id LIMIT $2)",
            ],
        }
    }
}

/// The key of the purge's advisory lock (PostgreSQL).
const PURGE_LOCK: &str = "retention-purge";

impl Store {
    /// How many rows of `table` are older than `before` (what the purge would remove).
    pub async fn count_purgeable(
        &self,
        table: PurgeTable,
        before: Millis,
    ) -> Result<u64, StoreError> {
        with_pool!(self, read, |pool| {
            let (n,): (i64,) = sqlx::query_as(table.count_sql())
                .bind(before)
                .fetch_one(pool)
                .await?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    /// Removes at most `limit` rows of `table` older than `before`, in one short transaction.
    /// `None`: another instance is purging right now (PostgreSQL), nothing was done.
    pub async fn purge_batch(
        &self,
        table: PurgeTable,
        before: Millis,
        limit: i64,
    ) -> Result<Option<u64>, StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            if !tx.try_lock_key(PURGE_LOCK).await? {
                return Ok(None);
            }
            let mut removed = 0;
            for sql in table.delete_sql() {
                removed = sqlx::query(sql)
                    .bind(before)
                    .bind(limit)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(Some(removed))
        })
    }
}
