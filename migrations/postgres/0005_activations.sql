-- Activations outside the OTP (options C and D): the RESUME operation each one made, which
-- method (bank_app: the bank's app; customer_service: an agent), how the cardholder was
-- verified, and the enrolment its ACTIVATE notice completes (NULL when none was found).
CREATE TABLE activations (
    operation_id       BIGINT PRIMARY KEY,
    enrolment_id       TEXT,
    card_ref           TEXT NOT NULL,
    wallet_provider_id TEXT,
    method             TEXT NOT NULL,
    verification       TEXT,
    created_at         BIGINT NOT NULL
);
CREATE INDEX activations_enrolment ON activations (enrolment_id);

-- The app API's activation requests naming a card of ours, refused or not: its per-card rate
-- limit counts them (shared by every instance).
CREATE TABLE activation_requests (
    id       BIGSERIAL PRIMARY KEY,
    card_ref TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX activation_requests_card_at ON activation_requests (card_ref, at);
