//! The rate limits of `sendOTP`: the one list of what is limited, by what key, over which
//! window and up to how many sends. The store counts them, inside the transaction that claims
//! the send (`Store::claim_send`), so that they are exact under any concurrency and across
//! instances.
//!
//! They count sends that went out or may have (a provider that did not answer), never
//! refusals, so nobody can lock a cardholder out by provoking failures; every window reopens by
//! itself, exactly `window` after the send.

use crate::config::LimitsConfig;
use crate::domain::{Channel, Millis};
use crate::store::{LimitScope, SendLimit};

/// The limits of one send on `channel`, in the order they are checked (and reported).
pub fn for_send(config: &LimitsConfig, channel: Channel) -> [SendLimit; 4] {
    let minutes = |m: u32| Some(Millis::minutes(m));
    [
        SendLimit {
            name: "sends per enrolment",
            scope: LimitScope::Enrolment,
            // Over the enrolment's whole life.
            window: None,
            max: i64::from(config.sends_per_enrolment),
        },
        SendLimit {
            name: "sends per card",
            scope: LimitScope::Card,
            window: minutes(config.card_window_minutes),
            max: i64::from(config.sends_per_card),
        },
        SendLimit {
            name: "sends per destination",
            scope: LimitScope::Destination,
            window: minutes(config.destination_window_minutes),
            max: i64::from(config.sends_per_destination),
        },
        SendLimit {
            name: "channel budget per second",
            scope: LimitScope::Channel,
            window: Some(Millis(1_000)),
            max: i64::from(match channel {
                Channel::Sms => config.sms_per_second,
                Channel::Email => config.email_per_second,
            }),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_budget_follows_the_channel() {
        let c = LimitsConfig {
            sms_per_second: 7,
            email_per_second: 9,
            ..LimitsConfig::default()
        };
        assert_eq!(for_send(&c, Channel::Sms)[3].max, 7);
        assert_eq!(for_send(&c, Channel::Email)[3].max, 9);
        assert_eq!(for_send(&c, Channel::Sms)[0].window, None);
        assert_eq!(
            for_send(&c, Channel::Sms)[1].window,
            Some(Millis::minutes(c.card_window_minutes))
        );
    }
}
