-- The operator console: operators (people who log in), their sessions, and the audit log of
-- every login and every action (console, admin API, CLI), each entry chained to the previous by
-- a keyed hash. No password, TOTP secret or session token in clear: Argon2id hashes, a sealed
-- TOTP secret, SHA-256 digests of the session tokens.
CREATE TABLE operators (
    name              TEXT PRIMARY KEY,
    role              TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    must_change       BOOLEAN NOT NULL,
    totp_sealed       TEXT,
    last_totp_step    INTEGER,
    disabled          BOOLEAN NOT NULL DEFAULT FALSE,
    failed_logins     INTEGER NOT NULL DEFAULT 0,
    locked_until      INTEGER,
    last_login_at     INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE TABLE console_sessions (
    token_hash    TEXT PRIMARY KEY,
    operator      TEXT NOT NULL REFERENCES operators (name),
    source        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL
);
CREATE INDEX console_sessions_operator ON console_sessions (operator);

CREATE TABLE audit_log (
    seq             INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    actor           TEXT NOT NULL,
    channel         TEXT NOT NULL,
    action          TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    card_ref        TEXT,
    virtual_card_id TEXT,
    operation_id    INTEGER,
    reason          TEXT,
    detail          TEXT,
    source          TEXT,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

-- Actions that need a second supervisor (deleting every token of a card): requested by one,
-- carried out when another approves, within the hour.
CREATE TABLE console_approvals (
    id            INTEGER PRIMARY KEY,
    card_ref      TEXT NOT NULL,
    action        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    requested_at  INTEGER NOT NULL,
    approved_by   TEXT,
    approved_at   INTEGER,
    operation_id  INTEGER
);
CREATE INDEX console_approvals_card ON console_approvals (card_ref);
