-- Events to the bank's own systems (webhooks): a durable log written in the same transaction as
-- what each event reports, and its delivery state per configured endpoint. Bodies name cards by
-- issuerCardRefId, last 4 and masked destinations only: never a PAN, an OTP or a full contact.

-- The configured [[webhooks]] entries (written at start): which event types each one takes
-- ('*', or the types between commas: ',otp.sent,otp.failed,').
CREATE TABLE webhook_endpoints (
    name       TEXT PRIMARY KEY,
    events     TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE webhook_events (
    id         BIGSERIAL PRIMARY KEY,
    -- The webhook-id header: the same on every attempt and every redelivery.
    message_id TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    card_ref   TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_events_created ON webhook_events (created_at);

-- One event to one endpoint. 'waiting' (not delivered yet, being delivered, or waiting for its
-- next attempt) holds the card's queue of that endpoint; 'delivered' and 'dead' release it.
CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    event_id        BIGINT NOT NULL REFERENCES webhook_events (id),
    endpoint        TEXT NOT NULL,
    card_ref        TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- Since when it waits (its creation, or its last redelivery): the give-up window counts from it.
    queued_at       BIGINT NOT NULL,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    finished_at     BIGINT,
    UNIQUE (event_id, endpoint)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint, card_ref, state, id);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at);
