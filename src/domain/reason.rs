//! Why the gateway refuses a call: Thales's response-code catalogue, by reason. Each reason has a
//! configuration key (`response_codes.<key>`) and a default number; the number answered is the
//! configured one (`config::ResponseCodes`).

/// A reason for refusing a call of the TSH-facing API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Body not valid JSON, wrong content type, too large.
    BadBody,
    /// A mandatory field or header is missing.
    MissingField,
    /// A field or header has the wrong type, length or format.
    BadField,
    /// `x-issuer-id` is not this issuer.
    UnknownIssuer,
    /// The envelope cannot be decoded or decrypted, or its content is not valid card data, or the
    /// expiry does not match the record: one reason (and one message) for all.
    InvalidCardInfo,
    UnknownCard,
    CardExpired,
    /// Card blocked, lost or stolen.
    CardBlocked,
    CardClosed,
    /// The card's product is not enabled for this wallet.
    ProductNotEligible,
    /// `sendOTP`: no enrolment in step-up for this correlation id and card.
    UnknownSession,
    /// `sendOTP`: the ID&V method is unknown or was not offered.
    UnknownMethod,
    /// A call names a virtual card the issuer does not know, where it must.
    UnknownToken,
    /// `sendOTP`: a rate limit refused the send.
    LimitReached,
    /// `sendOTP`: refused by a fraud control, or no destination on file.
    Declined,
    /// `sendOTP`: the OTP expired before it could be sent.
    OtpExpired,
    /// `sendOTP`: the provider refused or failed the message.
    DeliveryFailed,
    /// `sendOTP`: the provider did not answer in time (worth a retry).
    DeliveryTimeout,
    /// Not allowed in the card's or token's current state.
    NotAllowed,
    /// A path or method the API does not have (404, 405).
    UnknownOperation,
    /// Internal fault or overload (HTTP 500).
    Internal,
}

impl Reason {
    pub const ALL: [Reason; 21] = [
        Reason::BadBody,
        Reason::MissingField,
        Reason::BadField,
        Reason::UnknownIssuer,
        Reason::InvalidCardInfo,
        Reason::UnknownCard,
        Reason::CardExpired,
        Reason::CardBlocked,
        Reason::CardClosed,
        Reason::ProductNotEligible,
        Reason::UnknownSession,
        Reason::UnknownMethod,
        Reason::UnknownToken,
        Reason::LimitReached,
        Reason::Declined,
        Reason::OtpExpired,
        Reason::DeliveryFailed,
        Reason::DeliveryTimeout,
        Reason::NotAllowed,
        Reason::UnknownOperation,
        Reason::Internal,
    ];

    /// Its configuration key, under `[response_codes]`.
    pub fn key(self) -> &'static str {
        match self {
            Reason::BadBody => "bad_body",
            Reason::MissingField => "missing_field",
            Reason::BadField => "bad_field",
            Reason::UnknownIssuer => "unknown_issuer",
            Reason::InvalidCardInfo => "invalid_card_info",
            Reason::UnknownCard => "unknown_card",
            Reason::CardExpired => "card_expired",
            Reason::CardBlocked => "card_blocked",
            Reason::CardClosed => "card_closed",
            Reason::ProductNotEligible => "product_not_eligible",
            Reason::UnknownSession => "unknown_session",
            Reason::UnknownMethod => "unknown_method",
            Reason::UnknownToken => "unknown_token",
            Reason::LimitReached => "limit_reached",
            Reason::Declined => "declined",
            Reason::OtpExpired => "otp_expired",
            Reason::DeliveryFailed => "delivery_failed",
            Reason::DeliveryTimeout => "delivery_timeout",
            Reason::NotAllowed => "not_allowed",
            Reason::UnknownOperation => "unknown_operation",
            Reason::Internal => "internal",
        }
    }

    /// Thales's number for it (the default of its setting).
    pub fn default_number(self) -> u16 {
        match self {
            Reason::BadBody => 112,
            Reason::MissingField => 111,
            Reason::BadField => 112,
            Reason::UnknownIssuer => 113,
            Reason::InvalidCardInfo => 166,
            Reason::UnknownCard => 116,
            Reason::CardExpired => 191,
            Reason::CardBlocked => 159,
            Reason::CardClosed => 160,
            Reason::ProductNotEligible => 163,
            Reason::UnknownSession => 118,
            Reason::UnknownMethod => 112,
            Reason::UnknownToken => 119,
            Reason::LimitReached => 164,
            Reason::Declined => 170,
            Reason::OtpExpired => 322,
            Reason::DeliveryFailed => 911,
            Reason::DeliveryTimeout => 921,
            Reason::NotAllowed => 432,
            Reason::UnknownOperation => 112,
            Reason::Internal => 921,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_key() {
        let mut keys: Vec<&str> = Reason::ALL.iter().map(|r| r.key()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), Reason::ALL.len());
    }
}
