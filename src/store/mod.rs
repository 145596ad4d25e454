//! The one repository of the gateway. Two backends behind it: SQLite (embedded, the default, one
//! instance) and PostgreSQL (several instances on one database). The SQL text is shared where
//! both dialects agree (`$n` parameters, `ON CONFLICT`, `RETURNING`); each backend has its own
//! migrations. All times are milliseconds since the Unix epoch.

mod rows;

pub use rows::*;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};
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
}

#[derive(Clone)]
enum Backend {
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
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

/// Inserts the enrolment of a call, or updates its state, card and wallet.
macro_rules! upsert_enrolment {
    ($tx:ident, $call:expr) => {
        sqlx::query(
            "INSERT INTO enrolments (correlation_id, card_ref, wallet_provider_id, state, created_at, updated_at) \
             VALUES ($1, $2, $3, COALESCE($4, 'started'), $5, $5) \
             ON CONFLICT (correlation_id) DO UPDATE SET \
             card_ref = COALESCE(enrolments.card_ref, $2), \
             wallet_provider_id = COALESCE(enrolments.wallet_provider_id, $3), \
             state = COALESCE($4, enrolments.state), updated_at = $5",
        )
        .bind($call.correlation_id)
        .bind($call.card_ref)
        .bind($call.wallet)
        .bind($call.state)
        .bind($call.at)
        .execute(&mut *$tx)
        .await?
    };
}

macro_rules! insert_call {
    ($tx:ident, $call:expr) => {
        sqlx::query(
            "INSERT INTO calls (correlation_id, operation, card_ref, response_code, outcome, detail, duration_ms, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind($call.correlation_id)
        .bind($call.operation)
        .bind($call.card_ref)
        .bind($call.response_code)
        .bind($call.outcome)
        .bind($call.detail)
        .bind($call.duration_ms)
        .bind($call.at)
        .execute(&mut *$tx)
        .await?
    };
}

/// Outcome of a card upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Added,
    Updated,
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
                .connect_with(opts.clone())
                .await?;
            SQLITE_MIGRATIONS.run(&writer).await?;
            let reader = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(timeout)
                .connect_with(opts.read_only(true))
                .await?;
            Store {
                backend: Backend::Sqlite { writer, reader },
            }
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let ms = timeout.as_millis().max(100);
            let opts = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::Url(e.to_string()))?
                .options([
                    ("statement_timeout", ms.to_string()),
                    ("lock_timeout", ms.to_string()),
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
        Ok(store)
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// A round trip to the database (health check).
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, read, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Backend::Postgres(pg) => pg.close().await,
        }
    }

    // ---- cards ---------------------------------------------------------------------------

    /// Inserts a card, or updates the card with the same PAN index (keeping its reference).
    /// A destination whose fingerprint changed gets `*_changed_at` = `now` unless the card file
    /// gave a time.
    pub async fn upsert_card(
        &self,
        c: &NewCard,
        now: i64,
    ) -> Result<(Upserted, String), StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let existing: Option<CardRow> = sqlx::query_as(CARD_SELECT_BY_INDEX)
                .bind(&c.pan_index)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(requested) = &c.card_ref {
                let owner: Option<(String,)> =
                    sqlx::query_as("SELECT pan_index FROM cards WHERE card_ref = $1")
                        .bind(requested)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some((owner_index,)) = owner {
                    if owner_index != c.pan_index {
                        return Err(StoreError::Conflict(
                            "issuer_card_ref_id already belongs to another card".into(),
                        ));
                    }
                }
            }
            let result = match existing {
                Some(old) => {
                    let phone_changed_at = c.phone_changed_at.or(if old.phone_fp == c.phone_fp {
                        old.phone_changed_at
                    } else {
                        Some(now)
                    });
                    let email_changed_at = c.email_changed_at.or(if old.email_fp == c.email_fp {
                        old.email_changed_at
                    } else {
                        Some(now)
                    });
                    sqlx::query(
                        "UPDATE cards SET exp = $2, status = $3, product_id = $4, phone_sealed = $5, phone_masked = $6, \
                         phone_fp = $7, phone_changed_at = $8, email_sealed = $9, email_masked = $10, email_fp = $11, \
                         email_changed_at = $12, language = $13, wallets = $14, updated_at = $15 WHERE card_ref = $1",
                    )
                    .bind(&old.card_ref)
                    .bind(&c.exp)
                    .bind(&c.status)
                    .bind(&c.product_id)
                    .bind(&c.phone_sealed)
                    .bind(&c.phone_masked)
                    .bind(&c.phone_fp)
                    .bind(phone_changed_at)
                    .bind(&c.email_sealed)
                    .bind(&c.email_masked)
                    .bind(&c.email_fp)
                    .bind(email_changed_at)
                    .bind(&c.language)
                    .bind(&c.wallets)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    (Upserted::Updated, old.card_ref)
                }
                None => {
                    let card_ref = c.card_ref.clone().unwrap_or_else(new_card_ref);
                    sqlx::query(
                        "INSERT INTO cards (card_ref, pan_index, bin, last4, exp, status, product_id, phone_sealed, \
                         phone_masked, phone_fp, phone_changed_at, email_sealed, email_masked, email_fp, email_changed_at, \
                         language, wallets, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18)",
                    )
                    .bind(&card_ref)
                    .bind(&c.pan_index)
                    .bind(&c.bin)
                    .bind(&c.last4)
                    .bind(&c.exp)
                    .bind(&c.status)
                    .bind(&c.product_id)
                    .bind(&c.phone_sealed)
                    .bind(&c.phone_masked)
                    .bind(&c.phone_fp)
                    .bind(c.phone_changed_at)
                    .bind(&c.email_sealed)
                    .bind(&c.email_masked)
                    .bind(&c.email_fp)
                    .bind(c.email_changed_at)
                    .bind(&c.language)
                    .bind(&c.wallets)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    (Upserted::Added, card_ref)
                }
            };
            tx.commit().await?;
            Ok(result)
        })
    }

    pub async fn card_by_pan_index(&self, pan_index: &str) -> Result<Option<CardRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(CARD_SELECT_BY_INDEX)
                .bind(pan_index)
                .fetch_optional(pool)
                .await?)
        })
    }

    pub async fn card_by_ref(&self, card_ref: &str) -> Result<Option<CardRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(CARD_SELECT_BY_REF)
                .bind(card_ref)
                .fetch_optional(pool)
                .await?)
        })
    }

    pub async fn count_cards(&self) -> Result<i64, StoreError> {
        with_pool!(self, read, |pool| {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM cards")
                .fetch_one(pool)
                .await?;
            Ok(row.try_get::<i64, _>("n")?)
        })
    }

    // ---- enrolments and calls ------------------------------------------------------------

    /// Records one call of an enrolment, creating the enrolment when it is new. `state`, when
    /// given, becomes the enrolment's state; `card_ref` and `wallet` fill in what is unknown.
    pub async fn record_call(&self, call: &CallRecord<'_>) -> Result<(), StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            upsert_enrolment!(tx, call);
            insert_call!(tx, call);
            tx.commit().await?;
            Ok(())
        })
    }

    /// Records a digitization decision with its methods and the call, in one transaction.
    pub async fn record_decision(
        &self,
        call: &CallRecord<'_>,
        d: &DecisionRecord<'_>,
    ) -> Result<(), StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            upsert_enrolment!(tx, call);
            sqlx::query("UPDATE enrolments SET decision = $2, decision_rule = $3, decision_signals = $4, device_language = COALESCE($5, device_language) WHERE correlation_id = $1")
                .bind(call.correlation_id)
                .bind(d.decision)
                .bind(d.rule)
                .bind(d.signals_json)
                .bind(d.device_language)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM enrolment_methods WHERE correlation_id = $1")
                .bind(call.correlation_id)
                .execute(&mut *tx)
                .await?;
            for (i, m) in d.methods.iter().enumerate() {
                sqlx::query("INSERT INTO enrolment_methods (correlation_id, method_id, channel, method_type, masked_value, position) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(call.correlation_id)
                    .bind(&m.method_id)
                    .bind(&m.channel)
                    .bind(&m.method_type)
                    .bind(&m.masked_value)
                    .bind(i as i64)
                    .execute(&mut *tx)
                    .await?;
            }
            insert_call!(tx, call);
            tx.commit().await?;
            Ok(())
        })
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

    pub async fn calls(&self, correlation_id: &str) -> Result<Vec<CallRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as("SELECT operation, card_ref, response_code, outcome, detail, duration_ms, at FROM calls WHERE correlation_id = $1 ORDER BY id")
                .bind(correlation_id)
                .fetch_all(pool)
                .await?)
        })
    }

    // ---- sends ---------------------------------------------------------------------------

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

    // ---- tokens --------------------------------------------------------------------------

    /// Applies a token notice idempotently: the notice's fingerprint is recorded once; a second
    /// identical notice changes nothing. The enrolment of the same correlation id is completed by
    /// an ACTIVATE and failed by a DELETE (unless already complete).
    pub async fn apply_notice(
        &self,
        call: &CallRecord<'_>,
        n: &NoticeRecord<'_>,
    ) -> Result<NoticeOutcome, StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let seen: Option<(i64,)> =
                sqlx::query_as("SELECT id FROM token_events WHERE notice_fp = $1")
                    .bind(n.notice_fp)
                    .fetch_optional(&mut *tx)
                    .await?;
            if seen.is_some() {
                let dup = CallRecord {
                    outcome: "duplicate",
                    state: None,
                    ..*call
                };
                upsert_enrolment!(tx, &dup);
                insert_call!(tx, &dup);
                tx.commit().await?;
                return Ok(NoticeOutcome::Duplicate);
            }
            let current: Option<(String,)> =
                sqlx::query_as("SELECT state FROM tokens WHERE virtual_card_id = $1")
                    .bind(n.virtual_card_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let before = current.map(|(s,)| s);
            let before_state = before.as_deref().and_then(crate::domain::TokenState::parse);
            let after = crate::domain::TokenState::after(before_state, n.action)
                .as_str()
                .to_owned();
            let wipe = matches!(n.action, crate::domain::Action::Erase);
            sqlx::query(
                "INSERT INTO tokens (virtual_card_id, card_ref, wallet_provider_id, token_storage_id, is_primary, state, \
                 dpan_last4, dpan_exp, correlation_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
                 ON CONFLICT (virtual_card_id) DO UPDATE SET state = $6, \
                 token_storage_id = COALESCE($4, tokens.token_storage_id), \
                 is_primary = COALESCE($5, tokens.is_primary), \
                 dpan_last4 = CASE WHEN $11 THEN NULL ELSE COALESCE($7, tokens.dpan_last4) END, \
                 dpan_exp = CASE WHEN $11 THEN NULL ELSE COALESCE($8, tokens.dpan_exp) END, \
                 updated_at = $10",
            )
            .bind(n.virtual_card_id)
            .bind(n.card_ref)
            .bind(n.wallet_provider_id)
            .bind(n.token_storage_id)
            .bind(n.is_primary)
            .bind(&after)
            .bind(if wipe { None } else { n.dpan_last4 })
            .bind(if wipe { None } else { n.dpan_exp })
            .bind(call.correlation_id)
            .bind(call.at)
            .bind(wipe)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO token_events (virtual_card_id, correlation_id, action, source, error_code, state_before, state_after, notice_fp, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(n.virtual_card_id)
            .bind(call.correlation_id)
            .bind(n.action.as_str())
            .bind(n.source)
            .bind(n.error_code)
            .bind(&before)
            .bind(&after)
            .bind(n.notice_fp)
            .bind(call.at)
            .execute(&mut *tx)
            .await?;
            upsert_enrolment!(tx, call);
            match n.action {
                crate::domain::Action::Activate if after == "active" => {
                    sqlx::query("UPDATE enrolments SET state = 'complete', updated_at = $2 WHERE correlation_id = $1 AND state <> 'failed'")
                        .bind(call.correlation_id)
                        .bind(call.at)
                        .execute(&mut *tx)
                        .await?;
                }
                crate::domain::Action::Delete
                | crate::domain::Action::DeleteFromApp
                | crate::domain::Action::Erase => {
                    sqlx::query("UPDATE enrolments SET state = 'failed', updated_at = $2 WHERE correlation_id = $1 AND state <> 'complete'")
                        .bind(call.correlation_id)
                        .bind(call.at)
                        .execute(&mut *tx)
                        .await?;
                }
                _ => {}
            }
            insert_call!(tx, call);
            tx.commit().await?;
            Ok(NoticeOutcome::Recorded { before, after })
        })
    }

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
}

const CARD_SELECT_BY_INDEX: &str = "SELECT * FROM cards WHERE pan_index = $1";
const CARD_SELECT_BY_REF: &str = "SELECT * FROM cards WHERE card_ref = $1";

/// A new opaque card reference: 128 random bits, hex. It says nothing about the PAN.
pub fn new_card_ref() -> String {
    hex::encode(crate::secrets::random_bytes::<16>())
}
