-- Fallback providers: which provider accepted a send (NULL: none did), and every attempt in
-- order (`twilio:refused vonage:accepted`; `skipped`: its circuit breaker was open).
ALTER TABLE sends ADD COLUMN accepted_by TEXT;
ALTER TABLE sends ADD COLUMN attempts TEXT;

-- Messages to the cardholder that are not OTPs (the activation notice after an ACTIVATE):
-- written in the transaction of the notice that causes them, once per token and target
-- (UNIQUE), sent by the notice sender of any instance with retries. Never a destination in
-- clear: it is opened from the card when the message goes, and only its masked form is kept.
CREATE TABLE cardholder_notices (
    id                 BIGSERIAL PRIMARY KEY,
    kind               TEXT NOT NULL,
    card_ref           TEXT NOT NULL,
    virtual_card_id    TEXT NOT NULL,
    wallet_provider_id TEXT NOT NULL,
    correlation_id     TEXT NOT NULL,
    target             TEXT NOT NULL,
    state              TEXT NOT NULL,
    attempts           BIGINT NOT NULL DEFAULT 0,
    next_attempt_at    BIGINT NOT NULL,
    last_error         TEXT,
    channel            TEXT,
    provider           TEXT,
    destination_masked TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    finished_at        BIGINT,
    UNIQUE (kind, virtual_card_id, target)
);
CREATE INDEX cardholder_notices_due ON cardholder_notices (state, next_attempt_at);
CREATE INDEX cardholder_notices_card ON cardholder_notices (card_ref, id);

-- The destination a card had before its last change, sealed as it was: the activation notice
-- also goes there when the change is recent (after an account takeover the new destination may
-- be the fraudster's). Kept by the database itself whenever a card's phone or e-mail changes,
-- whichever statement changes it.
ALTER TABLE cards ADD COLUMN phone_previous_sealed TEXT;
ALTER TABLE cards ADD COLUMN email_previous_sealed TEXT;
CREATE FUNCTION cards_keep_previous_destination() RETURNS trigger AS $$
BEGIN
    IF OLD.phone_fp IS NOT NULL AND NEW.phone_fp IS DISTINCT FROM OLD.phone_fp THEN
        NEW.phone_previous_sealed := OLD.phone_sealed;
    END IF;
    IF OLD.email_fp IS NOT NULL AND NEW.email_fp IS DISTINCT FROM OLD.email_fp THEN
        NEW.email_previous_sealed := OLD.email_sealed;
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER cards_previous_destination BEFORE UPDATE ON cards
    FOR EACH ROW EXECUTE FUNCTION cards_keep_previous_destination();

-- The device a digitization named (deviceInformation manufacturer and model, cleaned), for the
-- activation notice ("added to Google Pay on Google Pixel 8").
ALTER TABLE enrolments ADD COLUMN device_name TEXT;
