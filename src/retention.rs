//! Retention: the purge of records past their time (`[retention]`), run by every `serve` in the
//! background (once shortly after start, then every hour; on PostgreSQL one instance at a time)
//! and on demand by `issuer-gateway purge [--dry-run]`. Tokens, cards and token events are kept.

use crate::config::RetentionConfig;
use crate::domain::Millis;
use crate::store::{PurgeTable, Store, StoreError};
use std::time::Duration;

/// Rows removed per transaction: small enough that a batch holds the (SQLite) writer for a few
/// milliseconds, so the calls' own writes are never held up for long.
pub const BATCH: i64 = 500;
/// The pause between two batches (measured in docs/retention.md: without it the calls' p50
/// latency rose fivefold during a large purge on SQLite).
pub const PAUSE: Duration = Duration::from_millis(5);
/// How often `serve` purges.
pub const EVERY: Duration = Duration::from_secs(3600);
/// The first purge after start: not at once, so that a restart does not add to a busy start.
pub const FIRST_AFTER: Duration = Duration::from_secs(60);

/// What a purge removed (or would), per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    pub tables: Vec<(PurgeTable, u64)>,
    /// Another instance was purging (PostgreSQL): this one stopped and left it the work.
    pub yielded: bool,
}

impl Purged {
    pub fn total(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// The time before which `table`'s rows are past their retention at `now`.
pub fn cutoff(config: &RetentionConfig, table: PurgeTable, now: Millis) -> Millis {
    let days = match table {
        PurgeTable::Calls => config.calls_days,
        PurgeTable::Sends => config.sends_days,
        PurgeTable::Enrolments => config.enrolments_days,
        PurgeTable::Operations => config.operations_days,
        PurgeTable::Events => config.events_days,
    };
    now.minus(Millis(i64::from(days) * 86_400_000))
}

/// Removes every row past its retention at `now`, batch by batch (`dry_run`: counts them and
/// removes nothing).
pub async fn purge(
    store: &Store,
    config: &RetentionConfig,
    now: Millis,
    dry_run: bool,
) -> Result<Purged, StoreError> {
    let mut purged = Purged::default();
    for table in PurgeTable::ALL {
        let before = cutoff(config, table, now);
        if dry_run {
            let n = store.count_purgeable(table, before).await?;
            purged.tables.push((table, n));
            continue;
        }
        let mut removed = 0;
        loop {
            match store.purge_batch(table, before, BATCH).await? {
                None => {
                    purged.yielded = true;
                    break;
                }
                Some(n) => {
                    removed += n;
                    crate::metrics::record_purged(table.name(), n);
                    if n < u64::try_from(BATCH).unwrap_or(u64::MAX) {
                        break;
                    }
                    // Let the calls' writes in between batches: a pause, not only a yield,
                    // so that the writes waiting for the (SQLite) writer take it first.
                    tokio::time::sleep(PAUSE).await;
                }
            }
        }
        purged.tables.push((table, removed));
        if purged.yielded {
            break;
        }
    }
    Ok(purged)
}

/// The background purge of `serve`: after [`FIRST_AFTER`], then every [`EVERY`], until
/// `stop` says so. A failed purge is logged and tried again at the next round.
pub async fn run_background(
    store: Store,
    config: RetentionConfig,
    clock: crate::clock::Clock,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut wait = FIRST_AFTER;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        wait = EVERY;
        match purge(&store, &config, clock.now_ms(), false).await {
            Ok(p) if p.total() > 0 => {
                let counts: Vec<String> = p
                    .tables
                    .iter()
                    .map(|(t, n)| format!("{} {n}", t.name()))
                    .collect();
                tracing::info!(removed = %counts.join(", "), "retention: purged records past their time");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "retention: purge failed; trying again at the next round")
            }
        }
    }
}
