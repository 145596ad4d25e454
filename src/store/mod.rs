//! The one repository of the gateway. Two backends behind it: SQLite (embedded, the default, one
//! instance) and PostgreSQL (several instances on one database). The SQL text is shared where
//! both dialects agree (`$n` parameters, `ON CONFLICT`, `RETURNING`); each backend has its own
//! migrations. All times are milliseconds since the Unix epoch.

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A database failure. The message is for logs only: callers answer 500 without it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database.url: {0}")]
    Url(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database holds an unexpected value: {0}")]
    Unexpected(String),
    /// A batch of writes (group commit) could not commit: none of its writes was made.
    #[error("database commit: {0}")]
    Commit(String),
    #[error("database: the store is closed")]
    Closed,
}

#[derive(Clone)]
enum Backend {
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
        /// The calls' writes, batched (group commit) on `writer`.
        batcher: group_commit::Batcher,
    },
    Postgres(PgPool),
}

/// The repository. Cheap to clone (pools are shared).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

/// Runs `$body` with `$pool` bound to the backend's writer (or reader) pool. The body is written
/// once and compiled for each backend.
macro_rules! with_pool {
    ($store:expr, write, |$pool:ident| $body:expr) => {
        match &$store.backend {
            Backend::Sqlite { writer, .. } => {
                let $pool = writer;
                $body
            }
            Backend::Postgres(pg) => {
                let $pool = pg;
                $body
            }
        }
    };
    ($store:expr, read, |$pool:ident| $body:expr) => {
        match &$store.backend {
            Backend::Sqlite { reader, .. } => {
                let $pool = reader;
                $body
            }
            Backend::Postgres(pg) => {
                let $pool = pg;
                $body
            }
        }
    };
}

/// Serialises the write transactions of one key (a token, a card) across every gateway
/// instance, up to the end of the transaction. Take the locks first in the transaction, before
/// any read the writes depend on; when a transaction takes several, take them in one fixed order.
///
/// PostgreSQL: a transaction-scoped advisory lock on the 64-bit hash of the key, released at
/// commit or rollback (also when the connection drops); a wait longer than `lock_timeout`
/// (`database.timeout_ms`) fails the call. SQLite: nothing to do, its single writer connection
/// already runs write transactions one at a time.
pub(crate) trait LockKey {
    fn lock_key(
        &mut self,
        key: &str,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;

    /// Like `lock_key`, without waiting: false when another transaction holds the key.
    fn try_lock_key(
        &mut self,
        key: &str,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send;
}

impl LockKey for sqlx::Transaction<'_, sqlx::Sqlite> {
    async fn lock_key(&mut self, _key: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn try_lock_key(&mut self, _key: &str) -> Result<bool, StoreError> {
        Ok(true)
    }
}

impl LockKey for sqlx::Transaction<'_, sqlx::Postgres> {
    async fn lock_key(&mut self, key: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(key)
            .execute(&mut **self)
            .await?;
        Ok(())
    }

    async fn try_lock_key(&mut self, key: &str) -> Result<bool, StoreError> {
        let (locked,): (bool,) =
            sqlx::query_as("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(key)
                .fetch_one(&mut **self)
                .await?;
        Ok(locked)
    }
}

/// Inserts the enrolment of a call, or updates its state, card and wallet
/// ([`bind_upsert_enrolment!`] binds its parameters).
const UPSERT_ENROLMENT: &str = "INSERT INTO enrolments (correlation_id, card_ref, wallet_provider_id, state, created_at, updated_at) \
     VALUES ($1, $2, $3, COALESCE($4, 'started'), $5, $5) \
     ON CONFLICT (correlation_id) DO UPDATE SET \
     card_ref = COALESCE(enrolments.card_ref, $2), \
     wallet_provider_id = COALESCE(enrolments.wallet_provider_id, $3), \
     state = COALESCE($4, enrolments.state), updated_at = $5";

/// Binds the parameters of [`UPSERT_ENROLMENT`] for call `$call` to query `$q`.
macro_rules! bind_upsert_enrolment {
    ($q:expr, $call:expr) => {
        $q.bind($call.correlation_id)
            .bind($call.card_ref)
            .bind($call.wallet)
            .bind($call.state)
            .bind($call.at)
    };
}

macro_rules! upsert_enrolment {
    ($tx:ident, $call:expr) => {
        bind_upsert_enrolment!(sqlx::query($crate::store::UPSERT_ENROLMENT), $call)
            .execute(&mut *$tx)
            .await?
    };
}

/// Records one call ([`bind_insert_call!`] binds its parameters).
const INSERT_CALL: &str = "INSERT INTO calls (correlation_id, operation, card_ref, response_code, outcome, detail, duration_ms, at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Binds the parameters of [`INSERT_CALL`] for call `$call` to query `$q`.
macro_rules! bind_insert_call {
    ($q:expr, $call:expr) => {
        $q.bind($call.correlation_id)
            .bind($call.operation)
            .bind($call.card_ref)
            .bind($call.response_code)
            .bind($call.outcome)
            .bind($call.detail)
            .bind($call.duration_ms)
            .bind($call.at)
    };
}

macro_rules! insert_call {
    ($tx:ident, $call:expr) => {
        bind_insert_call!(sqlx::query($crate::store::INSERT_CALL), $call)
            .execute(&mut *$tx)
            .await?
    };
}

impl Store {
    /// Connects, creating the SQLite file and folder when missing, and applies migrations.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        timeout: Duration,
    ) -> Result<Store, StoreError> {
        let store = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Url(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a call answered 200 survives a power cut, not only a process crash.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(timeout.max(Duration::from_secs(1)))
                .foreign_keys(true)
                .disable_statement_logging();
            if let Some(parent) = opts.get_filename().parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::Url(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
            }
            // One writer connection: SQLite serialises writers anyway, and one connection avoids
            // lock-upgrade failures between concurrent transactions.
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(timeout)
                // A connection to a local file does not go stale: no ping before each use (it
                // cost a round trip to the connection's thread on every call).
                .test_before_acquire(false)
                .connect_with(opts.clone())
                .await?;
            SQLITE_MIGRATIONS.run(&writer).await?;
            let reader = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(timeout)
                // A connection to a local file does not go stale: no ping before each use (it
                // cost a round trip to the connection's thread on every call).
                .test_before_acquire(false)
                .connect_with(opts.read_only(true))
                .await?;
            let batcher = group_commit::Batcher::start(writer.clone())
                .map_err(|e| StoreError::Unexpected(format!("cannot start the writer: {e}")))?;
            Store {
                backend: Backend::Sqlite {
                    writer,
                    reader,
                    batcher,
                },
            }
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let ms = timeout.as_millis().max(100);
            let opts = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::Url(e.to_string()))?
                .options([
                    ("statement_timeout", ms.to_string()),
                    ("lock_timeout", ms.to_string()),
                    // A transaction whose instance went silent (partition, frozen VM) is ended
                    // by the server with its locks, instead of blocking the others for hours.
                    ("idle_in_transaction_session_timeout", ms.to_string()),
                ])
                .disable_statement_logging();
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(timeout)
                .connect_with(opts)
                .await?;
            POSTGRES_MIGRATIONS.run(&pool).await?;
            Store {
                backend: Backend::Postgres(pool),
            }
        } else {
            return Err(StoreError::Url(
                "must start with sqlite:// or postgres://".into(),
            ));
        };
        store.note_webhook_endpoints().await?;
        Ok(store)
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// A round trip to the database (health check).
    /// Whether a commit reaches the disk before it returns, as the writing connection sees it:
    /// SQLite `synchronous` FULL in WAL mode; PostgreSQL `fsync` and `synchronous_commit` on
    /// (server settings the gateway cannot set for the server). `Err` names what is not so.
    /// A SIGKILL test cannot tell (the page cache survives a killed process), a power cut can.
    pub async fn commits_are_durable(&self) -> Result<Result<(), String>, StoreError> {
        match &self.backend {
            Backend::Sqlite { writer, .. } => {
                let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                    .fetch_one(writer)
                    .await?;
                let (journal,): (String,) = sqlx::query_as("PRAGMA journal_mode")
                    .fetch_one(writer)
                    .await?;
                Ok(if sync >= 2 && journal.eq_ignore_ascii_case("wal") {
                    Ok(())
                } else {
                    Err(format!(
                        "SQLite synchronous = {sync}, journal_mode = {journal} (FULL and WAL expected)"
                    ))
                })
            }
            Backend::Postgres(pg) => {
                let (fsync,): (String,) = sqlx::query_as("SHOW fsync").fetch_one(pg).await?;
                let (commit,): (String,) = sqlx::query_as("SHOW synchronous_commit")
                    .fetch_one(pg)
                    .await?;
                Ok(
                    if fsync == "on" && !matches!(commit.as_str(), "off" | "local") {
                        Ok(())
                    } else {
                        Err(format!(
                            "PostgreSQL fsync = {fsync}, synchronous_commit = {commit}: a commit may be lost in a power cut"
                        ))
                    },
                )
            }
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, read, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { writer, reader, .. } => {
                reader.close().await;
                writer.close().await;
            }
            Backend::Postgres(pg) => pg.close().await,
        }
    }
}

// The write statements of each operation are macros of their table's file (used on a
// transaction or a savepoint, by `Store::record` and by the group commit): declared first.
#[macro_use]
mod events;
#[macro_use]
mod cardholder_notices;
#[macro_use]
mod operations;
#[macro_use]
mod sends;
#[macro_use]
mod tokens;
#[macro_use]
mod enrolments;
mod activations;
mod admin;
mod audit;
mod cards;
mod columns;
mod console;
mod group_commit;
mod operators;
mod retention;

pub use activations::{Activated, ActivationRow, NewActivation, OfferedEnrolmentRow};
pub use admin::{
    CardUpdate, ContactUpdate, EnrolmentSummaryRow, NoticeRow, PoolStat, StuckEnrolmentRow,
};
pub use audit::{AUDIT_GENESIS, AuditEntry, AuditRow, verify_chain};
pub use cardholder_notices::{CardholderNoticeRow, NoticeAttempt, TOKEN_ACTIVATED};
pub use cards::new_card_ref;
pub use cards::{CardRow, Keep, NewCard, UpdateCardSeal, Upserted};
pub use console::{EnrolmentFilter, EnrolmentListRow, GroupCount, Overview};
pub use enrolments::{
    CallRecord, CallRow, DecisionRecord, EnrolmentRow, MethodRecord, MethodRow, Write, Written,
};
pub use events::{ClaimedDelivery, DeliveryRow, DeliveryVerdict, EndpointStats, EventRow};
pub use operations::{
    Attempt, AttemptRow, AttemptVerdict, NewOperation, OperationRow, OperationStats,
    new_correlation_id,
};
pub use operators::{ApprovalRow, NewOperator, OperatorRow, SessionRow};
pub use retention::PurgeTable;
pub use sends::{Claim, LimitScope, SendClaim, SendFinish, SendLimit, SendRow};
pub use tokens::{NoticeOutcome, NoticeRecord, TokenEventRow, TokenRow};
