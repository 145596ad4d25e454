//! `[console]`: the operator console on the admin listener (`/console/`): its sessions, its
//! second factor and its lockout.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// A TOTP code (RFC 6238) at every login, besides the password (PCI DSS 8.4.2).
    pub require_totp: bool,
    /// A session unused for this long ends.
    pub idle_timeout_minutes: u32,
    /// A session ends this long after its login, used or not.
    pub absolute_timeout_hours: u32,
    /// Failed logins in a row that lock an account (PCI DSS 8.3.4: at most 10).
    pub max_failed_logins: u32,
    /// How long a locked account stays locked (PCI DSS 8.3.4: at least 30 minutes).
    pub lockout_minutes: u32,
    /// Failed logins from one source address within `source_window_minutes` after which that
    /// address is refused before any password is checked.
    pub source_max_failures: u32,
    pub source_window_minutes: u32,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            require_totp: true,
            idle_timeout_minutes: 15,
            absolute_timeout_hours: 12,
            max_failed_logins: 10,
            lockout_minutes: 30,
            source_max_failures: 20,
            source_window_minutes: 15,
        }
    }
}

impl ConsoleConfig {
    pub fn validate(&self, p: &mut Vec<String>) {
        if !(1..=120).contains(&self.idle_timeout_minutes) {
            p.push("console.idle_timeout_minutes: must be 1 to 120".into());
        }
        if !(1..=24).contains(&self.absolute_timeout_hours) {
            p.push("console.absolute_timeout_hours: must be 1 to 24".into());
        }
        if !(1..=10).contains(&self.max_failed_logins) {
            p.push("console.max_failed_logins: must be 1 to 10 (PCI DSS 8.3.4)".into());
        }
        if !(30..=1440).contains(&self.lockout_minutes) {
            p.push("console.lockout_minutes: must be 30 to 1440 (PCI DSS 8.3.4)".into());
        }
        if self.source_max_failures == 0 {
            p.push("console.source_max_failures: must be above 0".into());
        }
        if !(1..=1440).contains(&self.source_window_minutes) {
            p.push("console.source_window_minutes: must be 1 to 1440".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ConsoleConfig;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        let mut p = Vec::new();
        ConsoleConfig::default().validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        let c = ConsoleConfig {
            idle_timeout_minutes: 0,
            max_failed_logins: 11,
            lockout_minutes: 5,
            ..ConsoleConfig::default()
        };
        c.validate(&mut p);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p.iter()
                .any(|l| l.starts_with("console.idle_timeout_minutes:"))
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with("console.max_failed_logins:"))
        );
        assert!(p.iter().any(|l| l.starts_with("console.lockout_minutes:")));
    }
}
