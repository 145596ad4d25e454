//! The console's operators and their sessions. Never a password, a TOTP secret or a session token
//! in clear: Argon2id hashes (PHC strings), the TOTP secret sealed with the data keys, and the
//! SHA-256 digest of each session token.

use super::operations::BeginWrite;
use super::{Backend, Store, StoreError};
use crate::domain::Millis;

/// One operator, as stored. No `Debug`: it holds the password hash and the sealed TOTP secret.
#[derive(Clone, sqlx::FromRow)]
pub struct OperatorRow {
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub must_change: bool,
    pub totp_sealed: Option<String>,
    pub last_totp_step: Option<i64>,
    pub disabled: bool,
    pub failed_logins: i64,
    pub locked_until: Option<Millis>,
    pub last_login_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A console session, found by the digest of its token.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub operator: String,
    pub source: String,
    pub created_at: Millis,
    pub last_seen_at: Millis,
}

/// A new operator.
pub struct NewOperator<'a> {
    pub name: &'a str,
    pub role: &'a str,
    pub password_hash: &'a str,
    pub must_change: bool,
    pub totp_sealed: Option<&'a str>,
}

const OPERATOR_SELECT: &str = "SELECT name, role, password_hash, must_change, totp_sealed, \
    last_totp_step, disabled, failed_logins, locked_until, last_login_at, created_at, updated_at \
    FROM operators";

impl Store {
    /// Adds an operator; false when the name is taken.
    pub async fn add_operator(
        &self,
        op: &NewOperator<'_>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        with_pool!(self, write, |pool| {
            let r = sqlx::query(
                "INSERT INTO operators (name, role, password_hash, must_change, totp_sealed, \
                 disabled, failed_logins, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, FALSE, 0, $6, $6) ON CONFLICT (name) DO NOTHING",
            )
            .bind(op.name)
            .bind(op.role)
            .bind(op.password_hash)
            .bind(op.must_change)
            .bind(op.totp_sealed)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn operator(&self, name: &str) -> Result<Option<OperatorRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(
                sqlx::query_as(&format!("{OPERATOR_SELECT} WHERE name = $1"))
                    .bind(name)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    /// Every operator, by name.
    pub async fn operators(&self) -> Result<Vec<OperatorRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(&format!("{OPERATOR_SELECT} ORDER BY name"))
                .fetch_all(pool)
                .await?)
        })
    }

    /// Disables (ending its sessions) or enables an operator; false when there is none.
    pub async fn set_operator_disabled(
        &self,
        name: &str,
        disabled: bool,
        now: Millis,
    ) -> Result<bool, StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin_write().await?;
            let r = sqlx::query(
                "UPDATE operators SET disabled = $2, failed_logins = 0, locked_until = NULL, \
                 updated_at = $3 WHERE name = $1",
            )
            .bind(name)
            .bind(disabled)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if disabled {
                sqlx::query("DELETE FROM console_sessions WHERE operator = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Changes an operator's role (ending its sessions: the next login has the new role).
    pub async fn set_operator_role(
        &self,
        name: &str,
        role: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin_write().await?;
            let r = sqlx::query("UPDATE operators SET role = $2, updated_at = $3 WHERE name = $1")
                .bind(name)
                .bind(role)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM console_sessions WHERE operator = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Sets a new password hash (and, when given, a new sealed TOTP secret); clears the lock.
    /// `end_sessions`: a reset by an administrator ends the operator's sessions.
    pub async fn set_operator_password(
        &self,
        name: &str,
        password_hash: &str,
        must_change: bool,
        end_sessions: bool,
        now: Millis,
    ) -> Result<bool, StoreError> {
        with_pool!(self, write, |pool| {
            let mut tx = pool.begin_write().await?;
            let r = sqlx::query(
                "UPDATE operators SET password_hash = $2, must_change = $3, failed_logins = 0, \
                 locked_until = NULL, updated_at = $4 WHERE name = $1",
            )
            .bind(name)
            .bind(password_hash)
            .bind(must_change)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if end_sessions {
                sqlx::query("DELETE FROM console_sessions WHERE operator = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// A new sealed TOTP secret (a lost phone); its last used step is forgotten.
    pub async fn set_operator_totp(
        &self,
        name: &str,
        totp_sealed: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        with_pool!(self, write, |pool| {
            let r = sqlx::query(
                "UPDATE operators SET totp_sealed = $2, last_totp_step = NULL, updated_at = $3 \
                 WHERE name = $1",
            )
            .bind(name)
            .bind(totp_sealed)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Counts a failed login; at `max` failures in a row the account is locked until
    /// `lock_until` (and the count starts again). Returns whether this failure locked it.
    pub async fn record_login_failure(
        &self,
        name: &str,
        max: i64,
        lock_until: Millis,
        now: Millis,
    ) -> Result<bool, StoreError> {
        with_pool!(self, write, |pool| {
            let locked: Option<(bool,)> = sqlx::query_as(
                "UPDATE operators SET \
                 locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END, \
                 failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END, \
                 updated_at = $4 WHERE name = $1 RETURNING COALESCE(locked_until = $3, FALSE)",
            )
            .bind(name)
            .bind(max)
            .bind(lock_until)
            .bind(now)
            .fetch_optional(pool)
            .await?;
            Ok(locked.is_some_and(|(l,)| l))
        })
    }

    /// A successful login that used the TOTP step `step` (when a code was asked): false, and
    /// nothing changed, when that step (or a later one) was already used (a replayed code).
    pub async fn record_login_success(
        &self,
        name: &str,
        step: Option<i64>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        with_pool!(self, write, |pool| {
            let r = sqlx::query(
                "UPDATE operators SET failed_logins = 0, locked_until = NULL, last_login_at = $3, \
                 last_totp_step = COALESCE($2, last_totp_step), updated_at = $3 \
                 WHERE name = $1 AND ($2 IS NULL OR last_totp_step IS NULL OR last_totp_step < $2)",
            )
            .bind(name)
            .bind(step)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn create_session(
        &self,
        token_hash: &str,
        operator: &str,
        source: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO console_sessions (token_hash, operator, source, created_at, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(token_hash)
            .bind(operator)
            .bind(source)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn session(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT operator, source, created_at, last_seen_at FROM console_sessions \
                 WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?)
        })
    }

    pub async fn touch_session(&self, token_hash: &str, now: Millis) -> Result<(), StoreError> {
        with_pool!(self, write, |pool| {
            sqlx::query("UPDATE console_sessions SET last_seen_at = $2 WHERE token_hash = $1")
                .bind(token_hash)
                .bind(now)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Removes the sessions made before `before` (past the absolute timeout).
    pub async fn end_sessions_before(&self, before: Millis) -> Result<(), StoreError> {
        with_pool!(self, write, |pool| {
            sqlx::query("DELETE FROM console_sessions WHERE created_at < $1")
                .bind(before)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    pub async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        with_pool!(self, write, |pool| {
            sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}

/// An action waiting for a second supervisor.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApprovalRow {
    pub id: i64,
    pub card_ref: String,
    pub action: String,
    pub reason: String,
    pub requested_by: String,
    pub requested_at: Millis,
}

impl Store {
    /// Records a request for a second supervisor's approval; returns its id.
    pub async fn request_approval(
        &self,
        card_ref: &str,
        action: &str,
        reason: &str,
        by: &str,
        now: Millis,
    ) -> Result<i64, StoreError> {
        with_pool!(self, write, |pool| {
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO console_approvals (card_ref, action, reason, requested_by, requested_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(card_ref)
            .bind(action)
            .bind(reason)
            .bind(by)
            .bind(now)
            .fetch_one(pool)
            .await?;
            Ok(id)
        })
    }

    /// The card's requests not approved yet, made since `since`.
    pub async fn pending_approvals(
        &self,
        card_ref: &str,
        since: Millis,
    ) -> Result<Vec<ApprovalRow>, StoreError> {
        with_pool!(self, read, |pool| {
            Ok(sqlx::query_as(
                "SELECT id, card_ref, action, reason, requested_by, requested_at FROM console_approvals \
                 WHERE card_ref = $1 AND approved_by IS NULL AND requested_at >= $2 ORDER BY id",
            )
            .bind(card_ref)
            .bind(since)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Approves a request made since `since` by someone other than `by`, once: the request, or
    /// `None` when there is no such request (unknown, already approved, too old, or `by`'s own).
    pub async fn approve(
        &self,
        id: i64,
        by: &str,
        since: Millis,
        now: Millis,
    ) -> Result<Option<ApprovalRow>, StoreError> {
        with_pool!(self, write, |pool| {
            Ok(sqlx::query_as(
                "UPDATE console_approvals SET approved_by = $2, approved_at = $4 \
                 WHERE id = $1 AND approved_by IS NULL AND requested_by <> $2 AND requested_at >= $3 \
                 RETURNING id, card_ref, action, reason, requested_by, requested_at",
            )
            .bind(id)
            .bind(by)
            .bind(since)
            .bind(now)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// The operation an approved request made.
    pub async fn set_approval_operation(&self, id: i64, operation: i64) -> Result<(), StoreError> {
        with_pool!(self, write, |pool| {
            sqlx::query("UPDATE console_approvals SET operation_id = $2 WHERE id = $1")
                .bind(id)
                .bind(operation)
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}
