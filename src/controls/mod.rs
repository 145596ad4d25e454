//! Fraud controls and rate limits applied before any OTP send. Each refusal has its response
//! code (134 for a fraud control, 133 for a limit) and is recorded with the enrolment. The fraud
//! controls are here; the rate limits are [`limits`]; the SIM-swap check is [`sim_swap`].

pub mod limits;
pub mod sim_swap;

use crate::config::ControlsConfig;
use crate::domain::{Millis, Phone};

/// A refusal by a fraud control: the reason, safe to show and record (no destination in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub &'static str);

/// The channel's destination must not have changed within the hold (a changed phone number or
/// e-mail address shortly before a token request is the classic account-takeover pattern).
pub fn check_destination_hold(
    c: &ControlsConfig,
    changed_at: Option<Millis>,
    now_ms: Millis,
) -> Result<(), Refusal> {
    let hold = Millis::hours(c.destination_change_hold_hours);
    match changed_at {
        Some(t) if hold > Millis::ZERO && now_ms.since(t) < hold => {
            Err(Refusal("the channel's destination changed recently"))
        }
        _ => Ok(()),
    }
}

/// True when the destination's channel is not held at `now_ms` (used to decide what to offer).
pub fn destination_usable(c: &ControlsConfig, changed_at: Option<Millis>, now_ms: Millis) -> bool {
    check_destination_hold(c, changed_at, now_ms).is_ok()
}

/// The SMS destination's calling code must be in the allowed list (an empty list allows all).
pub fn check_sms_country(c: &ControlsConfig, phone: &Phone) -> Result<(), Refusal> {
    if c.sms_allowed_calling_codes.is_empty() {
        return Ok(());
    }
    let digits = phone.leading_digits(3);
    if c.sms_allowed_calling_codes
        .iter()
        .any(|code| digits.starts_with(code.as_str()))
    {
        Ok(())
    } else {
        Err(Refusal("SMS to this country is not allowed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_ends_exactly_at_its_edge() {
        let c = ControlsConfig {
            destination_change_hold_hours: 72,
            sms_allowed_calling_codes: vec![],
            ..ControlsConfig::default()
        };
        let changed = Millis(1_000_000);
        let hold = Millis(72 * 3_600_000);
        assert!(
            check_destination_hold(&c, Some(changed), changed.plus(hold).minus(Millis(1))).is_err()
        );
        assert!(check_destination_hold(&c, Some(changed), changed.plus(hold)).is_ok());
        assert!(check_destination_hold(&c, None, changed).is_ok());
        let off = ControlsConfig {
            destination_change_hold_hours: 0,
            ..c
        };
        assert!(check_destination_hold(&off, Some(changed), changed).is_ok());
    }

    #[test]
    fn calling_codes() {
        let c = ControlsConfig {
            destination_change_hold_hours: 0,
            sms_allowed_calling_codes: vec!["44".into(), "1".into()],
            ..ControlsConfig::default()
        };
        assert!(check_sms_country(&c, &Phone::parse("+447700900123").unwrap()).is_ok());
        assert!(check_sms_country(&c, &Phone::parse("+12025550123").unwrap()).is_ok());
        assert!(check_sms_country(&c, &Phone::parse("+33612345678").unwrap()).is_err());
    }
}
