-- Cards: never the PAN, only its keyed index, BIN and last 4; contact details sealed (AES-GCM)
-- with a masked copy for display and a keyed fingerprint for rate limits.
CREATE TABLE cards (
    card_ref          TEXT PRIMARY KEY,
    pan_index         TEXT NOT NULL UNIQUE,
    bin               TEXT NOT NULL,
    last4             TEXT NOT NULL,
    exp               TEXT NOT NULL,
    status            TEXT NOT NULL,
    product_id        TEXT NOT NULL,
    phone_sealed      TEXT,
    phone_masked      TEXT,
    phone_fp          TEXT,
    phone_changed_at  BIGINT,
    email_sealed      TEXT,
    email_masked      TEXT,
    email_fp          TEXT,
    email_changed_at  BIGINT,
    language          TEXT,
    wallets           TEXT NOT NULL DEFAULT '',
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);

CREATE TABLE enrolments (
    correlation_id     TEXT PRIMARY KEY,
    card_ref           TEXT,
    wallet_provider_id TEXT,
    state              TEXT NOT NULL,
    decision           TEXT,
    decision_rule      TEXT,
    decision_signals   TEXT,
    device_language    TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX enrolments_card ON enrolments (card_ref);

CREATE TABLE enrolment_methods (
    correlation_id TEXT NOT NULL,
    method_id      TEXT NOT NULL,
    channel        TEXT NOT NULL,
    method_type    TEXT NOT NULL,
    masked_value   TEXT NOT NULL,
    position       BIGINT NOT NULL,
    PRIMARY KEY (correlation_id, method_id)
);

CREATE TABLE calls (
    id             BIGSERIAL PRIMARY KEY,
    correlation_id TEXT NOT NULL,
    operation      TEXT NOT NULL,
    card_ref       TEXT,
    response_code  BIGINT NOT NULL,
    outcome        TEXT NOT NULL,
    detail         TEXT,
    duration_ms    BIGINT NOT NULL,
    at             BIGINT NOT NULL
);
CREATE INDEX calls_correlation ON calls (correlation_id, id);

CREATE TABLE sends (
    id                  BIGSERIAL PRIMARY KEY,
    correlation_id      TEXT NOT NULL,
    card_ref            TEXT NOT NULL,
    method_id           TEXT NOT NULL,
    channel             TEXT NOT NULL,
    provider            TEXT NOT NULL,
    destination_masked  TEXT NOT NULL,
    destination_fp      TEXT NOT NULL,
    retry_fp            TEXT NOT NULL,
    outcome             TEXT NOT NULL,
    response_code       BIGINT NOT NULL,
    provider_message_id TEXT,
    provider_code       TEXT,
    latency_ms          BIGINT NOT NULL,
    at                  BIGINT NOT NULL
);
CREATE INDEX sends_correlation ON sends (correlation_id, id);
CREATE INDEX sends_retry ON sends (retry_fp);
CREATE INDEX sends_card_at ON sends (card_ref, at);
CREATE INDEX sends_destination_at ON sends (destination_fp, at);

CREATE TABLE tokens (
    virtual_card_id    TEXT PRIMARY KEY,
    card_ref           TEXT NOT NULL,
    wallet_provider_id TEXT NOT NULL,
    token_storage_id   TEXT,
    is_primary         BOOLEAN,
    state              TEXT NOT NULL,
    dpan_last4         TEXT,
    dpan_exp           TEXT,
    correlation_id     TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX tokens_card ON tokens (card_ref);

CREATE TABLE token_events (
    id              BIGSERIAL PRIMARY KEY,
    virtual_card_id TEXT NOT NULL,
    correlation_id  TEXT NOT NULL,
    action          TEXT NOT NULL,
    source          TEXT,
    error_code      BIGINT,
    state_before    TEXT,
    state_after     TEXT NOT NULL,
    notice_fp       TEXT NOT NULL UNIQUE,
    at              BIGINT NOT NULL
);
CREATE INDEX token_events_token ON token_events (virtual_card_id, id);
