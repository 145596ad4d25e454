//! `[response_codes]`: the number answered for each reason a call is refused (Thales's catalogue
//! by default; an issuer whose Thales onboarding states other numbers sets them here). Two
//! reasons may share a number.

use crate::domain::Reason;
use serde::{Deserialize, Serialize};

macro_rules! response_codes {
    ($($field:ident => $reason:ident),* $(,)?) => {
        /// The number of each reason (see docs/response-codes.md).
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct ResponseCodes {
            $(pub $field: u16,)*
        }

        impl Default for ResponseCodes {
            fn default() -> Self {
                ResponseCodes {
                    $($field: Reason::$reason.default_number(),)*
                }
            }
        }

        impl ResponseCodes {
            /// The number answered for `reason`.
            pub fn number(&self, reason: Reason) -> u16 {
                match reason {
                    $(Reason::$reason => self.$field,)*
                }
            }

            /// Sets the number of `reason`.
            pub fn set(&mut self, reason: Reason, number: u16) {
                match reason {
                    $(Reason::$reason => self.$field = number,)*
                }
            }
        }
    };
}

response_codes! {
    bad_body => BadBody,
    missing_field => MissingField,
    bad_field => BadField,
    unknown_issuer => UnknownIssuer,
    invalid_card_info => InvalidCardInfo,
    unknown_card => UnknownCard,
    card_expired => CardExpired,
    card_blocked => CardBlocked,
    card_closed => CardClosed,
    product_not_eligible => ProductNotEligible,
    unknown_session => UnknownSession,
    unknown_method => UnknownMethod,
    unknown_token => UnknownToken,
    limit_reached => LimitReached,
    declined => Declined,
    otp_expired => OtpExpired,
    delivery_failed => DeliveryFailed,
    delivery_timeout => DeliveryTimeout,
    not_allowed => NotAllowed,
    unknown_operation => UnknownOperation,
    internal => Internal,
}

impl ResponseCodes {
    pub fn validate(&self, p: &mut Vec<String>) {
        for reason in Reason::ALL {
            let n = self.number(reason);
            if !(100..=999).contains(&n) {
                p.push(format!(
                    "response_codes.{}: must be a number from 100 to 999, got {n}",
                    reason.key()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_thales_numbers_and_each_reason_has_its_field() {
        let mut c = ResponseCodes::default();
        for reason in Reason::ALL {
            assert_eq!(c.number(reason), reason.default_number());
            c.set(reason, 700);
            assert_eq!(c.number(reason), 700, "{}", reason.key());
        }
        let table = toml::Value::try_from(ResponseCodes::default()).unwrap();
        for reason in Reason::ALL {
            assert!(table.get(reason.key()).is_some(), "{}", reason.key());
        }
        let mut p = Vec::new();
        let mut bad = ResponseCodes::default();
        bad.set(Reason::Declined, 99);
        bad.validate(&mut p);
        assert_eq!(
            p,
            vec!["response_codes.declined: must be a number from 100 to 999, got 99".to_owned()]
        );
    }
}
