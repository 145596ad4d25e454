-- Life-cycle operations sent to TSH's inbound API (updateCardState, updateCard), written in the
-- same transaction as their cause, sent by the sender of any instance, in order per card.
-- Never a PAN: an updateCard carries only fpan_details, sealed to Thales's certificate (which
-- the issuer cannot open), and that is cleared once the operation is finished.
CREATE TABLE lifecycle_operations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    card_ref        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    action          TEXT,
    virtual_card_id TEXT,
    reason          TEXT,
    operator        TEXT,
    verification    TEXT,
    cause           TEXT NOT NULL,
    correlation_id  TEXT NOT NULL UNIQUE,
    fpan_details    TEXT,
    new_product_id  TEXT,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    notices         INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    finished_at     INTEGER
);
CREATE INDEX lifecycle_operations_due ON lifecycle_operations (state, next_attempt_at);
CREATE INDEX lifecycle_operations_card ON lifecycle_operations (card_ref, id);

-- Every attempt of an operation: when, the HTTP status (NULL: no answer), TSH's responseCode.
CREATE TABLE lifecycle_attempts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    operation_id  INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    http_status   INTEGER,
    response_code INTEGER,
    outcome       TEXT NOT NULL,
    duration_ms   INTEGER NOT NULL
);
CREATE INDEX lifecycle_attempts_operation ON lifecycle_attempts (operation_id, id);

-- Tokens that a card's status change (lost, stolen, blocked) suspended: the ones its return to
-- active resumes (never one the wallet, the cardholder or an operator suspended).
CREATE TABLE status_suspended_tokens (
    card_ref        TEXT NOT NULL,
    virtual_card_id TEXT NOT NULL,
    operation_id    INTEGER NOT NULL,
    PRIMARY KEY (card_ref, virtual_card_id)
);


-- A card retired by a replacement (a card-file row with replaces_pan): the new card took over
-- its reference; the retired row keeps only its keyed PAN index, BIN and last 4 (so that the old
-- PAN is answered as a closed card) and names the reference it gave up.
ALTER TABLE cards ADD COLUMN replaced_by TEXT;
