//! `[controls]`: the fraud controls applied before any send (they live in `controls`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlsConfig {
    /// A channel whose destination changed less than this many hours ago is not used (0: off).
    pub destination_change_hold_hours: u32,
    /// Calling codes (E.164 country codes, e.g. "44", "33", "1") SMS may be sent to; empty: all.
    pub sms_allowed_calling_codes: Vec<String>,
    /// `sendOTP` serves an enrolment (answered yellow) for at most this many minutes after its
    /// first call; later it is refused as an unknown session.
    pub step_up_max_age_minutes: u32,
}

impl Default for ControlsConfig {
    fn default() -> Self {
        ControlsConfig {
            destination_change_hold_hours: 72,
            sms_allowed_calling_codes: Vec::new(),
            step_up_max_age_minutes: 60,
        }
    }
}

impl ControlsConfig {
    pub fn validate(&self, p: &mut Vec<String>) {
        if !(1..=10_080).contains(&self.step_up_max_age_minutes) {
            p.push("controls.step_up_max_age_minutes: must be 1 to 10080 (one week)".into());
        }
        for (i, code) in self.sms_allowed_calling_codes.iter().enumerate() {
            let ok = (1..=3).contains(&code.len())
                && code.bytes().all(|b| b.is_ascii_digit())
                && !code.starts_with('0');
            if !ok {
                p.push(format!(
                    "controls.sms_allowed_calling_codes: item {} is not a calling code such as 44 or 1",
                    i + 1
                ));
            }
        }
    }
}
