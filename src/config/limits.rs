//! `[limits]`: the rate limits on `sendOTP` (what they count is `controls::limits`).

use serde::{Deserialize, Serialize};

/// Rate limits on `sendOTP`, counted in the database so that every instance shares them. They
/// count sends that went out (or may have: a provider that did not answer), never refusals, so
/// nobody can lock a cardholder out by provoking failures; every window reopens by itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Sends per enrolment (correlation id), over its whole life.
    pub sends_per_enrolment: u32,
    /// Sends per card within `card_window_minutes`.
    pub sends_per_card: u32,
    pub card_window_minutes: u32,
    /// Sends per destination (phone number or e-mail address) within `destination_window_minutes`.
    pub sends_per_destination: u32,
    pub destination_window_minutes: u32,
    /// Global budget of SMS sends per second, all cards together.
    pub sms_per_second: u32,
    /// Global budget of e-mail sends per second, all cards together.
    pub email_per_second: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            sends_per_enrolment: 3,
            sends_per_card: 5,
            card_window_minutes: 60,
            sends_per_destination: 5,
            destination_window_minutes: 60,
            sms_per_second: 50,
            email_per_second: 50,
        }
    }
}

impl LimitsConfig {
    pub fn validate(&self, p: &mut Vec<String>) {
        for (key, v) in [
            ("limits.sends_per_enrolment", self.sends_per_enrolment),
            ("limits.sends_per_card", self.sends_per_card),
            ("limits.card_window_minutes", self.card_window_minutes),
            ("limits.sends_per_destination", self.sends_per_destination),
            (
                "limits.destination_window_minutes",
                self.destination_window_minutes,
            ),
            ("limits.sms_per_second", self.sms_per_second),
            ("limits.email_per_second", self.email_per_second),
        ] {
            if v == 0 {
                p.push(format!("{key}: must be at least 1"));
            }
        }
    }
}
