//! `[retention]`: how long records are kept before the background purge removes them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Call records (every TSH call, refusals included).
    pub calls_days: u32,
    /// OTP send records (masked destination, outcome, provider's message id).
    pub sends_days: u32,
    /// Enrolments (by their last change) and the ID&V methods they were offered.
    pub enrolments_days: u32,
    /// Finished life-cycle operations (confirmed, failed, refused, cancelled) and their attempts.
    pub operations_days: u32,
    /// Webhook events delivered to every endpoint they went to (by their last delivery), with
    /// those deliveries. Events still waiting or dead-lettered are kept.
    pub events_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            calls_days: 400,
            sends_days: 400,
            enrolments_days: 400,
            operations_days: 400,
            events_days: 400,
        }
    }
}

impl RetentionConfig {
    pub fn validate(&self, p: &mut Vec<String>) {
        for (key, days) in [
            ("retention.calls_days", self.calls_days),
            ("retention.sends_days", self.sends_days),
            ("retention.enrolments_days", self.enrolments_days),
            ("retention.operations_days", self.operations_days),
            ("retention.events_days", self.events_days),
        ] {
            // At least a day: the rate limits count sends over windows of up to a day, and an
            // enrolment lives for minutes to hours.
            if !(1..=36_500).contains(&days) {
                p.push(format!("{key}: must be 1 to 36500 (days), got {days}"));
            }
        }
    }
}
