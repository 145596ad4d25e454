//! `[notices]`: messages to the cardholder that are not OTPs. After an ACTIVATE the cardholder
//! is told that their card was added to a wallet (`token_activated`), with the number to call
//! when it was not them (`support_phone`; the templates are `templates.token_activated_*`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoticesConfig {
    /// Tell the cardholder after an ACTIVATE (once per token), on the card's SMS, else e-mail.
    pub token_activated: bool,
    /// The issuer's support number, put in the notice (`{support_phone}`); empty: the notice
    /// says "the number on the back of your card", in its language.
    pub support_phone: String,
    /// A notice that could not be delivered (the provider refused or failed for certain) is
    /// retried with the life-cycle operations' back-off for this long, then given up.
    pub give_up_after_minutes: u32,
}

impl Default for NoticesConfig {
    fn default() -> Self {
        NoticesConfig {
            token_activated: true,
            support_phone: String::new(),
            give_up_after_minutes: 60,
        }
    }
}

impl NoticesConfig {
    pub fn validate(&self, p: &mut Vec<String>) {
        let phone = self.support_phone.trim();
        let ok = phone.len() <= 32
            && phone
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'));
        if !ok {
            p.push(
                "notices.support_phone: must be a phone number of at most 32 characters (digits, spaces, + - . ( ))"
                    .into(),
            );
        }
        if !(1..=10_080).contains(&self.give_up_after_minutes) {
            p.push("notices.give_up_after_minutes: must be 1 to 10080 (a week)".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn read_from_the_environment_and_checked() {
        let vars = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        let c = Config::load(
            None,
            vars(&[
                ("ISSUER_GATEWAY__NOTICES__TOKEN_ACTIVATED", "false"),
                ("ISSUER_GATEWAY__NOTICES__SUPPORT_PHONE", "+44 20 7946 0000"),
            ]),
        )
        .unwrap();
        assert!(!c.notices.token_activated);
        assert_eq!(c.notices.support_phone, "+44 20 7946 0000");
        assert!(Config::default().notices.token_activated);
        let mut p = Vec::new();
        let mut bad = c.notices.clone();
        bad.support_phone = "call www.example".into();
        bad.give_up_after_minutes = 0;
        bad.validate(&mut p);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("notices.support_phone:") && !p[0].contains("www"),
            "{p:?}"
        );
        assert!(p[1].starts_with("notices.give_up_after_minutes:"), "{p:?}");
    }
}
